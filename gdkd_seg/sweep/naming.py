"""Names in a sweep: config labels, short key names, a point's id in the
study and the folder a seed of it trains in."""
import hashlib
import json
import os.path as osp
import re
from typing import TYPE_CHECKING, Dict, List, Sequence

from .space import Scalar

if TYPE_CHECKING:
    from .plan import Sweep, Target


def config_labels(configs: Sequence[str]) -> List[str]:
    """``gdkd``/``dkd`` from the configs' file names where that is unique,
    else the whole file names."""
    stems = [osp.splitext(osp.basename(c))[0] for c in configs]
    if len(set(stems)) != len(stems):
        raise ValueError(f'two configs share a file name: {stems}')
    firsts = [s.split('_')[0] for s in stems]
    return firsts if len(set(firsts)) == len(firsts) else stems


def short_names(keys: Sequence[str]) -> Dict[str, str]:
    """The last component of each key where that is unique."""
    lasts = [k.rsplit('.', 1)[-1] for k in keys]
    return {
        k: last if lasts.count(last) == 1 else k
        for k, last in zip(keys, lasts)
    }


def point_id(point: Dict[str, Scalar]) -> str:
    return json.dumps(point, sort_keys=True)


def point_slug(point: Dict[str, Scalar], names: Dict[str, str]) -> str:
    """A readable name for a point, e.g. ``k=3_w2=8`` (two points may read
    alike: ``'a b'`` and ``'a/b'`` both give ``a-b``)."""
    text = '_'.join(f'{names[k]}={v}' for k, v in point.items()) or 'default'
    return re.sub(r'[^\w.=+-]+', '-', text)


def seed_dir(sweep: 'Sweep', target: 'Target', point: Dict[str, Scalar],
             seed: int) -> str:
    """Where a seed of a point trains: ``LABEL/SLUG-HASH/seedN``, the hash
    taken over the exact values, so no two points share a folder.

    A grid point with a run in ``LABEL/SLUG/seedN`` (the layout without the
    hash) resumes there, when no other point of the grid has its slug.
    """
    slug = point_slug(point, target.names)
    digest = hashlib.sha1(point_id(point).encode()).hexdigest()[:8]
    base = osp.join(sweep.work_dir, target.label)
    unique = osp.join(base, f'{slug}-{digest}', f'seed{seed}')
    unhashed = osp.join(base, slug, f'seed{seed}')
    if osp.exists(unique) or not osp.isdir(unhashed) or \
            sweep.search != 'grid':
        return unique
    slugs = [point_slug(p, target.names) for p in target.points()]
    return unhashed if slugs.count(slug) == 1 else unique

"""Keep the random state in checkpoints, so a resumed run is the straight
run.

mmengine's checkpoints hold the weights, optimizer, schedulers and message
hub but not the random number generators: a resumed run re-seeds them, and
its dropout masks and augmentations differ from those of the run it
continues. This hook writes the state of torch's (CPU and CUDA), numpy's and
Python's generators into ``checkpoint['meta']['random_state']`` as tensors
and plain numbers (checkpoints load with ``weights_only=True``) and restores
it when the run resumes at the checkpoint's iteration (a ``load_from``
checkpoint only gives weights, so it is not restored then).

The restore happens in ``before_train``, after ``Runner.resume`` and before
the train loop re-reads the batches it skips: data loaded in worker
processes (every shipped config) comes from the sampler's and the workers'
own seeded generators, identical in both runs. With ``num_workers=0`` and
random transforms the skipped batches draw from the restored state, so
such a run is not exact.

Each new pass over the training data (every epoch; an iteration-based
loop restarts its data loader at the end of the data) draws one number
from the data loader's ``generator``, torch's global generator when it
has none. A resumed run makes the passes it skips after the restore, so
those draws would shift its global random state away from the straight
run's. ``before_train`` therefore gives a training data loader without a
generator one of its own, seeded with the run's seed: both runs then draw
the same sequence from it, and the global state is left to the model.

Validation runs between a save and the next iteration, so it gets its own
copy of the state and gives it back: how often a run validates does not
change its training randomness.

Only the main process saves: under DDP every rank restores rank 0's state,
which is every rank's state unless ``randomness.diff_rank_seed=True`` (then
nothing is restored, with a warning).
"""
import logging
import random
from typing import Optional

import numpy as np
import torch
from mmengine.dist import get_world_size
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.registry import HOOKS
from torch.utils.data import DataLoader


def get_random_state() -> dict:
    """torch's, numpy's and Python's generator states as tensors and plain
    numbers."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    version, python_state, gauss_next = random.getstate()
    return dict(
        torch=torch.get_rng_state(),
        cuda=torch.cuda.get_rng_state_all()
        if torch.cuda.is_available() else [],
        numpy=dict(
            kind=kind,
            keys=torch.from_numpy(keys.astype(np.int64)),
            pos=pos,
            has_gauss=has_gauss,
            cached_gaussian=gauss),
        python=dict(
            version=version,
            state=torch.tensor(python_state, dtype=torch.int64),
            gauss_next=gauss_next))


def set_random_state(state: dict) -> None:
    """Restore what :func:`get_random_state` returned."""
    torch.set_rng_state(state['torch'])
    if state['cuda'] and len(state['cuda']) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state['cuda'])
    numpy = state['numpy']
    np.random.set_state(
        (numpy['kind'], numpy['keys'].numpy().astype(np.uint32), numpy['pos'],
         numpy['has_gauss'], numpy['cached_gaussian']))
    python = state['python']
    random.setstate((python['version'], tuple(python['state'].tolist()),
                     python['gauss_next']))


@HOOKS.register_module()
class RandomStateHook(Hook):
    """Save the random state in every checkpoint; restore it on resume.

    Turn it off with ``--cfg-options default_hooks.random_state=None``.
    """

    def __init__(self) -> None:
        self._loaded: Optional[dict] = None
        self._before_val: Optional[dict] = None

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        checkpoint.setdefault('meta', {})['random_state'] = get_random_state()

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        self._loaded = checkpoint.get('meta', {})

    def before_train(self, runner) -> None:
        loader = runner.train_dataloader
        if isinstance(loader, DataLoader) and loader.generator is None:
            loader.generator = torch.Generator().manual_seed(runner.seed)
        meta, self._loaded = self._loaded, None
        if not meta or 'random_state' not in meta or \
                meta.get('iter') != runner.iter:
            return  # not a resume (load_from, or nothing saved it)
        if get_world_size() > 1 and (runner.cfg.get('randomness')
                                     or {}).get('diff_rank_seed'):
            print_log(
                'randomness.diff_rank_seed: the checkpoint holds rank 0\'s '
                'random state only; each rank keeps its own seed',
                logger='current',
                level=logging.WARNING)
            return
        set_random_state(meta['random_state'])

    def before_val(self, runner) -> None:
        self._before_val = get_random_state()

    def after_val(self, runner) -> None:
        if self._before_val is not None:
            set_random_state(self._before_val)
            self._before_val = None

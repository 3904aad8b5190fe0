"""Resume from the newest complete checkpoint when the pointer is unusable.

``Runner(resume=True)`` (``tools/train.py --resume``) resumes from the path
in ``WORK_DIR/last_checkpoint``. If that file is empty (a plain mmengine
write that was interrupted), names a checkpoint that was deleted, or is
missing although checkpoints were saved, mmengine fails with ``checkpoint
'' does not exist`` or starts from scratch; if it names a truncated or
corrupt file, the resume fails although older checkpoints are intact.
:func:`find_latest_checkpoint` keeps mmengine's answer when it names a file
that loads (a URL is kept as it is), and otherwise falls back, with
warnings that name the bad file and why, to the newest complete
``iter_*.pth``/``epoch_*.pth`` in the work dir: the highest iteration (or epoch) number whose file loads
through :func:`.safe_torch_load` (file times are not trusted: a copy or a
shared file system changes them). It also removes this machine's stale
temporaries there (see :mod:`.atomic_write`).

``Runner.resume`` also executes a Python config string found in the
checkpoint's ``meta['config']`` (mmcv-era checkpoints stored one; it reads
its ``gpu_ids``), which would let a crafted checkpoint run code after the
weights-only load. :func:`resume_without_stored_config` drops that string
before ``Runner.resume`` sees it, with a warning; mmengine's own
checkpoints store their config under ``meta['cfg']``, which resume never
executes.
"""
import functools
import logging
import os
import os.path as osp
import re
from typing import Optional

from mmengine.logging import print_log
from mmengine.runner import checkpoint as mmengine_checkpoint

from .atomic_write import remove_stale_temporaries
from .torch_load import (CorruptCheckpointError, UnsafeCheckpointError,
                         safe_torch_load)

_SAVED_BY_CHECKPOINT_HOOK = re.compile(r'^(?:iter|epoch)_(\d+)\.pth$')

# Where mmengine's runners (and strategies, via the package) look it up.
_RESUMING_MODULES = ('mmengine.runner', 'mmengine.runner.runner',
                     'mmengine.runner._flexible_runner')


def newest_complete_checkpoint(work_dir: str,
                               skip: Optional[str] = None) -> Optional[str]:
    """The complete ``iter_N.pth``/``epoch_N.pth`` with the highest N.

    Complete means it loads (:func:`.safe_torch_load`); newer files that do
    not are skipped with a warning that says why, and so is ``skip`` (a
    path already found not to load).
    """
    found = []
    for name in os.listdir(work_dir):
        match = _SAVED_BY_CHECKPOINT_HOOK.match(name)
        if match:
            found.append((int(match[1]), name))
    for _, name in sorted(found, reverse=True):
        path = osp.join(work_dir, name)
        if path != skip and _loads(path):
            return path
    return None


def _loads(path: str) -> bool:
    """Whether ``path`` loads; if not, a warning says why."""
    try:
        safe_torch_load(path, map_location='cpu')
    except (CorruptCheckpointError, UnsafeCheckpointError, OSError) as err:
        print_log(f'not resuming from {path}: {err}', logger='current',
                  level=logging.WARNING)
        return False
    return True


def find_latest_checkpoint(work_dir: str) -> Optional[str]:
    """mmengine's ``find_latest_checkpoint``, robust to a bad pointer.

    Args:
        work_dir (str): the run's work dir.

    Returns:
        str | None: the checkpoint to resume from; None to start afresh.
    """
    if not osp.isdir(work_dir):
        return None
    remove_stale_temporaries(work_dir)
    pointed = mmengine_checkpoint.find_latest_checkpoint(work_dir)
    if pointed and '://' in pointed:
        return pointed
    if pointed and osp.isfile(pointed):
        if _loads(pointed):
            return pointed
        problem = f'names {pointed!r}, which does not load'
    elif pointed is None:
        problem = 'is missing'
    else:
        problem = 'is empty' if not pointed else \
            f'names {pointed!r}, which does not exist'
    newest = newest_complete_checkpoint(work_dir, skip=pointed)
    if pointed is None and newest is None:
        return None  # nothing saved yet; mmengine said so
    action = 'starting from scratch' if newest is None else \
        f'resuming from {newest}, the newest complete checkpoint there'
    print_log(
        f'{osp.join(work_dir, "last_checkpoint")} {problem}: {action}',
        logger='current',
        level=logging.WARNING)
    return newest


def resume_without_stored_config(resume):
    """Wrap a runner's ``resume`` so a checkpoint's ``meta['config']`` (a
    config string mmengine would execute) is dropped, not run."""
    if getattr(resume, '_drops_stored_config', False):
        return resume

    @functools.wraps(resume)
    def wrapper(runner, filename, *args, **kwargs):
        load = runner.load_checkpoint

        def load_without_config(*load_args, **load_kwargs):
            checkpoint = load(*load_args, **load_kwargs)
            meta = checkpoint.get('meta')
            if isinstance(meta, dict) and 'config' in meta:
                print_log(
                    f'{filename}: ignored meta["config"], a config string '
                    'that resuming would execute as Python',
                    logger='current',
                    level=logging.WARNING)
                checkpoint['meta'] = {
                    k: v
                    for k, v in meta.items() if k != 'config'
                }
            return checkpoint

        runner.load_checkpoint = load_without_config  # this call only
        try:
            return resume(runner, filename, *args, **kwargs)
        finally:
            del runner.load_checkpoint

    wrapper._drops_stored_config = True
    return wrapper


def make_resume_robust() -> None:
    """Have mmengine's runners resume through :func:`find_latest_checkpoint`
    and :func:`resume_without_stored_config`."""
    import importlib
    for name in _RESUMING_MODULES:
        module = importlib.import_module(name)
        module.find_latest_checkpoint = find_latest_checkpoint
    # FlexibleRunner resumes through its strategy and is not covered.
    from mmengine.runner import Runner
    Runner.resume = resume_without_stored_config(Runner.resume)

"""Every change ``import gdkd_seg`` makes outside the package, in one place.

:func:`apply` runs once on import; each change does nothing where it is not
needed, and docs/reliability.md lists them with their reasons:

1. ``sys.modules['mmcv._ext']``: a stand-in whose ops raise when called, so
   mmseg imports with mmcv-lite (:mod:`.mmcv_ops`; not with full mmcv).
2. ``mmengine.runner.checkpoint``: its ``torch.load`` (the module's
   ``torch``), its ``load_url`` and the local ``CheckpointLoader`` scheme
   load with ``weights_only=True``, so every scheme refuses pickled code
   (:mod:`.torch_load`). The allow-list is scoped to those loads; sizes a
   checkpoint declares beyond its file are refused before allocating; each
   URL is cached in a folder of its own.
3. ``mmengine.fileio.backends.LocalBackend.put``/``put_text`` and the
   ``open`` that ``mmengine.hooks.checkpoint_hook`` writes
   ``last_checkpoint`` with: atomic writes with the mode ``open`` would give,
   removing temporaries of killed writes (:mod:`.atomic_write`).
4. ``find_latest_checkpoint`` where mmengine's runners look it up: resume
   falls back to the newest complete checkpoint when ``last_checkpoint`` is
   unusable (:mod:`.resume`).
5. ``Runner.resume``: a checkpoint's ``meta['config']`` (a config string
   mmengine would execute) is dropped, with a warning (:mod:`.resume`).
"""
from .atomic_write import atomic_write_bytes, make_local_writes_atomic
from .mmcv_ops import install_mmcv_ops_stub
from .resume import make_resume_robust
from .torch_load import (CheckpointDownloadError, CorruptCheckpointError,
                         UnsafeCheckpointError, local_file_problem,
                         make_checkpoint_loads_safe, safe_torch_load)

__all__ = [
    'CheckpointDownloadError', 'CorruptCheckpointError',
    'UnsafeCheckpointError', 'apply', 'atomic_write_bytes',
    'local_file_problem', 'safe_torch_load'
]


def apply() -> None:
    """Apply every compatibility change (idempotent)."""
    install_mmcv_ops_stub()
    make_checkpoint_loads_safe()
    make_local_writes_atomic()
    make_resume_robust()

"""Small, contained fixes that make the OpenMMLab stack work on this toolchain.

Applied once on ``import gdkd_seg``; each does nothing where it is not needed.
"""
from .atomic_write import atomic_write_bytes, make_local_writes_atomic
from .mmcv_ops import install_mmcv_ops_stub
from .torch_load import allow_mmengine_checkpoint_globals

__all__ = [
    'atomic_write_bytes', 'install_mmcv_ops_stub',
    'allow_mmengine_checkpoint_globals', 'make_local_writes_atomic'
]


def apply() -> None:
    """Apply every compatibility fix (idempotent)."""
    install_mmcv_ops_stub()
    allow_mmengine_checkpoint_globals()
    make_local_writes_atomic()

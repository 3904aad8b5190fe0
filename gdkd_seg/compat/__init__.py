"""Small, contained fixes that make the OpenMMLab stack work on this toolchain.

Applied once on ``import gdkd_seg``; each does nothing where it is not needed.
"""
from .mmcv_ops import install_mmcv_ops_stub
from .torch_load import allow_mmengine_checkpoint_globals

__all__ = ['install_mmcv_ops_stub', 'allow_mmengine_checkpoint_globals']


def apply() -> None:
    """Apply every compatibility fix (idempotent)."""
    install_mmcv_ops_stub()
    allow_mmengine_checkpoint_globals()

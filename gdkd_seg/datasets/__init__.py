"""Data: a deterministic synthetic dataset in the real Cityscapes layout.

mmseg's own ``CityscapesDataset`` reads what
:func:`generate_synthetic_cityscapes` writes; nothing is registered here.
"""
from .synthetic_cityscapes import (CLASSES, generate_synthetic_cityscapes,
                                   read_meta, render_sample, sample_paths)

__all__ = [
    'CLASSES', 'generate_synthetic_cityscapes', 'read_meta', 'render_sample',
    'sample_paths'
]

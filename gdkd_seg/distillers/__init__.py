from .base import BaseDistiller, load_teacher_checkpoint, resolve_model_cfg
from .seg_distiller import SegDistiller

__all__ = [
    'BaseDistiller', 'SegDistiller', 'load_teacher_checkpoint',
    'resolve_model_cfg'
]

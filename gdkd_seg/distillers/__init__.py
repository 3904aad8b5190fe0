"""Distillers: a student beside a frozen teacher (``base``), for mmseg
segmentors (``seg_distiller``). The one for mmpretrain classifiers builds on
``base`` in :mod:`gdkd_seg.cls` (not imported here: it needs mmpretrain)."""
from .base import BaseDistiller, load_teacher_checkpoint, resolve_model_cfg
from .seg_distiller import SegDistiller

__all__ = [
    'BaseDistiller', 'SegDistiller', 'load_teacher_checkpoint',
    'resolve_model_cfg'
]

"""Distillers: a student beside a frozen teacher (``base``), for mmseg
segmentors (``seg_distiller``) and mmpretrain classifiers (``cls_distiller``,
not imported here: it needs mmpretrain; ``import gdkd_seg.cls`` loads it)."""
from .base import BaseDistiller, load_teacher_checkpoint, resolve_model_cfg
from .seg_distiller import SegDistiller

__all__ = [
    'BaseDistiller', 'SegDistiller', 'load_teacher_checkpoint',
    'resolve_model_cfg'
]

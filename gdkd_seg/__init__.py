"""gdkd_seg: GDKD knowledge distillation for OpenMMLab segmentation.

Importing the package registers its losses and distillers in mmseg's
``MODELS`` registry and its training hooks in mmengine's ``HOOKS``, so
configs with ``custom_imports=dict(imports=
['gdkd_seg'])`` find them, and applies the compatibility layer; every change
that makes outside the package is listed in ``gdkd_seg.compat``.
"""
from . import compat
from .version import __version__

compat.apply()

from . import distillers, engine, losses  # noqa: E402,F401  (registers)

__all__ = ['__version__', 'compat', 'distillers', 'engine', 'losses']

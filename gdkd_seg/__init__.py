"""gdkd_seg: GDKD knowledge distillation for OpenMMLab segmentation.

Importing the package applies the compatibility layer (``gdkd_seg.compat``)
and registers its losses, models and datasets in mmseg's registries, so
configs with ``custom_imports=dict(imports=['gdkd_seg'])`` find them.
"""
from . import compat
from .version import __version__

compat.apply()

from . import distillers, losses  # noqa: E402,F401  (registers modules)

__all__ = ['__version__', 'compat', 'distillers', 'losses']

"""Import mmrazor 1.0.0 on a torch whose quantization API it predates.

mmrazor builds its quantization backend tables when ``mmrazor.models`` is
imported (``structures/quantization/backend_config``, ``quantizers``). Its
own guard is ``try: <torch.ao imports> except ImportError: <placeholders>``
followed by ``if digit_version(torch.__version__) >= '1.13.0': <build the
tables>``. On recent torch (2.14 here) the imports fail (``reverse2``,
``reverse3`` and ``reverse_sequential_wrapper2`` left
``torch.ao.quantization.fuser_method_mappings``), yet the version check still
passes, so the tables are built from placeholders and the import dies with
"`torch>=1.13` is not installed properly".

The fix sends mmrazor down its own torch < 1.13 path while it imports: for
the duration of the import, mmrazor's ``digit_version`` reports torch as
1.12, so those module-level tables stay empty placeholders. Distillation
never touches them; mmrazor's quantization algorithms (QAT/PTQ) stay
unavailable and raise mmrazor's placeholder error if used. Afterwards every
module gets the real ``digit_version`` back, so no run-time check is
affected. Nothing is done when torch still provides what mmrazor imports.

Applied only by :func:`import_mmrazor` (or by listing
``gdkd_seg.interop.mmrazor`` in a config's ``custom_imports``), never by
``import gdkd_seg``.
"""
import contextlib
import importlib
import sys
from types import ModuleType
from typing import Iterator

import torch

# Everything mmrazor registers (algorithms, distillers, recorders, loops),
# imported while the fix is active.
_MMRAZOR_MODULES = ('mmrazor.models', 'mmrazor.engine')


def mmrazor_quantization_imports_fail() -> bool:
    """Whether torch lacks the quantization helpers mmrazor 1.0.0 imports.

    Returns:
        bool: True when mmrazor's ``try`` block would fall back to
        placeholders (the case that breaks ``import mmrazor.models``).
    """
    try:
        from torch.ao.quantization.fuser_method_mappings import (  # noqa
            reverse2, reverse3, reverse_sequential_wrapper2)
    except ImportError:
        return True
    return False


@contextlib.contextmanager
def _torch_reported_as_pre_quantization(mmrazor: ModuleType) -> Iterator:
    """Have ``mmrazor.digit_version`` report torch as 1.12 in the block."""
    real_digit_version = mmrazor.digit_version

    def digit_version(version_str: str, length: int = 4):
        if version_str == torch.__version__:
            version_str = '1.12.0'
        return real_digit_version(version_str, length)

    mmrazor.digit_version = digit_version
    try:
        yield
    finally:
        # Submodules bound the stand-in with ``from mmrazor import
        # digit_version``; give every one of them the real function back.
        for name, module in list(sys.modules.items()):
            if name.startswith('mmrazor') and \
                    getattr(module, 'digit_version', None) is digit_version:
                module.digit_version = real_digit_version


def import_mmrazor() -> ModuleType:
    """Import mmrazor with its registries populated, fixing it if needed.

    Idempotent. Call it before anything else imports ``mmrazor.models``
    (after a failed plain import it still works: Python drops the modules
    that failed).

    Returns:
        ModuleType: the ``mmrazor`` package.

    Raises:
        ImportError: mmrazor, or its undeclared dependency joblib, is not
            installed.
    """
    mmrazor = importlib.import_module('mmrazor')
    if all(name in sys.modules for name in _MMRAZOR_MODULES):
        return mmrazor
    if mmrazor_quantization_imports_fail():
        fix = _torch_reported_as_pre_quantization(mmrazor)
    else:
        fix = contextlib.nullcontext()
    with fix:
        try:
            for name in _MMRAZOR_MODULES:
                importlib.import_module(name)
        except ModuleNotFoundError as err:
            if err.name != 'joblib':
                raise
            raise ImportError(
                'mmrazor 1.0.0 imports joblib without declaring it: '
                "pip install joblib (or gdkd_seg's 'mmrazor' extra)") from err
    return mmrazor

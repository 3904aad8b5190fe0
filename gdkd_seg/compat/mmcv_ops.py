"""Let mmseg import with mmcv-lite, which ships no compiled ops.

Four mmseg modules import ``mmcv.ops`` at import time (point sampling, focal
loss, SAN head, mask classification), which loads ``mmcv._ext``. DeepLabV3,
PSPNet, FCN and friends never call those ops, so a stand-in ``mmcv._ext``
whose functions raise a clear error when *called* is enough. Real compiled
mmcv (the usual GPU install) is left untouched.
"""
import importlib.machinery
import importlib.util
import sys
import types

_STUB_NAME = 'mmcv._ext'


class _MissingOpsModule(types.ModuleType):
    """Module whose every attribute is an op that raises when called."""

    def __getattr__(self, name: str):
        if name.startswith('__'):
            raise AttributeError(name)

        def missing_op(*args, **kwargs):
            raise RuntimeError(
                f'mmcv op {name!r} needs compiled mmcv, but mmcv-lite is '
                'installed. Install full mmcv (OpenMMLab wheel index) to use '
                'models that need it.')

        missing_op.__name__ = name
        return missing_op


def has_compiled_mmcv_ops() -> bool:
    """True when a real ``mmcv._ext`` extension is importable."""
    existing = sys.modules.get(_STUB_NAME)
    if existing is not None:
        return not isinstance(existing, _MissingOpsModule)
    try:
        return importlib.util.find_spec(_STUB_NAME) is not None
    except (ImportError, ValueError):
        return False


def install_mmcv_ops_stub() -> bool:
    """Install the stand-in if mmcv lacks compiled ops.

    Returns:
        bool: True if the stand-in is (now) in place.
    """
    if isinstance(sys.modules.get(_STUB_NAME), _MissingOpsModule):
        return True
    if importlib.util.find_spec('mmcv') is None or has_compiled_mmcv_ops():
        return False
    stub = _MissingOpsModule(_STUB_NAME)
    # mmengine's Runner inspects module specs; a spec without a loader is fine.
    stub.__spec__ = importlib.machinery.ModuleSpec(_STUB_NAME, None)
    sys.modules[_STUB_NAME] = stub
    return True

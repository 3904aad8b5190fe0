import os

import pytest
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Without a GPU, Triton kernels run in Triton's CPU interpreter.
# TRITON_INTERPRET is read when a kernel is decorated, so it is set here,
# before any test module imports gdkd_seg.
if not torch.cuda.is_available():
    os.environ.setdefault('TRITON_INTERPRET', '1')


@pytest.fixture(autouse=True, scope='session')
def mmseg_scope():
    """Tests build models outside a Runner: set mmseg's default scope as
    mmseg's own tools do, and run from the repository root (configs use
    relative paths)."""
    import gdkd_seg  # noqa: F401  (compat layer before mmseg's models)
    from mmseg.utils import register_all_modules
    register_all_modules(init_default_scope=True)
    os.chdir(ROOT)

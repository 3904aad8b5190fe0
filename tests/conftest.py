import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(autouse=True, scope='session')
def mmseg_scope():
    """Tests build models outside a Runner: set mmseg's default scope as
    mmseg's own tools do, and run from the repository root (configs use
    relative paths)."""
    from mmseg.utils import register_all_modules
    register_all_modules(init_default_scope=True)
    os.chdir(ROOT)

"""The compatibility layer: mmseg with mmcv-lite, clear load errors.

Checkpoint safety and files: test_checkpoint_safety.py,
test_checkpoint_files.py."""
import subprocess
import sys

import pytest
import torch.nn as nn
from mmengine.runner import load_checkpoint

import gdkd_seg  # noqa: F401
from gdkd_seg.compat.mmcv_ops import has_compiled_mmcv_ops


def test_mmseg_apis_import_and_build_without_compiled_ops():
    code = ('import gdkd_seg; from mmseg.apis import init_model; '
            'import mmcv.ops; print("ok")')
    out = subprocess.run([sys.executable, '-c', code], capture_output=True,
                         text=True, check=True)
    assert out.stdout.strip().endswith('ok')


@pytest.mark.skipif(has_compiled_mmcv_ops(),
                    reason='full mmcv installed: the stand-in is not used')
def test_missing_ops_raise_a_clear_error_when_called():
    import mmcv._ext as ext
    with pytest.raises(RuntimeError, match='needs compiled mmcv'):
        ext.nms(None)


def test_a_missing_checkpoint_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="'.*nope.pth' does not exist"):
        load_checkpoint(nn.Linear(2, 1), str(tmp_path / 'nope.pth'))

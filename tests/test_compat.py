"""The compatibility layer: mmseg with mmcv-lite, and safe checkpoint loads."""
import os
import subprocess
import sys

import pytest
import torch
import torch.nn as nn
from mmengine.logging import HistoryBuffer, MessageHub
from mmengine.runner import load_checkpoint

import gdkd_seg  # noqa: F401
from gdkd_seg.compat.mmcv_ops import has_compiled_mmcv_ops
from gdkd_seg.compat.torch_load import (CorruptCheckpointError,
                                        UnsafeCheckpointError,
                                        load_from_local)


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


class _Payload:
    """Pickles to a call that would create a file if it were executed."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (os.makedirs, (self.path, ))


def test_checkpoint_with_pickled_code_is_refused_not_run(tmp_path):
    marker = tmp_path / 'was_executed'
    ckpt = tmp_path / 'evil.pth'
    torch.save({'state_dict': {}, 'meta': _Payload(str(marker))}, ckpt)
    with pytest.raises(UnsafeCheckpointError, match='not allow-listed'):
        load_from_local(str(ckpt))
    with pytest.raises(UnsafeCheckpointError, match='evil.pth'):
        load_checkpoint(nn.Linear(2, 1), str(ckpt))  # mmengine's own path
    assert not marker.exists()


def test_mmengine_training_state_loads_with_weights_only(tmp_path):
    hub = MessageHub.get_instance('test_compat_hub')
    for v in (0.5, 0.25):
        hub.update_scalar('train/loss', v)
    model = nn.Linear(3, 2)
    ckpt = tmp_path / 'iter_2.pth'
    torch.save(
        {
            'meta': {'iter': 2, 'seed': 1},
            'state_dict': model.state_dict(),
            'message_hub': hub.state_dict(),
        }, ckpt)
    loaded = load_from_local(str(ckpt))
    buf = loaded['message_hub']['log_scalars']['train/loss']
    assert isinstance(buf, HistoryBuffer)
    assert buf.mean() == pytest.approx(0.375)
    torch.testing.assert_close(loaded['state_dict']['weight'], model.weight)


def test_missing_and_corrupt_checkpoints_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match='nope.pth'):
        load_from_local(str(tmp_path / 'nope.pth'))
    bad = tmp_path / 'truncated.pth'
    torch.save({'w': torch.randn(100)}, bad)
    bad.write_bytes(bad.read_bytes()[:200])
    with pytest.raises(CorruptCheckpointError, match='truncated.pth'):
        load_from_local(str(bad))

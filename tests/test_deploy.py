"""The student outside PyTorch: ONNX export of a distillation checkpoint's
student, onnxruntime's logits against mmseg's own test path, and the
student-vs-teacher comparison (costs and mIoU)."""
import json
import os
import os.path as osp
import re

import numpy as np
import pytest
import torch
from mmseg.structures import SegDataSample

from test_benchmark_tools import run_tool
from test_end_to_end import GDKD as DEMO_GDKD
from test_test_tool import distillation_checkpoint

ort = pytest.importorskip(
    'onnxruntime', reason='onnxruntime (requirements/deploy.txt) has no '
    'wheel installed for this platform')

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
SEGFORMER = osp.join(ROOT, 'configs', 'gdkd', 'gdkd_segformer-mit-b5_'
                     'segformer-mit-b0_8xb2-160k_ade20k-512x512.py')


def mmseg_reference(model, cfg, image):
    """mmseg's test path on one (3, H, W) BGR image, preprocessing written
    out here from the config: RGB, then (x - mean) / std."""
    preprocessor = cfg.model.data_preprocessor
    mean = torch.tensor(preprocessor.mean).view(3, 1, 1)
    std = torch.tensor(preprocessor.std).view(3, 1, 1)
    assert preprocessor.bgr_to_rgb
    inputs = ((image.flip(0) - mean) / std)[None]
    size = tuple(image.shape[1:])
    meta = dict(img_shape=size, ori_shape=size, pad_shape=size)
    with torch.no_grad():
        return model.predict(inputs, [SegDataSample(metainfo=meta)])[0] \
            .seg_logits.data.double().numpy()


@pytest.mark.parametrize('config, shape, dynamic', [
    pytest.param(DEMO_GDKD, (64, 128), True, id='demo-deeplabv3-dynamic'),
    pytest.param(SEGFORMER, (64, 64), False, id='segformer-b0',
                 marks=pytest.mark.slow),
])
def test_onnx_logits_match_pytorch(config, shape, dynamic, tmp_path,
                                   monkeypatch, capsys):
    checkpoint = str(tmp_path / 'ckpt.pth')
    onnx_file = str(tmp_path / 'model.onnx')
    model, cfg = distillation_checkpoint(config, checkpoint)
    run_tool(osp.join(ROOT, 'tools', 'deploy', 'export_onnx.py'), [
        config, checkpoint, onnx_file, '--shape', *map(str, shape),
        *(['--dynamic'] if dynamic else [])
    ], monkeypatch)
    assert 'arg-max agreement' in capsys.readouterr().out

    session = ort.InferenceSession(onnx_file,
                                   providers=['CPUExecutionProvider'])
    shapes = [shape, (shape[0] + 16, shape[1] + 48)] if dynamic else [shape]
    generator = torch.Generator().manual_seed(1)
    for size in shapes:
        image = torch.rand(3, *size, generator=generator) * 255
        got = session.run(None, {'images': image[None].numpy()})[0][0]
        want = mmseg_reference(model, cfg, image)
        assert got.shape == want.shape == (cfg.model.decode_head.num_classes,
                                           *size)
        # float32 round-off on logits of a few units at most
        np.testing.assert_allclose(got, want, rtol=1e-4,
                                   atol=1e-4 * np.abs(want).max())
        agreement = (got.argmax(0) == want.argmax(0)).mean()
        assert agreement >= 0.999, f'arg-max agrees on {agreement:.4%}'


def test_onnx_check_fails_on_a_wrong_graph(tmp_path, monkeypatch):
    """The tool's check compares against PyTorch: a graph exported from
    other weights is refused."""
    import gdkd_seg.apis.deploy as deploy
    checkpoint = str(tmp_path / 'ckpt.pth')
    distillation_checkpoint(DEMO_GDKD, checkpoint)
    original = deploy.export_onnx

    def export_other_weights(model, *args, **kwargs):
        with torch.no_grad():
            model.decode_head.conv_seg.bias += 1.0
        original(model, *args, **kwargs)
        with torch.no_grad():
            model.decode_head.conv_seg.bias -= 1.0

    monkeypatch.setattr(deploy, 'export_onnx', export_other_weights)
    with pytest.raises(SystemExit, match='does not reproduce PyTorch'):
        run_tool(osp.join(ROOT, 'tools', 'deploy', 'export_onnx.py'), [
            DEMO_GDKD, checkpoint, str(tmp_path / 'm.onnx'), '--shape', '32',
            '64'
        ], monkeypatch)


def test_peak_forward_bytes_counts_live_activations():
    from gdkd_seg.analysis.deployment import peak_forward_bytes
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 16, 3), torch.nn.ReLU(),
                                torch.nn.Conv2d(16, 16, 3))
    x = torch.rand(1, 3, 40, 50)
    with torch.no_grad():
        peak = peak_forward_bytes(lambda: model(x))
    # The first conv's output and the ReLU's copy of it are alive together.
    assert peak == 2 * 16 * 38 * 48 * 4


def write_scalars(work_dir, miou):
    vis = osp.join(work_dir, '20260101_000000', 'vis_data')
    os.makedirs(vis)
    with open(osp.join(vis, 'scalars.json'), 'w') as f:
        f.write(json.dumps(dict(iter=1, loss=1.0, time=0.1)) + '\n')
        f.write(json.dumps(dict(mIoU=miou - 5, step=1)) + '\n')
        f.write(json.dumps(dict(mIoU=miou, step=2)) + '\n')


@pytest.mark.slow
def test_student_vs_teacher_table_and_figure(tmp_path, monkeypatch, capsys):
    teacher_ckpt, student_ckpt = (str(tmp_path / 'teacher.pth'),
                                  str(tmp_path / 'student.pth'))
    teacher, _ = distillation_checkpoint(DEMO_GDKD, teacher_ckpt, 'teacher')
    student, _ = distillation_checkpoint(DEMO_GDKD, student_ckpt)
    dirs = {}
    for role, miou in (('teacher', 60.5), ('student', 40.25),
                       ('distilled', 45.75)):
        dirs[role] = str(tmp_path / role)
        write_scalars(dirs[role], miou)
    out = tmp_path / 'out'
    run_tool(osp.join(ROOT, 'tools', 'analysis_tools',
                      'student_vs_teacher.py'), [
        DEMO_GDKD, teacher_ckpt, student_ckpt, '--out', str(out), '--shape',
        '32', '64', '--repeats', '2', '--warmup', '1', '--name', 'GDKD',
        '--teacher-dir', dirs['teacher'], '--student-dir', dirs['student'],
        '--distilled-dir', dirs['distilled']
    ], monkeypatch)
    rows = re.findall(r'^\| (teacher|student alone|GDKD) \| (.*) \|$',
                      (out / 'student_vs_teacher.md').read_text(), re.M)
    assert [r[0] for r in rows] == ['teacher', 'student alone', 'GDKD']
    cells = {name: [float(c) for c in rest.split(' | ')]
             for name, rest in rows}

    def deployed(model):  # parameters the exported graph holds
        return sum(p.numel() for n, p in model.named_parameters()
                   if not n.startswith('auxiliary_head'))

    assert cells['teacher'][0] == round(deployed(teacher) / 1e6, 3)
    assert cells['GDKD'][0] == round(deployed(student) / 1e6, 3)
    assert cells['teacher'][1] > 4 * cells['GDKD'][1] > 0  # GFLOPs
    assert [cells[n][-1] for n in ('teacher', 'student alone', 'GDKD')] == \
        [60.5, 40.25, 45.75]  # each run's last validation
    assert cells['student alone'][:-1] == cells['GDKD'][:-1]
    assert all(v > 0 for v in cells['teacher'][2:5])  # ms, ms, MiB
    result = json.loads((out / 'student_vs_teacher.json').read_text())
    assert result['threads'] == 1 and result['repeats'] == 2
    assert (out / 'student_vs_teacher.png').stat().st_size > 0
    assert '1 thread(s), median of 2 runs' in capsys.readouterr().out

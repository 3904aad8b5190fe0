"""A shortened demo through tools/demo.py: every run, the table, the figures,
and a rerun that reuses what exists."""
import json
import os
import os.path as osp
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))


def demo(tmp_path, *extra):
    proc = subprocess.run(
        [sys.executable, 'tools/demo.py', '--work-dir',
         str(tmp_path / 'demo'), '--data-root', str(tmp_path / 'data'),
         '--iters', '4', '--num-train', '16', '--num-val', '4',
         '--num-samples', '2', *extra],
        capture_output=True, text=True, cwd=ROOT,
        env=dict(os.environ, PYTHONPATH=ROOT))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout


def test_shortened_demo_trains_evaluates_and_reuses(tmp_path):
    out = demo(tmp_path)
    for name in ('teacher', 'student', 'KD', 'DKD', 'GDKD'):
        assert f'training {name}' in out
        assert f'| {name} | 1 |' in out
    assert 'eta' in out
    work = tmp_path / 'demo'
    for name in ('summary.md', 'miou.png', 'per_class_iou.png',
                 'samples.png'):
        assert (work / name).stat().st_size > 0, name
    summary = json.loads((work / 'summary.json').read_text())
    assert len(summary['classes']) == 19
    for runs in summary['results'].values():
        assert 0 <= runs[0]['mIoU'] <= 100 and len(runs[0]['IoU']) == 19
    assert (work / 'seed0' / 'gdkd' / 'iter_4.pth').is_file()

    again = demo(tmp_path)
    assert 'training' not in again
    assert again.count('| GDKD | 1 |') == 1

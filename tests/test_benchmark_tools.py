"""The benchmark tools run end to end on CPU and write their JSON."""
import json
import os
import runpy
import subprocess
import sys

import pytest

import gdkd_seg  # noqa: F401  (compat layer before mmseg imports)


def run_tool(path, argv, monkeypatch):
    monkeypatch.setattr(sys, 'argv', [path] + argv)
    runpy.run_path(path, run_name='__main__')


def test_benchmark_loss_on_cpu(tmp_path, monkeypatch):
    out = tmp_path / 'loss.json'
    run_tool('tools/analysis_tools/benchmark_loss.py', [
        '--device', 'cpu', '--shapes', '2x7x4x4', '12x7', '--repeats', '1',
        '--losses', 'gdkd', 'dkd', '--ignore', '0', '--out', str(out),
        '--methods', 'reference', 'plain', 'fused', 'fused:class_loop:128:4',
        'fused+intra', 'dist'
    ], monkeypatch)
    results = json.loads(out.read_text())['results']
    assert [(r['loss'], r['shape']) for r in results] == [
        ('gdkd', '2x7x4x4'), ('gdkd', '12x7'), ('dkd', '2x7x4x4'),
        ('dkd', '12x7')]
    configured = 'fused:class_loop:128:4'  # a Triton config (CPU: torch)
    others = {'plain', 'fused', configured, 'fused+intra', 'dist'}
    assert set(results[0]['methods']) == others | {'reference'}
    # DKD has no reference design here (it is GDKD's).
    assert set(results[2]['methods']) == others
    for r in results:
        for m in r['methods'].values():
            assert m['ms'] > 0 and m['peak_bytes'] > 0


@pytest.mark.slow
def test_benchmark_distill_step_quick(tmp_path, monkeypatch):
    out = tmp_path / 'step.json'
    run_tool('tools/analysis_tools/benchmark_distill_step.py',
             ['--quick', '--teacher', 'fp32', '--out', str(out)],
             monkeypatch)
    rows = json.loads(out.read_text())['rows']
    assert [r['loss'] for r in rows] == ['fused', 'plain']
    assert all(r['step_ms'] > 0 and r['floor_ms'] > 0 for r in rows)


def test_kernel_sass_counts_without_a_gpu(tmp_path):
    """The offline SASS count runs on CPU, and the thread-per-pixel kernel
    needs well under the tile kernel's instructions per pixel for GDKD on
    Cityscapes-sized maps (static and exact, so the bound can be tight)."""
    pytest.importorskip('triton')
    out = tmp_path / 'sass.json'
    env = {k: v for k, v in os.environ.items() if k != 'TRITON_INTERPRET'}
    subprocess.run([
        sys.executable, 'tools/analysis_tools/kernel_sass.py', '--losses',
        'gdkd', '--classes', '19', '--out', str(out), '--plot',
        str(tmp_path / 'sass.png')
    ], check=True, env=env, capture_output=True, timeout=600)
    assert (tmp_path / 'sass.png').stat().st_size > 0
    rows = {r['kernel']: r for r in json.loads(out.read_text())}
    tile, loop = rows['tile'], rows['class_loop']
    for r in (tile, loop):
        assert r['loops'] == 0 and r['spill_bytes'] == 0
        assert r['by_category']['mufu'] > 0
    assert loop['per_pixel'] < 0.6 * tile['per_pixel']
    assert loop['by_category'].get('shuffle', 0) < 0.5

"""The main path through the real tools, on a generated Cityscapes-format set:
train a teacher, distil, crash and resume, test, export, evaluate with plain
mmseg, and a 2-process DDP run through torchrun (gloo)."""
import os
import os.path as osp
import re
import subprocess
import sys

import pytest
import torch

from gdkd_seg.compat import safe_torch_load
from gdkd_seg.datasets.synthetic_cityscapes import \
    generate_synthetic_cityscapes

pytestmark = pytest.mark.slow

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
DEMO = osp.join(ROOT, 'configs', 'demo')
TEACHER = osp.join(DEMO, 'teacher_deeplabv3-r18_1xb8-300it_'
                   'synthetic-cityscapes-128x256.py')
GDKD = osp.join(DEMO, 'gdkd_deeplabv3-r18_deeplabv3-r18w16_1xb8-300it_'
                'synthetic-cityscapes-128x256.py')


def run(args, expect_rc=0, env=None, unset=()):
    environ = {k: v for k, v in os.environ.items() if k not in unset}
    proc = subprocess.run(
        args, capture_output=True, text=True, cwd=ROOT,
        env=dict(environ, PYTHONPATH=ROOT + os.pathsep +
                 osp.join(ROOT, 'tests'), **(env or {})))
    assert proc.returncode == expect_rc, proc.stdout[-3000:] + \
        proc.stderr[-3000:]
    return proc.stdout + proc.stderr


def small_run_options(data_root, iters, batch=4, extra=()):
    # One loader worker: the batches come from the workers' seeded
    # generators, and RandomStateHook restores the rest on resume.
    return [
        '--cfg-options', f'train_cfg.max_iters={iters}',
        f'train_cfg.val_interval={iters}', f'param_scheduler.0.end={iters}',
        'default_hooks.checkpoint.interval=2',
        'default_hooks.logger.interval=1', f'train_dataloader.batch_size={batch}',
        'val_dataloader.batch_size=2',
        *[f'{split}_dataloader.dataset.data_root={data_root}'
          for split in ('train', 'val', 'test')], *extra
    ]


@pytest.fixture(scope='module')
def workspace(tmp_path_factory):
    root = tmp_path_factory.mktemp('e2e')
    data = str(root / 'data')
    generate_synthetic_cityscapes(data, num_train=8, num_val=4, seed=0)
    run([sys.executable, 'tools/train.py', TEACHER, '--work-dir',
         str(root / 'teacher'),
         *small_run_options(data, 2)])
    return root, data


def student_options(data, teacher_ckpt, iters, extra=(), batch=4):
    return small_run_options(data, iters, batch=batch, extra=(
        f'model.teacher_ckpt={teacher_ckpt}', *extra))


def test_train_crash_resume_test_export(workspace):
    root, data = workspace
    teacher_ckpt = str(root / 'teacher' / 'iter_2.pth')
    straight = str(root / 'straight')
    log = run([sys.executable, 'tools/train.py', GDKD, '--work-dir', straight,
               *student_options(data, teacher_ckpt, 4)])
    assert re.search(r'decode\.loss_gdkd: \d', log)
    assert re.search(r'aux\.loss_gdkd: \d', log)
    assert 'eta:' in log and 'mIoU' in log

    # A run killed right after its iteration-2 checkpoint, then resumed.
    crashed = str(root / 'crashed')
    crashing = root / 'crashing.py'
    crashing.write_text(
        f'_base_ = {GDKD!r}\n'
        "custom_imports = dict(imports=['gdkd_seg', 'crash_hook'])\n"
        "custom_hooks = [dict(type='CrashAfterIterHook', iters=2)]\n")
    run([sys.executable, 'tools/train.py', str(crashing), '--work-dir',
         crashed, *student_options(data, teacher_ckpt, 4)], expect_rc=3)
    assert not osp.exists(osp.join(crashed, 'iter_4.pth'))
    log = run([sys.executable, 'tools/train.py', GDKD, '--work-dir', crashed,
               '--resume', *student_options(data, teacher_ckpt, 4)])
    assert 'resumed' in log.lower()

    a = safe_torch_load(osp.join(straight, 'iter_4.pth'))
    b = safe_torch_load(osp.join(crashed, 'iter_4.pth'))
    assert a['meta']['iter'] == b['meta']['iter'] == 4
    assert set(a['state_dict']) == set(b['state_dict'])
    assert all(k.startswith('student.') for k in a['state_dict'])
    for key, value in a['state_dict'].items():  # bit for bit
        assert torch.equal(b['state_dict'][key], value), key

    # tools/test.py on the distiller config evaluates the student alone.
    out_dir = str(root / 'pred')
    log = run([sys.executable, 'tools/test.py', GDKD,
               osp.join(straight, 'iter_4.pth'), '--work-dir',
               str(root / 'test'), '--out', out_dir, '--cfg-options',
               f'test_dataloader.dataset.data_root={data}',
               'model.teacher_ckpt=/nonexistent.pth'])
    ours = float(re.findall(r'mIoU: ([\d.]+)', log)[-1])
    assert len(os.listdir(out_dir)) == 4

    # Export, then evaluate with mmseg's own tools/test.py.
    exported, config = str(root / 'student.pth'), str(root / 'student.py')
    run([sys.executable, 'tools/model_converters/export_student.py', GDKD,
         osp.join(straight, 'iter_4.pth'), exported, '--out-config', config])
    # mmseg's own tools/test.py on the exported config (a plain
    # EncoderDecoder, no custom_imports), run by tools/misc/mmseg_tool.py,
    # which imports gdkd_seg first only for its compat layer (mmcv-lite).
    log = run([
        sys.executable, 'tools/misc/mmseg_tool.py', 'test', config, exported,
        '--work-dir', str(root / 'mmseg_test'), '--cfg-options',
        f'test_dataloader.dataset.data_root={data}'
    ])
    assert float(re.findall(r'mIoU: ([\d.]+)', log)[-1]) == ours


def test_a_run_that_goes_non_finite_fails_and_saves_no_nan(workspace):
    """tools/train.py on a distiller config: a teacher with one NaN bias is
    refused at load, and lr=1e30 stops at the first NaN loss, non-zero,
    with only finite checkpoints behind."""
    root, data = workspace
    teacher = safe_torch_load(str(root / 'teacher' / 'iter_2.pth'))
    teacher['state_dict']['decode_head.conv_seg.bias'][0] = float('nan')
    nan_teacher = str(root / 'nan_teacher.pth')
    torch.save(teacher, nan_teacher)
    log = run([sys.executable, 'tools/train.py', GDKD, '--work-dir',
               str(root / 'nan_teacher'),
               *student_options(data, nan_teacher, 2)], expect_rc=1)
    assert "holds NaN or inf in 1 tensors, e.g. " \
        "['decode_head.conv_seg.bias']" in log
    work_dir = root / 'diverged'
    log = run([sys.executable, 'tools/train.py', GDKD, '--work-dir',
               str(work_dir), *student_options(
                   data, str(root / 'teacher' / 'iter_2.pth'), 4,
                   extra=('optim_wrapper.optimizer.lr=1e30',
                          'default_hooks.checkpoint.interval=1'))],
              expect_rc=1)
    stopped = re.search(r'NonFiniteLossError: iteration (\d+): the loss is '
                        r'not finite \(loss=nan; non-finite terms: (.*)\)',
                        log)
    assert stopped and 'decode.loss_gdkd=nan' in stopped[2]
    saved = sorted(work_dir.glob('iter_*.pth'))
    assert len(saved) == int(stopped[1]) - 1
    for path in saved:
        state = safe_torch_load(str(path))['state_dict']
        assert all(torch.isfinite(v).all() for v in state.values())


def test_ddp_two_processes_with_torchrun(workspace):
    """tools/dist_train.sh from a shell where nothing is activated: no
    PYTHON, no VIRTUAL_ENV, no .venv/bin on PATH; the launcher finds the
    project's .venv itself (without one, it is given this Python)."""
    root, data = workspace
    work_dir = str(root / 'ddp')
    venv_python = osp.join(ROOT, '.venv', 'bin', 'python')
    env = dict(PORT=str(29500 + os.getpid() % 1000),
               OMP_NUM_THREADS='1')  # two processes share two cores
    if osp.isfile(venv_python):
        env['PATH'] = os.pathsep.join(
            p for p in os.environ['PATH'].split(os.pathsep)
            if not osp.realpath(p).startswith(osp.realpath(ROOT)))
    else:
        env['PYTHON'] = sys.executable
    log = run([
        'bash', 'tools/dist_train.sh', GDKD, '2', '--work-dir', work_dir,
        *student_options(data, str(root / 'teacher' / 'iter_2.pth'), 2,
                         batch=2)
    ], env=env, unset=('PYTHON', 'VIRTUAL_ENV', 'VENV'))
    if osp.isfile(venv_python):
        assert f'dist_launch: {venv_python} -m torch.distributed.run' in log
    assert 'Distributed launcher: pytorch' in log or 'world_size: 2' in log
    assert 'declares a total batch of 8' in log  # 2 x 2 != 1 x 8
    if not torch.cuda.is_available():  # each process logs its changes
        assert log.count('-> CPUDistributedDataParallel') == 2
    assert osp.isfile(osp.join(work_dir, 'iter_2.pth'))

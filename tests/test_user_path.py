"""The user's path after the Quick start: CPU distributed runs (logged
config changes, SyncBN reverted on the built model), the batch warning, the
plain student config of gdkd_seg's and mmrazor's distillers, mmseg's own
get_flops.py on it, the launchers' Python, and the inference snippet
of docs/train_test.md."""
import os
import os.path as osp
import re
import runpy
import subprocess
import sys
from argparse import Namespace

import numpy as np
import pytest
import torch
from mmengine.config import Config

import gdkd_seg.apis.config as config_module
from gdkd_seg.apis import (CPUDistributedDataParallel, check_total_batch,
                           load_config)
from test_benchmark_tools import run_tool
from test_end_to_end import GDKD as DEMO_GDKD
from test_end_to_end import run
from test_mmrazor_interop import CONFIG as MMRAZOR

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))


@pytest.fixture(scope='module')
def gloo_group():
    """A one-process gloo group, as torchrun would start on a CPU machine."""
    env = dict(MASTER_ADDR='127.0.0.1', MASTER_PORT=str(
        20000 + os.getpid() % 20000), RANK='0', WORLD_SIZE='1',
        LOCAL_RANK='0')
    with pytest.MonkeyPatch.context() as patch:
        for key, value in env.items():
            patch.setenv(key, value)
        yield
        if torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


def launch_args(**kw):
    return Namespace(**dict(dict(launcher='none', cfg_options=None,
                                 work_dir=None, local_rank=0), **kw))


def test_cpu_torchrun_changes_are_logged_one_line_each(gloo_group,
                                                       monkeypatch):
    messages = []
    monkeypatch.setattr(config_module, 'print_log',
                        lambda msg, **kw: messages.append(msg))
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    cfg = load_config(DEMO_GDKD, launch_args(
        launcher='pytorch', cfg_options={
            'find_unused_parameters': True,
            'model_wrapper_cfg': dict(broadcast_buffers=True, device_ids=[0])
        }))
    assert len(messages) == 3 and all('\n' not in m for m in messages)
    assert "backend 'nccl' -> 'gloo'" in messages[0]  # mmseg's runtime
    assert 'MMDistributedDataParallel -> CPUDistributedDataParallel' in \
        messages[1]
    assert 'started the gloo process group (rank 0 of 1)' in messages[2]
    assert all(m.startswith('no CUDA: ') for m in messages)
    assert cfg.env_cfg.dist_cfg.backend == 'gloo'
    assert cfg.model_wrapper_cfg == dict(
        type='CPUDistributedDataParallel', broadcast_buffers=True,
        find_unused_parameters=True)
    # The model config is left as written: SyncBN is reverted on the model.
    assert cfg.model.student.backbone.norm_cfg.type == 'SyncBN'

    messages.clear()  # one process: the Runner reverts SyncBN itself
    load_config(DEMO_GDKD, launch_args())
    assert messages == []
    with pytest.raises(ValueError, match='--launcher slurm needs CUDA'):
        load_config(DEMO_GDKD, launch_args(launcher='slurm'))


def test_cpu_ddp_wrapper_reverts_syncbn_on_the_built_model(gloo_group):
    if not torch.distributed.is_initialized():
        torch.distributed.init_process_group(backend='gloo')
    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3), torch.nn.SyncBatchNorm(4))
    weight = model[1].weight
    # As mmengine's Runner builds it: the local rank as device id.
    ddp = CPUDistributedDataParallel(model, device_ids=[0])
    assert not any(isinstance(m, torch.nn.SyncBatchNorm)
                   for m in ddp.module.modules())
    assert ddp.module[1].weight is weight  # same parameters, now BN
    ddp(torch.randn(2, 3, 8, 8)).sum().backward()
    assert weight.grad is not None
    with pytest.raises(ValueError, match='SyncBatchNorm'):
        torch.nn.parallel.DistributedDataParallel(
            torch.nn.Sequential(torch.nn.SyncBatchNorm(4)))


def test_batch_warning_prefers_auto_scale_lr_over_the_name(monkeypatch):
    warnings = []
    monkeypatch.setattr(config_module, 'print_log',
                        lambda msg, **kw: warnings.append(msg))
    cfg = Config(dict(train_dataloader=dict(batch_size=2),
                      auto_scale_lr=dict(enable=False, base_batch_size=16)))
    assert check_total_batch(cfg, 'x_4xb2-80k_cityscapes.py', 8) == 16
    assert warnings == []
    assert check_total_batch(cfg, 'x_4xb2-80k_cityscapes.py', 4) == 16
    assert 'total batch of 16 (auto_scale_lr.base_batch_size)' in warnings[0]
    assert 'auto_scale_lr.enable=True' in warnings[0]
    cfg.pop('auto_scale_lr')  # the name is the fallback
    assert check_total_batch(cfg, 'x_4xb2-80k_cityscapes.py', 4) == 8
    assert check_total_batch(cfg, 'no_batch_in_name.py', 4) is None


@pytest.mark.parametrize('config', [DEMO_GDKD, MMRAZOR],
                         ids=['gdkd_seg', 'mmrazor'])
def test_mmseg_tools_build_the_written_student_config(
        config, tmp_path, monkeypatch, capsys):
    if config == MMRAZOR:
        pytest.importorskip('mmrazor')
    from mmengine.analysis import get_model_complexity_info
    from mmengine.model import revert_sync_batchnorm
    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS
    from mmseg.structures import SegDataSample
    student = str(tmp_path / 'student.py')
    run_tool(osp.join(ROOT, 'tools', 'misc', 'student_config.py'),
             [config, '-o', student], monkeypatch)
    capsys.readouterr()
    monkeypatch.chdir(tmp_path)  # print_config also writes ./example.py
    run_tool(osp.join(ROOT, 'tools', 'misc', 'mmseg_tool.py'),
             ['print_config', student], monkeypatch)
    assert "type='EncoderDecoder'" in capsys.readouterr().out

    cfg = Config.fromfile(student)
    assert 'custom_imports' not in cfg and cfg.val_cfg.type == 'ValLoop'
    if config == MMRAZOR:  # the student is given by cfg_path there
        from mmengine.hub import get_config
        expected = get_config(Config.fromfile(config).student_cfg_path)
        assert cfg.model.backbone == expected.model.backbone
        assert cfg.model.data_preprocessor == expected.data_preprocessor

    # mmseg's get_flops.py, as fixed upstream after 1.2.2 (its 1.2.2 copy
    # passes both `input_shape` and `inputs`, which mmengine >= 0.8 refuses).
    init_default_scope(cfg.get('scope', 'mmseg'))
    model = MODELS.build(cfg.model)
    params = sum(p.numel() for name, p in model.named_parameters()
                 if not name.startswith('auxiliary_head'))
    model.auxiliary_head = None
    model = revert_sync_batchnorm(model)
    meta = dict(ori_shape=(32, 64), pad_shape=(32, 64))
    data = model.data_preprocessor(dict(
        inputs=[torch.rand(3, 32, 64)],
        data_samples=[SegDataSample(metainfo=meta)]))
    model.eval()
    info = get_model_complexity_info(model, inputs=data['inputs'],
                                     show_table=False, show_arch=False)
    assert info['params'] == params and info['flops'] > 0


def test_launchers_find_the_projects_venv_without_activation(tmp_path):
    venv_python = osp.join(ROOT, '.venv', 'bin', 'python')
    if not osp.isfile(venv_python):
        pytest.skip('no .venv here (made by tools/setup_env.sh)')
    fake_srun = tmp_path / 'srun'  # records the command it would run
    fake_srun.write_text('#!/bin/sh\necho "srun $*"\n')
    fake_srun.chmod(0o755)
    env = {k: v for k, v in os.environ.items()
           if k not in ('PYTHON', 'VIRTUAL_ENV', 'VENV')}
    env['PATH'] = os.pathsep.join([str(tmp_path), '/usr/bin', '/bin'])
    out = subprocess.run(
        ['bash', 'tools/slurm_train.sh', 'part', 'job', DEMO_GDKD],
        cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    assert f' {venv_python} -u tools/train.py {DEMO_GDKD} ' in out.stdout, \
        out.stdout + out.stderr
    env['PYTHON'] = '/opt/my/python'
    out = subprocess.run(
        ['bash', 'tools/slurm_train.sh', 'part', 'job', DEMO_GDKD],
        cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    assert ' /opt/my/python -u ' in out.stdout


TOY_CONFIG = """
custom_imports = dict(imports=['toy_run'], allow_failed_imports=False)
model = dict(type='Toy')
train_dataloader = dict(
    dataset=dict(type='ToyInputs'), batch_size=2, num_workers=0,
    sampler=dict(type='DefaultSampler', shuffle=True))
train_cfg = dict(by_epoch=False, max_iters=2)
optim_wrapper = dict(optimizer=dict(type='SGD', lr=0.1))
default_hooks = dict(
    checkpoint=dict(type='CheckpointHook', interval=2, by_epoch=False))
env_cfg = dict(dist_cfg=dict(backend='gloo'))
"""


def test_train_tool_ends_its_process_group(
        gloo_group, tmp_path, monkeypatch):
    config = tmp_path / 'toy.py'
    config.write_text(TOY_CONFIG)
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    run_tool('tools/train.py', [str(config), '--work-dir', str(tmp_path),
                                '--launcher', 'pytorch'], monkeypatch)
    assert (tmp_path / 'iter_2.pth').is_file()
    assert not torch.distributed.is_initialized()


@pytest.mark.slow
def test_finished_ddp_runs_exit_0_every_time(tmp_path):
    """A gloo group left alive at interpreter exit could abort a finished
    rank (SIGABRT, 'terminate called without an active exception'), and
    torchrun then failed the job; the tools destroy it at the end."""
    config = tmp_path / 'toy.py'
    config.write_text(TOY_CONFIG)
    for repeat in range(3):
        work_dir = tmp_path / f'run{repeat}'
        log = run(['bash', 'tools/dist_train.sh', str(config), '2',
                   '--work-dir', str(work_dir)],
                  env=dict(PORT=str(29500 + (os.getpid() + repeat) % 1000),
                           OMP_NUM_THREADS='1', PYTHON=sys.executable))
        assert 'terminate called' not in log
        assert (work_dir / 'iter_2.pth').is_file()


USER_GUIDE = osp.join('docs', 'train_test.md')


def doc_snippet(marker: str) -> str:
    """The user guide's python block that contains ``marker``."""
    with open(osp.join(ROOT, USER_GUIDE)) as f:
        blocks = re.findall(r'```python\n(.*?)```', f.read(), re.S)
    found = [b for b in blocks if marker in b]
    assert len(found) == 1, \
        f'expected one {USER_GUIDE} snippet with {marker!r}'
    return found[0]


def test_user_guide_inference_snippet_runs(tmp_path, monkeypatch):
    """The snippet as written, in a folder holding what it names: the demo
    configs, a (random) distillation checkpoint and a validation image."""
    import cv2
    from mmseg.datasets import CityscapesDataset
    from mmseg.registry import MODELS

    from gdkd_seg.apis import student_config
    snippet = doc_snippet('init_student')
    config, checkpoint, image, painted = re.findall(
        r"'([^']+\.(?:py|pth|png))'", snippet)
    monkeypatch.chdir(tmp_path)
    os.symlink(osp.join(ROOT, 'configs'), 'configs')
    student = MODELS.build(student_config(Config.fromfile(config)).model)
    os.makedirs(osp.dirname(checkpoint))
    torch.save(dict(meta=dict(dataset_meta=CityscapesDataset.METAINFO),
                    state_dict={f'student.{k}': v
                                for k, v in student.state_dict().items()}),
               checkpoint)
    os.makedirs(osp.dirname(image))
    rng = np.random.default_rng(0)
    assert cv2.imwrite(image, rng.integers(0, 255, (64, 128, 3), np.uint8))
    namespace = {}
    exec(compile(snippet, USER_GUIDE, 'exec'), namespace)
    assert namespace['result'].pred_sem_seg.data.shape == (1, 64, 128)
    assert cv2.imread(painted).shape[:2] == (64, 128)


def test_mmseg_tool_names_a_missing_or_ambiguous_tool():
    find_tool = runpy.run_path(
        osp.join(ROOT, 'tools', 'misc', 'mmseg_tool.py'))['find_tool']
    assert find_tool('get_flops').endswith(
        osp.join('analysis_tools', 'get_flops.py'))
    assert find_tool('misc/browse_dataset.py').endswith(
        osp.join('misc', 'browse_dataset.py'))
    with pytest.raises(SystemExit, match="'browse_dataset' is ambiguous"):
        find_tool('browse_dataset')
    with pytest.raises(SystemExit, match="mmseg has no tool 'flops'.*"
                       "get_flops.py"):
        find_tool('flops')

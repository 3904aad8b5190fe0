"""ClsDistiller trains on real Fashion-MNIST images through mmengine's Runner,
with the configs of the offline real-data run shrunk to a few iterations."""
import importlib.util
import os.path as osp
import subprocess

import pytest
import torch
from cls_helpers import mmpretrain_scope  # noqa: F401
from mmengine.config import Config
from mmengine.runner import Runner

from gdkd_seg.apis import student_config

FM = 'configs/cls/fashion_mnist/'
DEBIAN_SRC = '/usr/share/datasets/fashion-mnist'


def load_sweep_tool():
    spec = importlib.util.spec_from_file_location(
        'cls_fashion_mnist_sweep',
        'tools/analysis_tools/cls_fashion_mnist_sweep.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope='module')
def data_root(tmp_path_factory):
    if osp.isfile('data/fashion_mnist/t10k-labels-idx1-ubyte'):
        return 'data/fashion_mnist'
    if not osp.isfile(osp.join(DEBIAN_SRC, 'train-images-idx3-ubyte.gz')):
        pytest.skip('Fashion-MNIST is not installed: run `bash '
                    'tools/dataset_converters/get_fashion_mnist.sh` (as root '
                    "it installs Debian's dataset-fashion-mnist package)")
    dest = tmp_path_factory.mktemp('fashion_mnist')
    subprocess.run(['bash', 'tools/dataset_converters/get_fashion_mnist.sh',
                    str(dest)],
                   check=True)
    return str(dest)


def short_run(config, work_dir, data_root, **model_overrides):
    """One epoch of 128 training images, tested on 500 test images."""
    cfg = Config.fromfile(FM + config)
    cfg.work_dir = str(work_dir)
    cfg.experiment_name = osp.basename(str(work_dir))
    for loader, size in (('train_dataloader', 128), ('val_dataloader', 500),
                         ('test_dataloader', 500)):
        cfg[loader].dataset.update(data_root=data_root, indices=size)
    cfg.train_cfg.update(max_epochs=1, val_interval=1)
    cfg.param_scheduler.T_max = 1
    cfg.default_hooks.checkpoint.interval = 1
    cfg.model.update(model_overrides)
    runner = Runner.from_cfg(cfg)
    runner.train()
    return cfg, runner, runner.test()


@pytest.mark.slow
def test_gdkd_student_trains_from_a_trained_teacher(data_root, tmp_path):
    _, _, metrics = short_run(
        'teacher_resnet8w8_1xb64-10e_fashion-mnist-5k.py',
        tmp_path / 'teacher', data_root)
    assert 0 <= metrics['accuracy/top1'] <= 100
    teacher_ckpt = str(tmp_path / 'teacher' / 'epoch_1.pth')
    cfg, runner, metrics = short_run(
        'gdkd_resnet8w8_resnet8w4_1xb64-5e_fashion-mnist-5k.py',
        tmp_path / 'gdkd',
        data_root,
        teacher_ckpt=teacher_ckpt)
    assert 0 <= metrics['accuracy/top1'] <= 100
    logged = runner.message_hub.log_scalars
    assert 'train/loss_gdkd' in logged and 'train/loss_cls' in logged

    teacher_state = torch.load(teacher_ckpt, weights_only=False)['state_dict']
    for k, v in runner.model.teacher.state_dict().items():
        torch.testing.assert_close(v, teacher_state[k])  # loaded, unmoved

    # The checkpoint holds the student, which loads as a plain classifier.
    state = torch.load(
        tmp_path / 'gdkd' / 'epoch_1.pth', weights_only=False)['state_dict']
    assert state and all(k.startswith('student.') for k in state)
    from mmpretrain.registry import MODELS
    plain = MODELS.build(student_config(cfg).model)
    plain.load_state_dict({
        k[len('student.'):]: v
        for k, v in state.items()
    },
                          strict=True)


def test_sweep_tool_names_existing_configs_and_fills_the_doc(tmp_path):
    sweep = load_sweep_tool()
    for config in [sweep.TEACHER, *sweep.STUDENTS.values()]:
        assert osp.isfile(osp.join(sweep.CONFIG_DIR, config)), config
    doc = tmp_path / 'doc.md'
    doc.write_text(f'intro\n{sweep.TABLE_START}\nold\n{sweep.TABLE_END}\n'
                   'outro\n')
    sweep.replace_table(str(doc), '| new |')
    assert doc.read_text() == (f'intro\n{sweep.TABLE_START}\n| new |\n'
                               f'{sweep.TABLE_END}\noutro\n')


def test_results_table_has_every_run_with_mean_std_and_seeds():
    sweep = load_sweep_tool()
    targets = [{'points': [{'seeds': {
        '1': {'value': 72.0 + i, 'seconds': 80.0},
        '0': {'value': 70.0 + i, 'seconds': 60.0}}}]}
        for i in range(len(sweep.STUDENTS) - 1)] + [{'points': []}]
    software = dict(python='3.11.7', torch='2.14.1', machine='x86_64')
    table = sweep.results_table(
        dict(targets=targets, seeds=[0, 1], software=software), 82.92)
    lines = table.splitlines()
    assert lines[2] == '| teacher ResNet-8w8 (seed 0) | 82.92 | 82.92 | |'
    assert lines[3] == ('| ResNet-8w4, student alone | 71.00 ± 1.41 | '
                        '70.00, 72.00 | 70 |')
    assert lines[4].startswith('| ResNet-8w4, KD | 72.00 ± 1.41 | 71.00, ')
    assert lines[3 + len(targets) - 1] == '| ResNet-8w4, LSKD | not run | | |'
    assert 'Seeds 0, 1;' in table and '14.0 min of wall time' in table

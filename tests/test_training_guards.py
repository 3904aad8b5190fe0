"""A run that goes wrong says so, and a resumed run is the straight run:
training stops at the first non-finite loss and never saves non-finite
weights, a teacher with NaN weights is refused (on every DDP rank, like a
teacher that does not fit), and a resumed run restores the random state."""
import io
import os
import random

import numpy as np
import pytest
import torch
import torch.nn as nn
from mmengine.runner import Runner
from mmengine.runner import checkpoint as mmengine_checkpoint

from gdkd_seg.apis import load_config
from gdkd_seg.apis.config import RUN_HOOKS
from gdkd_seg.compat import safe_torch_load
from gdkd_seg.distillers.base import load_teacher_checkpoint
from gdkd_seg.engine import NonFiniteLossError, RandomStateHook
from test_checkpoint_files import toy_runner
from test_end_to_end import GDKD
from test_user_path import TOY_CONFIG, launch_args
from toy_run import Toy, ToyInputs

CLS_CONFIG = 'configs/cls/fashion_mnist/gdkd_resnet8w8_resnet8w4_1xb64-5e_' \
    'fashion-mnist-5k.py'


def guarded_runner(work_dir, **overrides):
    """toy_runner with the hooks the tools add to every config."""
    return toy_runner(
        work_dir,
        default_hooks=dict(
            checkpoint=dict(type='CheckpointHook', interval=1, by_epoch=False),
            **RUN_HOOKS),
        **overrides)


def saved(work_dir):
    return sorted(n for n in os.listdir(work_dir) if n.endswith('.pth'))


def all_finite(path):
    state = safe_torch_load(path)['state_dict']
    return all(torch.isfinite(t).all() for t in state.values())


class TwoTerms(Toy):
    """A fitted loss beside a distillation term that is NaN."""

    def forward(self, inputs, data_samples=None, mode='tensor'):
        out = self.linear(torch.stack(inputs))
        return dict(
            loss_fit=out.pow(2).mean(), loss_kd=out.mean() * float('nan'))


class Spare(Toy):
    """A weight outside the loss, which a test sets to inf."""

    def __init__(self):
        super().__init__()
        self.spare = nn.Parameter(torch.zeros(3))


@pytest.mark.parametrize('config', [GDKD, CLS_CONFIG])
def test_the_tools_turn_the_guards_on_for_shipped_configs(config):
    cfg = load_config(config, launch_args())
    assert cfg.default_hooks.finite_loss.type == 'FiniteLossHook'
    assert cfg.default_hooks.random_state.type == 'RandomStateHook'
    assert cfg.default_hooks.checkpoint.type == 'CheckpointHook'  # kept
    off = load_config(
        config, launch_args(cfg_options={'default_hooks.finite_loss': None}))
    assert 'finite_loss' not in off.default_hooks  # the Runner takes None
    # only for its own hooks
    assert off.default_hooks.random_state.type == 'RandomStateHook'


@pytest.mark.parametrize('switch', [{}, {
    'default_hooks.finite_loss': None
}, {
    'default_hooks.random_state': None
}])
def test_the_runner_gets_the_hooks_that_are_not_switched_off(switch, tmp_path):
    config = tmp_path / 'toy.py'
    config.write_text(TOY_CONFIG)
    cfg = load_config(
        str(config),
        launch_args(cfg_options=switch or None, work_dir=str(tmp_path)))
    hooks = [type(h).__name__ for h in Runner.from_cfg(cfg).hooks]
    assert ('FiniteLossHook' in hooks) == ('finite_loss' not in str(switch))
    assert ('RandomStateHook' in hooks) == \
        ('random_state' not in str(switch))
    assert 'CheckpointHook' in hooks


def test_a_nan_term_stops_training_before_its_checkpoint(tmp_path):
    runner = guarded_runner(tmp_path, model=TwoTerms())
    with pytest.raises(NonFiniteLossError) as err:
        runner.train()
    message = str(err.value)
    assert message.startswith('iteration 1: the loss is not finite')
    assert 'loss_kd=nan' in message and 'loss_fit' not in message
    assert 'default_hooks.finite_loss=None' in message
    assert saved(tmp_path) == []


def test_a_diverging_learning_rate_stops_with_only_finite_checkpoints(
        tmp_path):
    runner = guarded_runner(
        tmp_path,
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=1e30)),
        train_cfg=dict(by_epoch=False, max_iters=6))
    with pytest.raises(NonFiniteLossError, match=r'iteration (\d+): ') as err:
        runner.train()
    stopped_at = int(str(err.value).split(':')[0].split()[1])
    assert 1 < stopped_at < 6
    names = saved(tmp_path)
    assert names == [f'iter_{i}.pth' for i in range(1, stopped_at)]
    assert all(all_finite(tmp_path / n) for n in names)


def test_non_finite_weights_are_never_saved(tmp_path):
    model = Spare()
    with torch.no_grad():
        model.spare[1] = float('inf')
    runner = guarded_runner(tmp_path, model=model)
    with pytest.raises(
            NonFiniteLossError,
            match=r"iteration 1: 1 weight tensors are not finite, "
            r"e\.g\. \['spare'\]; the checkpoint was not saved"):
        runner.train()
    assert saved(tmp_path) == []


def test_non_finite_weights_stop_every_rank_not_only_the_saving_one(
        tmp_path):
    """Runner.save_checkpoint runs on the main process only: a rank that
    does not save must stop at the same iteration, not wait for rank 0."""
    model = Spare()
    with torch.no_grad():
        model.spare[1] = float('inf')
    runner = guarded_runner(tmp_path, model=model)
    runner.save_checkpoint = lambda *args, **kwargs: None  # not rank 0
    with pytest.raises(NonFiniteLossError,
                       match=r"iteration 1: 1 weight tensors are not finite"):
        runner.train()


class Huge(Toy):
    """A finite loss of about 1e30: Adam's squared gradient overflows
    while its normalised step, and so the weights, stay finite."""

    def forward(self, inputs, data_samples=None, mode='tensor'):
        return {'loss': self.linear(torch.stack(inputs)).mean() * 1e30}


def test_non_finite_optimizer_state_is_never_saved(tmp_path):
    runner = guarded_runner(
        tmp_path, model=Huge(),
        optim_wrapper=dict(optimizer=dict(type='Adam', lr=0.1)))
    with pytest.raises(
            NonFiniteLossError,
            match=r"iteration 1: 2 optimizer state tensors are not finite, "
            r"e\.g\. \['state\.0\.exp_avg_sq', 'state\.1\.exp_avg_sq'\]; "
            r'the checkpoint was not saved'):
        runner.train()
    assert saved(tmp_path) == []
    assert all(torch.isfinite(p).all() for p in runner.model.parameters())


def test_a_teacher_with_nan_weights_is_refused_with_the_tensors_name(tmp_path):
    weights = nn.Linear(2, 3).state_dict()
    weights['bias'][1] = float('nan')
    path = tmp_path / 'teacher.pth'
    torch.save({'state_dict': weights}, path)
    with pytest.raises(
            ValueError,
            match=r"holds NaN or inf in 1 tensors, e\.g\. "
            r"\['bias'\]"):
        load_teacher_checkpoint(nn.Linear(2, 3), str(path))


def test_a_teacher_that_does_not_fit_fails_on_every_rank(
        tmp_path, monkeypatch):
    """mmengine's strict load raises on rank 0 only; rank 1 of a DDP run
    must fail too instead of training on a half-loaded teacher."""
    monkeypatch.setattr(mmengine_checkpoint, 'get_dist_info', lambda: (1, 2))
    path = tmp_path / 'partial.pth'
    torch.save({'weight': torch.zeros(3, 2)}, path)
    with pytest.raises(
            RuntimeError, match=r"1 weights are missing, e\.g\. "
            r"\['bias'\]"):
        load_teacher_checkpoint(nn.Linear(2, 3), str(path))
    wide = tmp_path / 'wide.pth'
    torch.save({'weight': torch.zeros(4, 2), 'bias': torch.zeros(4)}, wide)
    with pytest.raises(RuntimeError, match='(?s)does not fit.*size mismatch'):
        load_teacher_checkpoint(nn.Linear(2, 3), str(wide))


class Noisy(Toy):
    """Draws from torch (dropout), numpy and Python at every step."""

    def __init__(self):
        super().__init__()
        self.dropout = nn.Dropout(0.5)

    def forward(self, inputs, data_samples=None, mode='tensor'):
        out = self.dropout(self.linear(torch.stack(inputs)))
        noise = random.random() + float(np.random.rand())
        return {'loss': (out - noise).pow(2).mean()}


# (resumed at, stopped at, data workers): 4 iterations make an epoch, so
# resuming at 6 re-creates the data loader's iterator while it skips.
@pytest.mark.parametrize('stop,total,workers', [(2, 4, 0), (6, 8, 0),
                                                (6, 8, 2)])
def test_a_resumed_run_equals_the_straight_run_bit_for_bit(
        stop, total, workers, tmp_path):

    def run(work_dir, iters, resume=False):
        torch.manual_seed(0)  # the same initial weights
        guarded_runner(
            work_dir,
            model=Noisy(),
            resume=resume,
            randomness=dict(seed=0, deterministic=True),
            train_dataloader=dict(
                dataset=ToyInputs(),
                sampler=dict(type='DefaultSampler', shuffle=True),
                batch_size=2,
                num_workers=workers),
            train_cfg=dict(by_epoch=False, max_iters=iters)).train()
        return safe_torch_load(work_dir / f'iter_{iters}.pth')

    straight = run(tmp_path / 'straight', total)
    run(tmp_path / 'resumed', stop)
    resumed = run(tmp_path / 'resumed', total, resume=True)
    for key, value in straight['state_dict'].items():
        assert torch.equal(resumed['state_dict'][key], value), key
    # Tensors and plain data: torch's weights_only load takes it as it is.
    state = resumed['meta']['random_state']
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    assert torch.equal(
        torch.load(buffer, weights_only=True)['torch'], state['torch'])
    assert state['torch'].dtype == torch.uint8
    assert state['numpy']['keys'].shape == (624, )


def seed_all(seed):
    torch.manual_seed(seed)
    np.random.seed(seed)
    random.seed(seed)


def draws():
    return torch.rand(3), np.random.rand(3), random.random()


def test_validation_gives_the_training_random_state_back():
    hook = RandomStateHook()
    seed_all(1)
    hook.before_val(runner=None)
    draws()  # what validation might draw
    hook.after_val(runner=None)
    after = draws()
    seed_all(1)
    expected = draws()
    assert torch.equal(after[0], expected[0])
    assert np.array_equal(after[1], expected[1]) and after[2] == expected[2]

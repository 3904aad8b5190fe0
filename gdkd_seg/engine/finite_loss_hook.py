"""Stop training at the first non-finite loss.

The idea of mmdet's ``CheckInvalidLossHook``, checked at every iteration
and at every save. mmengine's ``train_step`` has already stepped the
optimizer when ``after_train_iter`` runs, so the weights may be non-finite
by then; this hook runs at ``NORMAL`` priority, before ``CheckpointHook``
(``VERY_LOW``) and before the loop validates, so the raise comes before any
checkpoint or score of that iteration. A step can also make the weights
non-finite while the loss that produced it was finite (an absurd learning
rate): ``before_save_checkpoint`` refuses to write such weights, naming
the tensor. A huge finite loss can likewise leave the weights finite but
the optimizer's state infinite (Adam's ``exp_avg_sq``, the squared
gradient), which poisons every later step: the optimizer state is checked
the same way, naming the entry (``state.0.exp_avg_sq``). Only the main
process saves, so both are checked on every rank wherever
``CheckpointHook`` will save (its own interval rule), and so a DDP run
stops on all ranks together; ``before_save_checkpoint`` checks any other
save. Checking the loss before the optimizer step would need an
``OptimWrapper`` subclass, which every ``optim_wrapper`` type of a config
(``AmpOptimWrapper`` under ``--amp``, ...) would have to be; a hook works
with all of them.
"""
import math
from typing import Dict, List, Optional

import torch
from mmengine.hooks import CheckpointHook, Hook
from mmengine.model import is_model_wrapper
from mmengine.registry import HOOKS

#: The default_hooks key; ``default_hooks.finite_loss=None`` turns it off.
SWITCH = 'default_hooks.finite_loss=None'


class NonFiniteLossError(RuntimeError):
    """Training produced a non-finite loss or non-finite weights."""


@HOOKS.register_module()
class FiniteLossHook(Hook):
    """Raise :class:`NonFiniteLossError` at the first non-finite total loss
    (naming the iteration and the non-finite loss terms), and before saving
    a checkpoint whose weights or optimizer state are not all finite
    (naming the tensors).

    Turn it off with ``--cfg-options default_hooks.finite_loss=None``.
    """
    priority = 'NORMAL'  # before CheckpointHook (VERY_LOW)

    def after_train_iter(
            self,
            runner,
            batch_idx: int,
            data_batch=None,
            outputs: Optional[Dict[str, torch.Tensor]] = None) -> None:
        if outputs:
            _check_loss(runner.iter + 1, outputs)
        if _saves_now(runner, by_epoch=False):
            _check_state(runner.iter + 1, _training_state(runner))

    def after_train_epoch(self, runner) -> None:
        if _saves_now(runner, by_epoch=True):
            _check_state(runner.iter, _training_state(runner))

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        # Only the main process saves: the checks above, on every rank at
        # CheckpointHook's saves, stop a DDP run on all ranks; this one
        # covers any other save (save_best, a user's call).
        _check_state(checkpoint.get('meta', {}).get('iter'), checkpoint)


def _check_loss(iteration: int, outputs: Dict[str, torch.Tensor]) -> None:
    """Raise unless the total loss is finite, naming the non-finite
    terms."""
    if 'loss' in outputs and math.isfinite(float(outputs['loss'])):
        return  # the usual case: one host read, the total's
    values = {
        k: float(torch.as_tensor(v).detach())
        for k, v in outputs.items() if 'loss' in k
    }
    total = values.pop('loss', None)
    bad = {k: v for k, v in values.items() if not math.isfinite(v)}
    if total is None and not bad:
        return
    detail = ', '.join(f'{k}={v}' for k, v in bad.items()) if bad else \
        'every term is finite; their sum overflowed'
    raise NonFiniteLossError(
        f'iteration {iteration}: the loss is not finite (loss={total}; '
        f'non-finite terms: {detail}). Training stopped before saving this '
        f'iteration; {SWITCH} trains on regardless.')


def _saves_now(runner, by_epoch: bool) -> bool:
    """Whether a ``CheckpointHook`` saves after this iteration (or
    epoch), by its own rule."""
    for hook in runner.hooks:
        if isinstance(hook, CheckpointHook) and hook.by_epoch == by_epoch:
            if by_epoch:
                return hook.every_n_epochs(
                    runner, hook.interval, hook.save_begin) or (
                        hook.save_last and hook.is_last_train_epoch(runner))
            return hook.every_n_train_iters(
                runner, hook.interval, hook.save_begin) or (
                    hook.save_last and hook.is_last_train_iter(runner))
    return False


def _training_state(runner) -> dict:
    model = runner.model.module if is_model_wrapper(runner.model) \
        else runner.model
    return dict(state_dict=model.state_dict(),
                optimizer=runner.optim_wrapper.state_dict())


def _check_state(iteration, state: dict) -> None:
    """Raise unless a checkpoint's weights and optimizer state are all
    finite."""
    for part, what in (('state_dict', 'weight tensors'),
                       ('optimizer', 'optimizer state tensors')):
        bad = non_finite_tensors(state.get(part, {}))
        if bad:
            raise NonFiniteLossError(
                f'iteration {iteration}: {len(bad)} {what} are not finite, '
                f'e.g. {bad[:5]}; the checkpoint was not saved. {SWITCH} '
                'trains on regardless.')


def non_finite_tensors(tree, prefix: str = '') -> List[str]:
    """The dotted names of the floating-point tensors in a nest of dicts
    and lists (a state dict, an optimizer's) that hold NaN or inf."""
    if torch.is_tensor(tree):
        return [prefix] if tree.is_floating_point() and \
            not torch.isfinite(tree).all() else []
    items = tree.items() if isinstance(tree, dict) else enumerate(tree) \
        if isinstance(tree, (list, tuple)) else ()
    return [
        name for key, value in items for name in non_finite_tensors(
            value, f'{prefix}.{key}' if prefix else str(key))
    ]

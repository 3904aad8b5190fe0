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
the same way, naming the entry (``state.0.exp_avg_sq``). Checking the loss before the optimizer step would need an
``OptimWrapper`` subclass, which every ``optim_wrapper`` type of a config
(``AmpOptimWrapper`` under ``--amp``, ...) would have to be; a hook works
with all of them.
"""
import math
from typing import Dict, List, Optional

import torch
from mmengine.hooks import Hook
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
        if not outputs:
            return
        if 'loss' in outputs and math.isfinite(float(outputs['loss'])):
            return  # the usual case: one host read, the total's
        values = {
            k: float(torch.as_tensor(v).detach())
            for k, v in outputs.items() if 'loss' in k
        }
        total = values.pop('loss', None)
        bad = {k: v for k, v in values.items() if not math.isfinite(v)}
        if total is None and not bad or total is not None \
                and math.isfinite(total):
            return
        detail = ', '.join(f'{k}={v}' for k, v in bad.items()) if bad else \
            'every term is finite; their sum overflowed'
        raise NonFiniteLossError(
            f'iteration {runner.iter + 1}: the loss is not finite '
            f'(loss={total}; non-finite terms: {detail}). Training stopped '
            f'before saving this iteration; {SWITCH} trains on regardless.')

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        for part, what in (('state_dict', 'weight tensors'),
                           ('optimizer', 'optimizer state tensors')):
            bad = non_finite_tensors(checkpoint.get(part, {}))
            if bad:
                raise NonFiniteLossError(
                    f'iteration {checkpoint.get("meta", {}).get("iter")}: '
                    f'{len(bad)} {what} are not finite, e.g. {bad[:5]}; '
                    'the checkpoint was not saved. '
                    f'{SWITCH} trains on regardless.')


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

"""A hook that kills the training process right after a given iteration's
checkpoint is written, like a machine failure (used by the resume test)."""
import os

from mmengine.hooks import Hook
from mmengine.registry import HOOKS


@HOOKS.register_module()
class CrashAfterIterHook(Hook):
    priority = 'LOWEST'  # after CheckpointHook has saved

    def __init__(self, iters: int) -> None:
        self.iters = iters

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None) -> None:
        if runner.iter + 1 >= self.iters:
            os._exit(3)

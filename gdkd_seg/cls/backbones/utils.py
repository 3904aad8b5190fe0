"""What the backbones here share."""
from typing import Iterable, Sequence

from torch import Tensor


def stage_outputs(x: Tensor, stages: Iterable, out_indices: Sequence[int]):
    """Run ``x`` through ``stages`` in turn and return, as a tuple, the
    outputs of the stages whose index is in ``out_indices``."""
    outs = []
    for i, stage in enumerate(stages):
        x = stage(x)
        if i in out_indices:
            outs.append(x)
    return tuple(outs)

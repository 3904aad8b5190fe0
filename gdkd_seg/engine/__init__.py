"""Training-loop hooks that gdkd_seg's tools turn on for every config (see
:func:`gdkd_seg.apis.load_config`): a run stops at the first non-finite loss
and never saves non-finite weights, and its random state travels in its
checkpoints so that a resumed run continues as a straight one would."""
from .finite_loss_hook import FiniteLossHook, NonFiniteLossError
from .random_state_hook import RandomStateHook

__all__ = ['FiniteLossHook', 'NonFiniteLossError', 'RandomStateHook']

"""Load a trained (or distilled) student as a plain mmseg model."""
from typing import Tuple, Union

from mmengine.config import Config
from mmengine.runner.checkpoint import _load_checkpoint
from mmseg.apis import init_model

from ..export import STUDENT_PREFIXES, extract_student_state_dict
from .config import student_config


def load_student_state(checkpoint: str) -> Tuple[dict, dict]:
    """The student's weights and the checkpoint's meta.

    Args:
        checkpoint (str): a plain mmseg checkpoint, or a distillation one
            (gdkd_seg's ``student.*`` or mmrazor's ``architecture.*`` keys).

    Returns:
        tuple[dict, dict]: ``(state_dict, meta)``.
    """
    ckpt = _load_checkpoint(checkpoint, map_location='cpu')
    state = ckpt.get('state_dict', ckpt)
    if any(k.startswith(STUDENT_PREFIXES) for k in state):
        state = extract_student_state_dict(state)
    return state, ckpt.get('meta', {})


def init_student(config: Union[str, Config],
                 checkpoint: str,
                 device: str = 'cpu'):
    """mmseg's ``init_model`` for any of our configs and checkpoints.

    Args:
        config (str | Config): a segmentor or distiller config; for a
            distiller only its student is built.
        checkpoint (str): see :func:`load_student_state`.
        device (str): e.g. 'cpu' or 'cuda:0'.
    """
    cfg = Config.fromfile(config) if isinstance(config, str) else config
    model = init_model(student_config(cfg), None, device='cpu')
    state, meta = load_student_state(checkpoint)
    model.load_state_dict(state, strict=True)
    if 'dataset_meta' in meta:
        model.dataset_meta = meta['dataset_meta']
    return model.to(device).eval()

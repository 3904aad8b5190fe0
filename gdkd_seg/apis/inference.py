"""Load a trained (or distilled) student, or a distiller's teacher, as a
plain mmseg model."""
from typing import Tuple, Union

from mmengine.config import Config
from mmengine.runner.checkpoint import _load_checkpoint
from mmseg.apis import init_model

from ..export import STUDENT_PREFIXES, extract_student_state_dict
from .config import student_config, teacher_config


def as_config(config: Union[str, Config]) -> Config:
    """A config file parsed as written (unlike :func:`load_config`, no
    command-line overrides or CPU changes), or a Config as given."""
    return Config.fromfile(config) if isinstance(config, str) else config


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
    return _init_segmentor(student_config(as_config(config)), checkpoint,
                           device)


def init_teacher(config: Union[str, Config],
                 checkpoint: str,
                 device: str = 'cpu'):
    """The teacher of a distiller config (or the model of a plain segmentor
    config), built from :func:`teacher_config` and loaded from
    ``checkpoint``, in eval mode.

    Args:
        config (str | Config): a distiller or segmentor config.
        checkpoint (str): the teacher's weights: a plain mmseg checkpoint,
            or a distillation one, whose student then stands as the teacher
            (see :func:`load_student_state`).
        device (str): e.g. 'cpu' or 'cuda:0'.
    """
    return _init_segmentor(teacher_config(as_config(config)), checkpoint,
                           device)


def _init_segmentor(cfg: Config, checkpoint: str, device: str):
    """Build ``cfg.model`` (a segmentor) and load ``checkpoint`` strictly."""
    model = init_model(cfg, None, device='cpu')
    state, meta = load_student_state(checkpoint)
    model.load_state_dict(state, strict=True)
    if 'dataset_meta' in meta:
        model.dataset_meta = meta['dataset_meta']
    return model.to(device).eval()

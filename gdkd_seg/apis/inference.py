"""Load a trained (or distilled) student, or a distiller's teacher, as a
plain mmseg model, and segment images with it."""
import os
import os.path as osp
from typing import List, Optional, Tuple, Union

import cv2
import numpy as np

from mmengine.config import Config
from mmengine.runner.checkpoint import _load_checkpoint
from mmseg.apis import inference_model, init_model, show_result_pyplot

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


#: What :func:`inference_images` reads from a folder (OpenCV's formats).
IMAGE_SUFFIXES = ('.jpg', '.jpeg', '.png', '.bmp', '.tif', '.tiff', '.webp')


def list_images(path: str) -> List[str]:
    """``path`` if it is a file, else the images under the folder ``path``
    (recursively, sorted)."""
    if osp.isfile(path):
        return [path]
    if not osp.isdir(path):
        raise FileNotFoundError(f'no image or folder {path!r}')
    found = sorted(
        osp.join(root, name) for root, _, names in os.walk(path)
        for name in names if name.lower().endswith(IMAGE_SUFFIXES))
    if not found:
        raise FileNotFoundError(
            f'{path!r} holds no image ({", ".join(IMAGE_SUFFIXES)})')
    return found


def inference_images(model,
                     path: str,
                     out_dir: Optional[str] = None,
                     show_dir: Optional[str] = None,
                     opacity: float = 0.5) -> List:
    """Segment an image or a folder of images, no labels needed.

    Each image goes through mmseg's ``inference_model`` alone, so images of
    different sizes need no common batch size. What mmseg's ``image_demo.py``
    writes, for every image:

    * ``out_dir/<name>.png``: the label map, one class index per pixel
      (uint8, as mmseg's ``tools/test.py --out`` writes them);
    * ``show_dir/<name>.png``: the prediction painted over the image
      (mmseg's ``show_result_pyplot``).

    ``<name>`` is the image's path below ``path`` without its suffix.

    Args:
        model: a segmentor from :func:`init_student` (or mmseg's
            ``init_model``).
        path (str): an image, or a folder searched recursively for
            :data:`IMAGE_SUFFIXES`.
        out_dir (str | None): where the label maps go (None: not written).
        show_dir (str | None): where the painted images go (None: not
            written).
        opacity (float): of the painted prediction.

    Returns:
        list[SegDataSample]: the predictions, in :func:`list_images` order.
    """
    if getattr(model, 'dataset_meta', None) is None:
        # A checkpoint without meta: the classes and palette of the config's
        # test set, which mmseg's visualizer needs to paint.
        from mmseg.registry import DATASETS
        model.dataset_meta = DATASETS.get(
            model.cfg.test_dataloader.dataset.type).METAINFO
    images = list_images(path)
    root = path if osp.isdir(path) else osp.dirname(path) or '.'
    results = []
    for image in images:
        result = inference_model(model, image)
        name = osp.splitext(osp.relpath(image, root))[0] + '.png'
        if out_dir is not None:
            label_map = result.pred_sem_seg.data[0].cpu().numpy()
            _write_png(osp.join(out_dir, name), label_map.astype(np.uint8))
        if show_dir is not None:
            os.makedirs(osp.dirname(osp.join(show_dir, name)), exist_ok=True)
            show_result_pyplot(model, image, result, opacity=opacity,
                               show=False, with_labels=False,
                               out_file=osp.join(show_dir, name))
        results.append(result)
    return results


def _write_png(path: str, array: np.ndarray) -> None:
    os.makedirs(osp.dirname(path) or '.', exist_ok=True)
    if not cv2.imwrite(path, array):
        raise OSError(f'could not write {path}')

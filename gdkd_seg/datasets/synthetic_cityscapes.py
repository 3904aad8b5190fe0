"""A deterministic synthetic dataset in the real Cityscapes layout.

``generate_synthetic_cityscapes(root)`` writes::

    root/leftImg8bit/{train,val}/<city>/<city>_<seq>_<frame>_leftImg8bit.png
    root/gtFine/{train,val}/<city>/<city>_<seq>_<frame>_gtFine_labelTrainIds.png
    root/gtFine/{train,val}/<city>/<city>_<seq>_<frame>_gtFine_labelIds.png
    root/meta.json

so mmseg's ``CityscapesDataset`` (``img_suffix='_leftImg8bit.png'``,
``seg_map_suffix='_gtFine_labelTrainIds.png'``) reads it unchanged, and the
``labelIds`` maps serve Cityscapes' own evaluation tools. Scenes come from
:func:`gdkd_seg.datasets.street_scene.render_street_scene`; see its module
docstring for how they are designed.

Every image is a pure function of ``(seed, split, index, height, width)``
and the generator code: growing ``num_train`` keeps the existing images byte
for byte, and train and val never share a random stream. ``meta.json``
records the parameters and a fingerprint of the code and of the numpy and
OpenCV versions, so a second call reuses the data only if it would write the
same bytes again.
"""
import hashlib
import json
import os
import os.path as osp
import shutil
from typing import Dict, Tuple

import cv2
import numpy as np

from . import street_scene
from .street_scene import (BICYCLE, BUS, EGO_VEHICLE, FENCE, MOTORCYCLE,
                           NUM_CLASSES, PERSON, RIDER, STATIC, TERRAIN,
                           TRAFFIC_LIGHT, TRAFFIC_SIGN, TRAIN, TRUCK,
                           UNLABELED, WALL, render_street_scene)

# The layout and meta.json format; pixel changes are caught by the
# fingerprint (generator_fingerprint) without anyone having to bump this.
GENERATOR_VERSION = 1
GENERATOR = 'gdkd_seg.datasets.synthetic_cityscapes'
META_FILE = 'meta.json'
IMG_SUFFIX = '_leftImg8bit.png'
TRAIN_IDS_SUFFIX = '_gtFine_labelTrainIds.png'
LABEL_IDS_SUFFIX = '_gtFine_labelIds.png'
IGNORE_INDEX = 255

# mmseg's CityscapesDataset class order (= Cityscapes train ids 0..18).
CLASSES = ('road', 'sidewalk', 'building', 'wall', 'fence', 'pole',
           'traffic light', 'traffic sign', 'vegetation', 'terrain', 'sky',
           'person', 'rider', 'car', 'truck', 'bus', 'train', 'motorcycle',
           'bicycle')
# Cityscapes label ids of train ids 0..18, from cityscapesscripts' labels
# table (copied so generation does not need the optional package; a test
# checks the copy against it).
TRAIN_ID_TO_LABEL_ID = (7, 8, 11, 12, 13, 17, 19, 20, 21, 22, 23, 24, 25, 26,
                        27, 28, 31, 32, 33)
# Void pixels keep their Cityscapes meaning in labelIds.
VOID_TO_LABEL_ID = {UNLABELED: 0, EGO_VEHICLE: 1, STATIC: 4}

SPLITS = ('train', 'val')
# Real Cityscapes city names, so paths look like the real thing.
CITIES = {
    'train': ('aachen', 'bochum', 'bremen'),
    'val': ('frankfurt', 'lindau', 'munster')
}
FRAME = 19  # Cityscapes annotates the 20th frame of every 30-frame snippet
# Rare classes, cycled through by image index: each image shows one of them
# clearly, so every class is present in any split of >= 12 images.
FOCUS_SCHEDULE = (TRAIN, MOTORCYCLE, BUS, TRUCK, RIDER, BICYCLE, TRAFFIC_LIGHT,
                  WALL, FENCE, TERRAIN, TRAFFIC_SIGN, PERSON)


def _lookup(table: Dict[int, int], default: int) -> np.ndarray:
    lut = np.full(256, default, np.uint8)
    for code, value in table.items():
        lut[code] = value
    return lut


TRAIN_ID_LUT = _lookup({i: i for i in range(NUM_CLASSES)}, IGNORE_INDEX)
LABEL_ID_LUT = _lookup(
    {
        **dict(enumerate(TRAIN_ID_TO_LABEL_ID)),
        **VOID_TO_LABEL_ID
    }, 0)


def sample_name(split: str, index: int) -> Tuple[str, str]:
    """City and Cityscapes file stem of image ``index`` of ``split``.

    Returns:
        tuple[str, str]: e.g. ``('bochum', 'bochum_000000_000019')``.
    """
    cities = CITIES[split]
    city = cities[index % len(cities)]
    return city, f'{city}_{index // len(cities):06d}_{FRAME:06d}'


def sample_paths(root: str, split: str, index: int) -> Dict[str, str]:
    """Paths of the image and both label maps of one sample."""
    city, stem = sample_name(split, index)
    img_dir = osp.join(root, 'leftImg8bit', split, city)
    ann_dir = osp.join(root, 'gtFine', split, city)
    return dict(
        img=osp.join(img_dir, stem + IMG_SUFFIX),
        train_ids=osp.join(ann_dir, stem + TRAIN_IDS_SUFFIX),
        label_ids=osp.join(ann_dir, stem + LABEL_IDS_SUFFIX))


def render_sample(split: str, index: int, height: int, width: int,
                  seed: int) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Render one sample without writing it.

    Args:
        split (str): ``'train'`` or ``'val'``.
        index (int): Image index within the split.
        height (int): Image height in pixels.
        width (int): Image width in pixels.
        seed (int): Dataset seed (non-negative).

    Returns:
        tuple[np.ndarray, np.ndarray, np.ndarray]: ``(H, W, 3)`` uint8 RGB
        image, ``(H, W)`` uint8 train ids (255 = ignore) and ``(H, W)``
        uint8 Cityscapes label ids.
    """
    assert split in SPLITS, f'expected split in {SPLITS}, got {split!r}'
    assert seed >= 0 and index >= 0, (
        f'expected non-negative seed and index, got {seed}, {index}')
    rng = np.random.default_rng([seed, SPLITS.index(split), index])
    focus = FOCUS_SCHEDULE[index % len(FOCUS_SCHEDULE)]
    image, codes = render_street_scene(height, width, rng, focus)
    return image, TRAIN_ID_LUT[codes], LABEL_ID_LUT[codes]


def _write_png(path: str, array: np.ndarray) -> None:
    if not cv2.imwrite(path, array):
        raise OSError(f'could not write {path}')


def _split_stats(split: str, pixels: np.ndarray, images_with: np.ndarray,
                 num_images: int) -> dict:
    """Per-class pixel frequencies (over all pixels) and image counts."""
    total = max(int(pixels.sum()), 1)
    return dict(
        num_images=num_images,
        cities=list(CITIES[split]),
        class_pixel_frequency={
            name: round(float(pixels[i]) / total, 6)
            for i, name in enumerate(CLASSES)
        },
        ignore_fraction=round(float(pixels[IGNORE_INDEX]) / total, 6),
        images_with_class={
            name: int(images_with[i])
            for i, name in enumerate(CLASSES)
        })


def read_meta(root: str):
    """The parsed ``meta.json`` of ``root``, or None if there is none."""
    path = osp.join(root, META_FILE)
    if not osp.isfile(path):
        return None
    with open(path) as f:
        return json.load(f)


def _write_meta(root: str, meta: dict) -> None:
    with open(osp.join(root, META_FILE), 'w') as f:
        json.dump(meta, f, indent=2)
        f.write('\n')


def generator_fingerprint() -> dict:
    """What the pixels depend on besides the parameters.

    The source of the renderer and of this module (any edit regenerates
    stale data), and the numpy and OpenCV versions (random streams and
    rasterisation could change between releases).
    """
    digest = hashlib.sha256()
    for path in (street_scene.__file__, __file__):
        with open(path, 'rb') as f:
            digest.update(f.read())
    return dict(
        source_sha256=digest.hexdigest()[:16],
        numpy=np.__version__,
        opencv=cv2.__version__)


def _reusable(root: str, meta, params: dict) -> bool:
    if (meta is None or meta.get('generator') != GENERATOR
            or meta.get('version') != GENERATOR_VERSION
            or meta.get('fingerprint') != generator_fingerprint()
            or meta.get('params') != params or not meta.get('complete')):
        return False
    counts = dict(train=params['num_train'], val=params['num_val'])
    return all(
        osp.isfile(path) for split in SPLITS for index in range(counts[split])
        for path in sample_paths(root, split, index).values())


def generate_synthetic_cityscapes(root: str,
                                  num_train: int = 300,
                                  num_val: int = 60,
                                  height: int = 128,
                                  width: int = 256,
                                  seed: int = 0,
                                  overwrite: bool = False) -> dict:
    """Write (or reuse) a synthetic Cityscapes-format dataset under ``root``.

    Existing data is reused when its ``meta.json`` records the same
    parameters and generator (version and fingerprint) and all files are
    there; otherwise, or with
    ``overwrite``, the ``leftImg8bit`` and ``gtFine`` folders are deleted and
    written again. A ``root`` holding Cityscapes-layout data that this
    function did not write (no ``meta.json`` of ours) is never deleted.

    Args:
        root (str): Dataset root (``data_root`` in an mmseg config).
        num_train (int): Number of training images.
        num_val (int): Number of validation images.
        height (int): Image height in pixels (Cityscapes is 1:2).
        width (int): Image width in pixels.
        seed (int): Non-negative seed; the data is a pure function of the
            seed, the sizes and the generator version.
        overwrite (bool): Regenerate even if the data could be reused.

    Returns:
        dict: The contents of ``meta.json`` (parameters, class names, per
        split class pixel frequencies and image counts) plus ``reused``:
        whether existing data was kept.

    Raises:
        FileExistsError: ``root`` has ``leftImg8bit``/``gtFine`` data
            without a ``meta.json`` written by this generator.
    """
    assert num_train >= 0 and num_val >= 0, (
        f'expected non-negative sizes, got {num_train}, {num_val}')
    params = dict(num_train=num_train, num_val=num_val, height=height,
                  width=width, seed=seed)
    meta = read_meta(root)
    if not overwrite and _reusable(root, meta, params):
        return dict(meta, reused=True)

    data_dirs = [osp.join(root, d) for d in ('leftImg8bit', 'gtFine')]
    if meta is None or meta.get('generator') != GENERATOR:
        if any(osp.isdir(d) and os.listdir(d) for d in data_dirs):
            raise FileExistsError(
                f'{root} holds Cityscapes-layout data that was not written by '
                f'{GENERATOR} (no {META_FILE} of ours); refusing to delete '
                'it. Choose another root or remove it yourself.')
    for d in data_dirs:
        shutil.rmtree(d, ignore_errors=True)
    os.makedirs(root, exist_ok=True)
    meta = dict(
        generator=GENERATOR,
        version=GENERATOR_VERSION,
        fingerprint=generator_fingerprint(),
        complete=False,  # an interrupted run is regenerated, never reused
        params=params,
        classes=list(CLASSES),
        img_suffix=IMG_SUFFIX,
        seg_map_suffix=TRAIN_IDS_SUFFIX,
        label_ids_suffix=LABEL_IDS_SUFFIX,
        ignore_index=IGNORE_INDEX,
        splits={})
    _write_meta(root, meta)

    for split, count in (('train', num_train), ('val', num_val)):
        pixels = np.zeros(256, np.int64)
        images_with = np.zeros(256, np.int64)
        for index in range(count):
            image, train_ids, label_ids = render_sample(
                split, index, height, width, seed)
            paths = sample_paths(root, split, index)
            for path in paths.values():
                os.makedirs(osp.dirname(path), exist_ok=True)
            _write_png(paths['img'], image[..., ::-1])  # OpenCV wants BGR
            _write_png(paths['train_ids'], train_ids)
            _write_png(paths['label_ids'], label_ids)
            counts = np.bincount(train_ids.ravel(), minlength=256)
            pixels += counts
            images_with += counts > 0
        meta['splits'][split] = _split_stats(split, pixels, images_with,
                                             count)
    meta['complete'] = True
    _write_meta(root, meta)
    return dict(meta, reused=False)

"""tools/test.py as users meet it: every image painted with --show-dir,
real photos of mixed sizes, and inference on unlabelled images (--images)."""
import glob
import os
import os.path as osp
import re
import sys

import cv2
import numpy as np
import pytest
import torch
from mmengine.config import Config

import gdkd_seg  # noqa: F401  (compat layer: mmseg imports with mmcv-lite)
from gdkd_seg.apis import student_config, teacher_config
from gdkd_seg.datasets.synthetic_cityscapes import \
    generate_synthetic_cityscapes
from test_benchmark_tools import run_tool
from test_end_to_end import GDKD as DEMO_GDKD
from test_end_to_end import run

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
TEST_TOOL = osp.join(ROOT, 'tools', 'test.py')


def distillation_checkpoint(config, path, role='student'):
    """A randomly initialised ``role`` of ``config`` (no pretrained
    weights), saved as a distillation checkpoint (``student.*`` keys) with
    the Cityscapes classes in its meta, as the Runner saves them.

    Returns:
        tuple: the model (eval mode) and its plain config.
    """
    from mmseg.datasets import CityscapesDataset
    from mmseg.registry import MODELS
    select = student_config if role == 'student' else teacher_config
    cfg = select(Config.fromfile(config))
    cfg.merge_from_dict({'model.pretrained': None,
                         'model.backbone.init_cfg': None})
    torch.manual_seed(0)
    model = MODELS.build(cfg.model).eval()
    torch.save({'meta': {'dataset_meta': CityscapesDataset.METAINFO},
                'state_dict': {f'student.{k}': v
                               for k, v in model.state_dict().items()}},
               path)
    return model, cfg


def painted(show_dir):
    return glob.glob(osp.join(show_dir, '**', '*.png'), recursive=True)


@pytest.fixture(scope='module')
def mixed_sizes(tmp_path_factory):
    """Three labelled val images, one of them resized to another aspect
    ratio (as real photos come), and a student checkpoint."""
    root = tmp_path_factory.mktemp('mixed')
    data = str(root / 'data')
    generate_synthetic_cityscapes(data, num_train=1, num_val=3, seed=0)
    image = sorted(glob.glob(osp.join(data, 'leftImg8bit', 'val', '*',
                                      '*.png')))[0]
    label = image.replace('leftImg8bit', 'gtFine', 1).replace(
        '_leftImg8bit.png', '_gtFine_labelTrainIds.png')
    for path, interpolation in ((image, cv2.INTER_LINEAR),
                                (label, cv2.INTER_NEAREST)):
        array = cv2.imread(path, cv2.IMREAD_UNCHANGED)
        assert array is not None and array.shape[:2] == (128, 256)
        cv2.imwrite(path, cv2.resize(array, (256, 96),
                                     interpolation=interpolation))
    checkpoint = str(root / 'student.pth')
    distillation_checkpoint(DEMO_GDKD, checkpoint)
    return root, data, checkpoint


@pytest.mark.slow
@pytest.mark.parametrize('interval, expected', [(None, 3), (2, 1)])
def test_mixed_sizes_are_tested_and_every_image_painted(
        mixed_sizes, interval, expected):
    root, data, checkpoint = mixed_sizes
    show_dir = str(root / f'show{interval}')
    log = run([
        sys.executable, TEST_TOOL, DEMO_GDKD, checkpoint, '--work-dir',
        str(root / f'work{interval}'), '--show-dir', show_dir,
        *([] if interval is None else ['--show-interval', str(interval)]),
        '--cfg-options', f'test_dataloader.dataset.data_root={data}',
        'train_dataloader.dataset.data_root=/nonexistent',
        'model.teacher_ckpt=/nonexistent.pth'
    ])
    assert re.search(r'mIoU: [\d.]+', log)
    assert len(painted(show_dir)) == expected


def test_images_without_labels_give_label_maps_and_paintings(
        tmp_path, monkeypatch):
    folder = tmp_path / 'photos'
    os.makedirs(folder / 'street')
    rng = np.random.default_rng(0)
    sizes = {'a.jpg': (70, 150), osp.join('street', 'b.png'): (120, 90)}
    for name, size in sizes.items():
        assert cv2.imwrite(str(folder / name),
                           rng.integers(0, 255, (*size, 3), np.uint8))
    checkpoint = str(tmp_path / 'student.pth')
    model, cfg = distillation_checkpoint(DEMO_GDKD, checkpoint)
    out, show = tmp_path / 'labels', tmp_path / 'painted'
    monkeypatch.setenv('LOCAL_RANK', '0')
    run_tool(TEST_TOOL, [
        DEMO_GDKD, checkpoint, '--images', str(folder), '--out', str(out),
        '--show-dir', str(show)
    ], monkeypatch)

    from mmseg.apis import inference_model
    model.cfg = cfg
    for name, size in sizes.items():
        png = osp.splitext(name)[0] + '.png'
        label_map = cv2.imread(str(out / png), cv2.IMREAD_UNCHANGED)
        assert label_map.dtype == np.uint8 and label_map.shape == size
        expected = inference_model(model, str(folder / name))
        np.testing.assert_array_equal(
            label_map, expected.pred_sem_seg.data[0].numpy())
        assert cv2.imread(str(show / png)).shape == (*size, 3)


def test_images_path_without_images_is_named(tmp_path):
    from gdkd_seg.apis.inference import list_images
    (tmp_path / 'notes.txt').write_text('no image here')
    with pytest.raises(FileNotFoundError, match='holds no image'):
        list_images(str(tmp_path))
    with pytest.raises(FileNotFoundError, match="no image or folder '/nope'"):
        list_images('/nope')

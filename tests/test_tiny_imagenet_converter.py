"""tools/dataset_converters/tiny_imagenet.py sorts the validation images
into class folders, and the Tiny-ImageNet configs then read train and val
with the same class indices."""
import os.path as osp
import subprocess
import sys

import pytest
from PIL import Image

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
WNIDS = ('n01443537', 'n01629819', 'n01641577')
# validation image -> class, as in val/val_annotations.txt
VAL = {'val_0.JPEG': 'n01641577', 'val_1.JPEG': 'n01443537',
       'val_2.JPEG': 'n01641577', 'val_3.JPEG': 'n01629819'}


def make_tiny_imagenet(root):
    """A tiny-imagenet-200 folder as the archive unpacks, 3 classes."""
    for i, wnid in enumerate(WNIDS):
        images = root / 'train' / wnid / 'images'
        images.mkdir(parents=True)
        for j in range(2):
            Image.new('RGB', (64, 64), (40 * i, 8 * j, 0)).save(
                images / f'{wnid}_{j}.JPEG')
        (root / 'train' / wnid / f'{wnid}_boxes.txt').write_text('')
    (root / 'val' / 'images').mkdir(parents=True)
    for name in VAL:
        Image.new('RGB', (64, 64)).save(root / 'val' / 'images' / name)
    (root / 'val' / 'val_annotations.txt').write_text(''.join(
        f'{name}\t{wnid}\t0\t0\t63\t63\n' for name, wnid in VAL.items()))
    (root / 'wnids.txt').write_text('\n'.join(WNIDS) + '\n')


def convert(root):
    return subprocess.run(
        [sys.executable, 'tools/dataset_converters/tiny_imagenet.py',
         str(root)], cwd=ROOT, capture_output=True, text=True)


def test_val_images_move_to_class_folders_that_the_config_reads(tmp_path):
    pytest.importorskip('mmpretrain')
    from mmengine.config import Config
    from mmpretrain.datasets import CustomDataset
    make_tiny_imagenet(tmp_path)
    result = convert(tmp_path)
    assert result.returncode == 0, result.stderr
    assert 'sorted 4 validation images' in result.stdout
    assert not (tmp_path / 'val' / 'images').exists()
    for name, wnid in VAL.items():
        assert (tmp_path / 'val' / wnid / name).is_file()
    cfg = Config.fromfile(
        osp.join(ROOT, 'configs/cls/_base_/tiny-imagenet_1xb64-100e.py'),
        import_custom_modules=False)
    splits = {}
    for split, loader in (('train', cfg.train_dataloader),
                          ('val', cfg.val_dataloader)):
        dataset = dict(loader.dataset, data_root=str(tmp_path), pipeline=[])
        assert dataset.pop('type') == 'CustomDataset'
        splits[split] = CustomDataset(**dataset)
    assert splits['train'].CLASSES == splits['val'].CLASSES == WNIDS
    assert len(splits['train']) == 6
    val = splits['val']
    labels = {osp.basename(info['img_path']): info['gt_label']
              for info in map(val.get_data_info, range(len(val)))}
    assert labels == {name: WNIDS.index(wnid) for name, wnid in VAL.items()}


def test_a_second_run_and_incomplete_annotations_are_refused(tmp_path):
    make_tiny_imagenet(tmp_path)
    (tmp_path / 'val' / 'val_annotations.txt').write_text(
        'val_0.JPEG\tn01641577\t0\t0\t63\t63\n')
    result = convert(tmp_path)
    assert result.returncode != 0
    assert '3 images of' in result.stderr and 'are not in' in result.stderr
    assert (tmp_path / 'val' / 'images' / 'val_0.JPEG').is_file()  # untouched
    make_tiny_imagenet(tmp_path / 'fresh')
    assert convert(tmp_path / 'fresh').returncode == 0
    result = convert(tmp_path / 'fresh')
    assert result.returncode != 0 and 'sorted already' in result.stderr

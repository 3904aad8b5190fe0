"""The synthetic Cityscapes generator: layout, labels, determinism, reuse."""
import filecmp
import json
import os
import os.path as osp
import runpy

import cv2
import numpy as np
import pytest

import gdkd_seg  # noqa: F401  (compat layer: mmseg imports with mmcv-lite)
from gdkd_seg.datasets import synthetic_cityscapes as synth
from gdkd_seg.datasets.synthetic_cityscapes import (
    CLASSES, TRAIN_ID_TO_LABEL_ID, generate_synthetic_cityscapes, read_meta,
    render_sample, sample_paths)

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
PARAMS = dict(num_train=24, num_val=12, height=64, width=128, seed=0)
TINY = dict(num_train=3, num_val=2, height=32, width=64)


@pytest.fixture(scope='module')
def root(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('synthetic_cityscapes'))
    meta = generate_synthetic_cityscapes(root, **PARAMS)
    assert meta['reused'] is False
    return root


def _all_files(root):
    return sorted(
        osp.relpath(osp.join(d, f), root) for d, _, files in os.walk(root)
        for f in files)


def _read(path):
    array = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    assert array is not None, f'could not read {path}'
    return array


def _labels(root, split, key):
    count = PARAMS[f'num_{split}']
    return [
        _read(sample_paths(root, split, i)[key]) for i in range(count)
    ]


@pytest.mark.parametrize('split', ['train', 'val'])
def test_mmseg_cityscapes_dataset_reads_it_unchanged(root, split):
    from mmcv.transforms import LoadImageFromFile
    from mmseg.datasets import CityscapesDataset
    from mmseg.datasets.transforms import LoadAnnotations

    # Classes, not names: no registry scope needs to be set up.
    dataset = CityscapesDataset(
        data_root=root,
        data_prefix=dict(
            img_path=f'leftImg8bit/{split}', seg_map_path=f'gtFine/{split}'),
        pipeline=[dict(type=LoadImageFromFile),
                  dict(type=LoadAnnotations)])
    assert len(dataset) == PARAMS[f'num_{split}']
    assert dataset.metainfo['classes'] == CLASSES
    for index in (0, len(dataset) - 1):
        sample = dataset[index]
        city = osp.basename(osp.dirname(sample['img_path']))
        stem = osp.basename(sample['img_path'])[:-len('_leftImg8bit.png')]
        assert sample['img_path'] == osp.join(root, 'leftImg8bit', split, city,
                                              stem + '_leftImg8bit.png')
        assert sample['seg_map_path'] == osp.join(
            root, 'gtFine', split, city, stem + '_gtFine_labelTrainIds.png')
        assert sample['img'].shape == (PARAMS['height'], PARAMS['width'], 3)
        gt = sample['gt_seg_map']
        assert gt.shape == (PARAMS['height'], PARAMS['width'])
        assert set(np.unique(gt)) <= set(range(19)) | {255}
    # mmseg reads BGR: the pixels are exactly the rendered RGB image, and
    # the map is exactly the rendered train ids (file order is sorted).
    first = dataset[0]
    stem = osp.basename(first['img_path'])[:-len('_leftImg8bit.png')]
    index = next(i for i in range(len(dataset))
                 if synth.sample_name(split, i)[1] == stem)
    image, train_ids, _ = render_sample(split, index, PARAMS['height'],
                                        PARAMS['width'], PARAMS['seed'])
    np.testing.assert_array_equal(first['img'], image[..., ::-1])
    np.testing.assert_array_equal(first['gt_seg_map'], train_ids)


def test_file_names_follow_cityscapes(root):
    for split in ('train', 'val'):
        stems = set()
        for i in range(PARAMS[f'num_{split}']):
            paths = sample_paths(root, split, i)
            city, stem = synth.sample_name(split, i)
            assert city in synth.CITIES[split]
            assert stem.split('_')[0] == city
            assert [len(p) for p in stem.split('_')[1:]] == [6, 6]
            assert paths['img'] == osp.join(root, 'leftImg8bit', split, city,
                                            stem + '_leftImg8bit.png')
            assert osp.isfile(paths['img'])
            assert osp.isfile(paths['train_ids'])
            assert osp.isfile(paths['label_ids'])
            stems.add(stem)
        assert len(stems) == PARAMS[f'num_{split}']
    # Nothing else is written (no stray files) besides meta.json.
    expected = 3 * (PARAMS['num_train'] + PARAMS['num_val']) + 1
    assert len(_all_files(root)) == expected


def test_label_maps_are_uint8_with_cityscapes_values(root):
    for split in ('train', 'val'):
        for train_ids, label_ids in zip(_labels(root, split, 'train_ids'),
                                        _labels(root, split, 'label_ids')):
            assert train_ids.dtype == np.uint8 and train_ids.ndim == 2
            assert set(np.unique(train_ids)) <= set(range(19)) | {255}
            # labelIds agree with trainIds pixel by pixel.
            valid = train_ids != 255
            lut = np.asarray(TRAIN_ID_TO_LABEL_ID)
            np.testing.assert_array_equal(label_ids[valid],
                                          lut[train_ids[valid]])
            # Void is unlabeled (0), ego vehicle (1) or static (4).
            assert set(np.unique(label_ids[~valid])) <= {0, 1, 4}


def test_train_id_table_matches_cityscapesscripts():
    labels = pytest.importorskip('cityscapesscripts.helpers.labels')
    expected = tuple(labels.trainId2label[t].id for t in range(19))
    assert TRAIN_ID_TO_LABEL_ID == expected
    assert CLASSES == tuple(labels.trainId2label[t].name for t in range(19))
    for void_id in (0, 1, 4):
        assert labels.id2label[void_id].trainId == 255


@pytest.mark.parametrize('split', ['train', 'val'])
def test_every_class_appears_in_each_split(root, split):
    present = set()
    for train_ids in _labels(root, split, 'train_ids'):
        present |= set(np.unique(train_ids).tolist())
    assert present == set(range(19)) | {255}, (
        f'missing classes: {set(range(19)) - present}')


def test_void_regions_like_real_data(root):
    label_ids = np.stack(_labels(root, 'train', 'label_ids'))
    ego = (label_ids == 1).any(axis=(1, 2))
    assert 0 < ego.sum() < len(ego), 'ego vehicle in some images, not all'
    # The bonnet is at the bottom of the image, never at the top.
    assert (label_ids[:, :PARAMS['height'] // 2] != 1).all()
    assert (label_ids == 0).any() and (label_ids == 4).any()


def test_meta_json_matches_the_files(root):
    meta = read_meta(root)
    assert meta['generator'] == synth.GENERATOR
    assert meta['version'] == synth.GENERATOR_VERSION
    assert meta['fingerprint'] == synth.generator_fingerprint()
    assert len(meta['fingerprint']['source_sha256']) == 16
    assert meta['complete'] is True
    assert meta['params'] == PARAMS
    assert meta['classes'] == list(CLASSES)
    assert meta['seg_map_suffix'] == '_gtFine_labelTrainIds.png'
    for split in ('train', 'val'):
        stats = meta['splits'][split]
        train_ids = np.stack(_labels(root, split, 'train_ids'))
        counts = np.bincount(train_ids.ravel(), minlength=256)
        assert stats['num_images'] == PARAMS[f'num_{split}']
        for i, name in enumerate(CLASSES):
            assert stats['class_pixel_frequency'][name] == pytest.approx(
                counts[i] / train_ids.size, abs=1e-6)
            assert stats['images_with_class'][name] == int(
                (train_ids == i).any(axis=(1, 2)).sum())
        assert stats['ignore_fraction'] == pytest.approx(
            counts[255] / train_ids.size, abs=1e-6)
        # Cityscapes-like proportions: stuff dominates, things are rarer.
        freq = stats['class_pixel_frequency']
        assert freq['road'] > 0.2 and freq['building'] > 0.1
        assert freq['traffic light'] < 0.01 and freq['bicycle'] < 0.01


def test_same_seed_gives_identical_bytes(tmp_path):
    a, b = str(tmp_path / 'a'), str(tmp_path / 'b')
    generate_synthetic_cityscapes(a, seed=3, **TINY)
    generate_synthetic_cityscapes(b, seed=3, **TINY)
    files = _all_files(a)
    assert files == _all_files(b) and len(files) == 3 * 5 + 1
    _, mismatch, errors = filecmp.cmpfiles(a, b, files, shallow=False)
    assert mismatch == [] and errors == []


def test_other_seed_gives_other_images(tmp_path):
    a, b = str(tmp_path / 'a'), str(tmp_path / 'b')
    generate_synthetic_cityscapes(a, seed=0, **TINY)
    generate_synthetic_cityscapes(b, seed=1, **TINY)
    for split, count in (('train', 3), ('val', 2)):
        for i in range(count):
            img_a = _read(sample_paths(a, split, i)['img'])
            img_b = _read(sample_paths(b, split, i)['img'])
            assert np.abs(img_a.astype(int) - img_b).mean() > 5
    # ... and train and val never repeat each other within one seed.
    assert not np.array_equal(
        _read(sample_paths(a, 'train', 0)['img']),
        _read(sample_paths(a, 'val', 0)['img']))


def test_growing_a_split_keeps_existing_images(tmp_path):
    small, large = str(tmp_path / 'small'), str(tmp_path / 'large')
    generate_synthetic_cityscapes(small, **TINY)
    generate_synthetic_cityscapes(large, **dict(TINY, num_train=5))
    for split, count in (('train', 3), ('val', 2)):
        for i in range(count):
            for key, path in sample_paths(small, split, i).items():
                assert filecmp.cmp(path, sample_paths(large, split, i)[key],
                                   shallow=False)


def test_reuse_when_params_match_regenerate_otherwise(tmp_path):
    root = str(tmp_path)
    assert generate_synthetic_cityscapes(root, **TINY)['reused'] is False
    # A marker inside the data folders survives reuse, not regeneration.
    marker = osp.join(root, 'leftImg8bit', 'train', 'marker')
    open(marker, 'w').close()
    assert generate_synthetic_cityscapes(root, **TINY)['reused'] is True
    assert osp.exists(marker)

    meta = generate_synthetic_cityscapes(root, **dict(TINY, height=48,
                                                      width=96))
    assert meta['reused'] is False and not osp.exists(marker)
    assert _read(sample_paths(root, 'train', 0)['img']).shape == (48, 96, 3)
    assert read_meta(root)['params']['height'] == 48

    open(marker, 'w').close()
    meta = generate_synthetic_cityscapes(
        root, overwrite=True, **dict(TINY, height=48, width=96))
    assert meta['reused'] is False and not osp.exists(marker)


def test_incomplete_or_damaged_data_is_regenerated(tmp_path):
    root = str(tmp_path)
    generate_synthetic_cityscapes(root, **TINY)
    missing = sample_paths(root, 'val', 1)['label_ids']
    os.remove(missing)
    assert generate_synthetic_cityscapes(root, **TINY)['reused'] is False
    assert osp.isfile(missing)

    meta = read_meta(root)
    meta['complete'] = False  # as left by an interrupted run
    with open(osp.join(root, 'meta.json'), 'w') as f:
        json.dump(meta, f)
    assert generate_synthetic_cityscapes(root, **TINY)['reused'] is False
    assert read_meta(root)['complete'] is True


@pytest.mark.parametrize('field', ['source_sha256', 'numpy', 'opencv'])
def test_data_from_other_generator_code_is_regenerated(tmp_path, field):
    root = str(tmp_path)
    generate_synthetic_cityscapes(root, **TINY)
    meta = read_meta(root)
    meta['fingerprint'][field] = 'something else'
    with open(osp.join(root, 'meta.json'), 'w') as f:
        json.dump(meta, f)
    assert generate_synthetic_cityscapes(root, **TINY)['reused'] is False
    assert read_meta(root)['fingerprint'] == synth.generator_fingerprint()


def test_fingerprint_follows_the_renderer_source(tmp_path, monkeypatch):
    from gdkd_seg.datasets import street_scene
    before = synth.generator_fingerprint()
    edited = tmp_path / 'street_scene.py'
    with open(street_scene.__file__) as f:
        edited.write_text(f.read() + '# an edit\n')
    monkeypatch.setattr(street_scene, '__file__', str(edited))
    after = synth.generator_fingerprint()
    assert after['source_sha256'] != before['source_sha256']
    assert dict(after, source_sha256=None) == dict(before, source_sha256=None)


@pytest.mark.parametrize('bad', [dict(seed=-1), dict(num_val=-1),
                                 dict(height=8)])
def test_bad_parameters_fail_before_existing_data_is_touched(tmp_path, bad):
    root = str(tmp_path)
    generate_synthetic_cityscapes(root, **TINY)
    before = _all_files(root)
    with pytest.raises(AssertionError, match='expected'):
        generate_synthetic_cityscapes(root, **dict(TINY, **bad))
    assert _all_files(root) == before and read_meta(root)['complete']


def test_foreign_cityscapes_data_is_never_deleted(tmp_path):
    root = str(tmp_path)
    real = tmp_path / 'leftImg8bit' / 'train' / 'aachen'
    real.mkdir(parents=True)
    (real / 'aachen_000000_000019_leftImg8bit.png').write_bytes(b'real')
    for overwrite in (False, True):
        with pytest.raises(FileExistsError, match='refusing to delete'):
            generate_synthetic_cityscapes(root, overwrite=overwrite, **TINY)
    assert (real / 'aachen_000000_000019_leftImg8bit.png').exists()


def test_command_line_tool(tmp_path, capsys):
    path = osp.join(REPO, 'tools', 'dataset_converters',
                    'generate_synthetic_cityscapes.py')
    tool = runpy.run_path(path)  # in process: no second interpreter start
    root = str(tmp_path / 'data')
    montage = str(tmp_path / 'montage.png')
    argv = [
        root, '--num-train', '3', '--num-val', '2', '--height', '32',
        '--width', '64', '--seed', '5'
    ]
    tool['main'](argv + ['--montage', montage, '--montage-rows', '2'])
    out = capsys.readouterr().out
    assert 'wrote' in out and '3 train' in out and '2 val' in out
    assert read_meta(root)['params'] == dict(
        num_train=3, num_val=2, height=32, width=64, seed=5)
    # Two rows of (image | coloured label), each 32 x (2 * 64) pixels, in
    # mmseg's Cityscapes palette with ignore in black.
    from mmseg.datasets import CityscapesDataset
    palette = np.zeros((256, 3), np.uint8)
    palette[:19] = CityscapesDataset.METAINFO['palette']
    figure = _read(montage)[..., ::-1]  # BGR on disk
    assert figure.shape == (2 * 32, 2 * 64, 3)
    for row in range(2):
        image, train_ids, _ = render_sample('train', row, 32, 64, 5)
        tile = figure[32 * row:32 * (row + 1)]
        np.testing.assert_array_equal(tile[:, :64], image)
        np.testing.assert_array_equal(tile[:, 64:], palette[train_ids])
        assert (tile[:, 64:][train_ids == 0] == (128, 64, 128)).all()  # road
    tool['main'](argv)
    assert 'reused' in capsys.readouterr().out

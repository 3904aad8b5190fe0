"""tools/dataset_converters/cityscapes.py (mmseg's converter) turns polygons
into trainIds and writes the split lists."""
import json
import os.path as osp
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))


def test_polygons_become_label_train_ids(tmp_path):
    pytest.importorskip('cityscapesscripts')
    city = tmp_path / 'gtFine' / 'val' / 'lindau'
    city.mkdir(parents=True)
    for split in ('train', 'test'):  # present, empty here
        (tmp_path / 'gtFine' / split).mkdir()
    polygons = {
        'imgHeight': 16, 'imgWidth': 32,
        'objects': [
            {'label': 'road', 'polygon': [[0, 8], [31, 8], [31, 15], [0, 15]]},
            {'label': 'sky', 'polygon': [[0, 0], [31, 0], [31, 7], [0, 7]]},
            {'label': 'car', 'polygon': [[4, 9], [9, 9], [9, 13], [4, 13]]},
        ]
    }
    (city / 'lindau_000000_000019_gtFine_polygons.json').write_text(
        json.dumps(polygons))
    subprocess.run([sys.executable, 'tools/dataset_converters/cityscapes.py',
                    str(tmp_path), '-o', str(tmp_path / 'splits')],
                   cwd=ROOT, check=True, capture_output=True)
    assert (tmp_path / 'splits' / 'val.txt').read_text() == \
        'lindau/lindau_000000_000019\n'
    assert (tmp_path / 'splits' / 'train.txt').read_text() == ''
    label = np.array(Image.open(
        city / 'lindau_000000_000019_gtFine_labelTrainIds.png'))
    assert label.shape == (16, 32)
    assert label[2, 16] == 10  # sky
    assert label[14, 20] == 0  # road
    assert label[11, 6] == 13  # car, drawn after road
    missing = subprocess.run(
        [sys.executable, 'tools/dataset_converters/cityscapes.py',
         str(tmp_path / 'nowhere')], cwd=ROOT, capture_output=True, text=True)
    assert missing.returncode != 0 and 'gtFine' in missing.stderr

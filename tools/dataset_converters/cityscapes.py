"""Make Cityscapes' *_gtFine_labelTrainIds.png and the split lists.

    python tools/dataset_converters/cityscapes.py data/cityscapes \
        [--nproc 8] [-o OUT_DIR] [--gt-dir gtFine]

Runs mmseg's own converter (``mmseg/.mim/tools/dataset_converters/
cityscapes.py``, which needs cityscapesscripts and mmengine, not mmcv): the
polygons become 19-class trainIds (0..18, everything else 255) beside them,
and ``{train,val,test}.txt`` list the images of each split in OUT_DIR
(default: the data root). Checked here first: the gtFine folder exists and
holds polygons, which mmseg's script does not check.
"""
import os.path as osp
import runpy
import sys

from mmengine.utils import scandir

sys.path.insert(
    0, osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))), 'misc'))
from mmseg_tool import find_tool  # noqa: E402


def main():
    converter = runpy.run_path(find_tool('dataset_converters/cityscapes.py'))
    args = converter['parse_args']()
    gt_dir = osp.join(args.cityscapes_path, args.gt_dir)
    if not osp.isdir(gt_dir):
        raise SystemExit(f'{gt_dir} does not exist: expected the Cityscapes '
                         f'{args.gt_dir} folder there')
    if next(iter(scandir(gt_dir, '_polygons.json', recursive=True)),
            None) is None:
        raise SystemExit(f'no *_polygons.json under {gt_dir}')
    converter['main']()


if __name__ == '__main__':
    main()

"""Make Cityscapes' *_gtFine_labelTrainIds.png from the polygon annotations.

    python tools/dataset_converters/cityscapes.py data/cityscapes [--nproc 8]

Expects the official layout (leftImg8bit/ and gtFine/ from
leftImg8bit_trainvaltest.zip and gtFine_trainvaltest.zip) and uses
cityscapesscripts' json2labelImg, as mmseg's converter does; the 19 training
classes get ids 0..18 and everything else 255.
"""
import argparse
import os.path as osp

from mmengine.utils import scandir, track_parallel_progress, track_progress


def convert_json_to_label(json_file: str) -> None:
    from cityscapesscripts.preparation.json2labelImg import json2labelImg
    label_file = json_file.replace('_polygons.json', '_labelTrainIds.png')
    json2labelImg(json_file, label_file, 'trainIds')


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('cityscapes_path', help='cityscapes data path')
    parser.add_argument('--gt-dir', default='gtFine', type=str)
    parser.add_argument('--nproc', default=1, type=int, help='processes')
    return parser.parse_args()


def main():
    args = parse_args()
    gt_dir = osp.join(args.cityscapes_path, args.gt_dir)
    if not osp.isdir(gt_dir):
        raise FileNotFoundError(f'{gt_dir} does not exist: expected the '
                                'Cityscapes gtFine folder there')
    poly_files = [
        osp.join(gt_dir, p)
        for p in scandir(gt_dir, '_polygons.json', recursive=True)
    ]
    if not poly_files:
        raise FileNotFoundError(f'no *_polygons.json under {gt_dir}')
    if args.nproc > 1:
        track_parallel_progress(convert_json_to_label, poly_files, args.nproc)
    else:
        track_progress(convert_json_to_label, poly_files)


if __name__ == '__main__':
    main()

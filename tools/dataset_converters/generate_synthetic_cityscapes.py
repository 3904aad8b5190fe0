"""Write (or reuse) the synthetic Cityscapes-format dataset.

Example::

    python tools/dataset_converters/generate_synthetic_cityscapes.py \\
        data/synthetic_cityscapes --num-train 300 --num-val 60 \\
        --height 128 --width 256

``--montage out.png`` also writes a figure of the first training images next
to their labels in mmseg's Cityscapes palette (ignore in black).
"""
import argparse
import time

import numpy as np

from gdkd_seg.datasets.synthetic_cityscapes import (
    CLASSES, IGNORE_INDEX, generate_synthetic_cityscapes, render_sample)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('root', help='dataset root (data_root in configs)')
    parser.add_argument('--num-train', type=int, default=300)
    parser.add_argument('--num-val', type=int, default=60)
    parser.add_argument('--height', type=int, default=128)
    parser.add_argument('--width', type=int, default=256)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument(
        '--overwrite', action='store_true',
        help='regenerate even if the existing data matches the parameters')
    parser.add_argument('--montage', help='also write this PNG figure')
    parser.add_argument('--montage-rows', type=int, default=4)
    return parser.parse_args(argv)


def write_montage(path: str, rows: int, height: int, width: int,
                  seed: int) -> None:
    """Training images 0..rows-1, each beside its coloured label map."""
    import cv2

    import gdkd_seg  # noqa: F401  (compat layer: mmseg with mmcv-lite)
    from mmseg.datasets import CityscapesDataset
    palette = np.zeros((256, 3), np.uint8)  # ignore stays black
    palette[:len(CLASSES)] = CityscapesDataset.METAINFO['palette']
    tiles = []
    for index in range(rows):
        image, train_ids, _ = render_sample('train', index, height, width,
                                            seed)
        tiles.append(np.concatenate([image, palette[train_ids]], axis=1))
    figure = np.concatenate(tiles, axis=0)
    if not cv2.imwrite(path, figure[..., ::-1],
                       [cv2.IMWRITE_PNG_COMPRESSION, 9]):
        raise OSError(f'could not write {path}')


def main(argv=None) -> None:
    args = parse_args(argv)
    start = time.perf_counter()
    meta = generate_synthetic_cityscapes(
        args.root, num_train=args.num_train, num_val=args.num_val,
        height=args.height, width=args.width, seed=args.seed,
        overwrite=args.overwrite)
    seconds = time.perf_counter() - start
    params = meta['params']
    action = 'reused' if meta['reused'] else f'wrote in {seconds:.1f} s'
    print(f"{args.root}: {action}: {params['num_train']} train + "
          f"{params['num_val']} val images of {params['height']}x"
          f"{params['width']} (seed {params['seed']}), "
          f'Cityscapes layout, meta.json')
    print(f"{'class':<14}" + ''.join(f'{s:>16}' for s in meta['splits']))
    for name in CLASSES:
        cells = ''.join(f"{s['class_pixel_frequency'][name]:>9.4f} in "
                        f"{s['images_with_class'][name]:>4d}"
                        for s in meta['splits'].values())
        print(f'{name:<14}{cells}')
    cells = ''.join(f"{s['ignore_fraction']:>9.4f}{'':>7}"
                    for s in meta['splits'].values())
    print(f"{'ignore (' + str(IGNORE_INDEX) + ')':<14}{cells}")
    print('(pixel fraction, and number of images containing the class)')
    if args.montage:
        write_montage(args.montage, args.montage_rows, params['height'],
                      params['width'], params['seed'])
        print(f'montage: {args.montage}')


if __name__ == '__main__':
    main()

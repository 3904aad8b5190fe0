"""Sort Tiny-ImageNet's validation images into one folder per class.

    python tools/dataset_converters/tiny_imagenet.py data/tiny-imagenet-200

The archive (tiny-imagenet-200.zip) has ``train/<wnid>/images/*.JPEG``,
which mmpretrain's ``CustomDataset`` reads as it is, but
``val/images/*.JPEG`` with the labels in ``val/val_annotations.txt``
(``file<TAB>wnid<TAB>box``). This moves each validation image to
``val/<wnid>/``, the layout the configs in configs/cls/ (and the official
classification code's ImageFolder) read, and removes the emptied
``val/images``. The test images have no labels and are left alone.
"""
import argparse
import os
import os.path as osp


def sort_val(root: str) -> int:
    """Move ``root/val/images/*`` into ``root/val/<wnid>/``; returns how many
    images moved. Refuses if an image of the annotations is missing, if an
    image has no annotation, or if a class has no folder under ``train``."""
    val = osp.join(root, 'val')
    images = osp.join(val, 'images')
    annotations = osp.join(val, 'val_annotations.txt')
    if not osp.isdir(images):
        raise FileNotFoundError(
            f'{images} does not exist: not an unpacked tiny-imagenet-200 '
            'folder, or its val images are sorted already')
    with open(annotations) as f:
        labels = dict(line.split('\t')[:2] for line in f if line.strip())
    unlabelled = sorted(set(os.listdir(images)) - set(labels))
    if unlabelled:
        raise ValueError(f'{len(unlabelled)} images of {images} are not in '
                         f'{annotations}, e.g. {unlabelled[0]}')
    missing = sorted(name for name in labels
                     if not osp.isfile(osp.join(images, name)))
    if missing:
        raise FileNotFoundError(f'{len(missing)} images of {annotations} '
                                f'are not in {images}, e.g. {missing[0]}')
    classes = set(os.listdir(osp.join(root, 'train')))
    unknown = sorted(set(labels.values()) - classes)
    if unknown:
        raise ValueError(f'classes {unknown[:3]} of {annotations} have no '
                         f'folder in {osp.join(root, "train")}')
    for name, wnid in labels.items():
        os.makedirs(osp.join(val, wnid), exist_ok=True)
        os.replace(osp.join(images, name), osp.join(val, wnid, name))
    os.rmdir(images)
    return len(labels)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('root', help='the unpacked tiny-imagenet-200 folder')
    moved = sort_val(parser.parse_args().root)
    print(f'sorted {moved} validation images into class folders')


if __name__ == '__main__':
    main()

"""Convert a CIFAR-100 teacher released with mdistiller (resnet56,
resnet110, resnet32x4, wrn_40_2, vgg13, ResNet50) to an mmpretrain
checkpoint for the configs in configs/cls/baselines/ (CifarResNet,
CifarWideResNet, CifarVGG, ResNet_CIFAR).

    python tools/model_converters/convert_mdistiller_cifar.py \
        download_ckpts/cifar_teachers/resnet32x4_vanilla/ckpt_epoch_240.pth \
        work_dirs/resnet32x4_1xb64-240e_cifar100/epoch_240.pth

Then the distillation configs' default teacher_ckpt finds it (or pass
``--cfg-options model.teacher_ckpt=...``). The networks are the same
modules under other names, so this only renames keys.
"""
import argparse
import os
import os.path as osp

import torch

from gdkd_seg.cls.mdistiller_ckpt import convert_mdistiller_cifar


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('src', help='mdistiller checkpoint (.pth)')
    parser.add_argument('dst', help='mmpretrain checkpoint to write')
    args = parser.parse_args()
    # mdistiller checkpoints hold plain tensors and numbers.
    checkpoint = torch.load(args.src, map_location='cpu', weights_only=True)
    state_dict = checkpoint.get('model',
                                checkpoint.get('state_dict', checkpoint))
    os.makedirs(osp.dirname(osp.abspath(args.dst)), exist_ok=True)
    torch.save(
        dict(
            state_dict=convert_mdistiller_cifar(state_dict),
            meta=dict(converted_from=osp.abspath(args.src))), args.dst)
    print(f'wrote {args.dst}')


if __name__ == '__main__':
    main()

"""Train a segmentor or a distiller (mmseg's tools/train.py, plus gdkd_seg).

    python tools/train.py CONFIG [--work-dir DIR] [--resume] [--amp]
        [--cfg-options k=v ...] [--launcher {none,pytorch,slurm,mpi}]
"""
import argparse
import logging

from mmengine.dist import get_world_size
from mmengine.logging import print_log
from mmengine.runner import Runner

from gdkd_seg.apis import (add_launch_args, check_total_batch,
                           destroy_process_group, load_config)


def parse_args():
    parser = argparse.ArgumentParser(description='Train a segmentor')
    parser.add_argument('config', help='train config file path')
    parser.add_argument(
        '--resume',
        action='store_true',
        help='resume from the latest checkpoint in the work_dir')
    parser.add_argument(
        '--amp', action='store_true', help='automatic mixed precision')
    add_launch_args(parser)
    return parser.parse_args()


def main():
    args = parse_args()
    cfg = load_config(args.config, args)
    if args.amp:
        if cfg.optim_wrapper.type == 'AmpOptimWrapper':
            print_log('AMP training is already enabled in your config.',
                      logger='current', level=logging.WARNING)
        elif cfg.optim_wrapper.type != 'OptimWrapper':
            raise ValueError('--amp needs optim_wrapper.type OptimWrapper, '
                             f'got {cfg.optim_wrapper.type}')
        else:
            cfg.optim_wrapper.type = 'AmpOptimWrapper'
            cfg.optim_wrapper.loss_scale = 'dynamic'
    cfg.resume = args.resume
    runner = Runner.from_cfg(cfg)
    check_total_batch(cfg, args.config, get_world_size())
    runner.train()
    destroy_process_group()


if __name__ == '__main__':
    main()

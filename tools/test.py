"""Test a segmentor, or the student of a distiller config.

    python tools/test.py CONFIG CHECKPOINT [--work-dir DIR] [--out DIR]
        [--show] [--show-dir DIR] [--show-interval N] [--tta]
        [--images PATH] [--cfg-options k=v ...]
        [--launcher {none,pytorch,slurm,mpi}]

For a distiller config only the student is built and evaluated; the
checkpoint may be a distillation checkpoint (ours, ``student.*``, or
mmrazor's, ``architecture.*``) or a plain mmseg one. ``--show-dir`` paints
every test image (every N-th with ``--show-interval N``; mmseg's own hook
defaults to every 50th batch). ``--images`` runs inference only, on an image
or a folder of images of any size without labels: the label maps go to
``--out`` and the painted predictions to ``--show-dir``
(:func:`gdkd_seg.apis.inference_images`).
"""
import argparse

from mmengine.model import is_model_wrapper
from mmengine.runner import Runner

from gdkd_seg.apis import (add_launch_args, destroy_process_group,
                           inference_images, init_student,
                           load_config, load_student_state, student_config)


def parse_args():
    parser = argparse.ArgumentParser(description='Test a segmentor')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument(
        '--out', help='directory to save prediction results (PNG)')
    parser.add_argument('--show', action='store_true', help='show results')
    parser.add_argument(
        '--show-dir', help='directory to save painted predictions')
    parser.add_argument(
        '--show-interval', type=int, default=1,
        help='paint every N-th test batch (default: every one)')
    parser.add_argument(
        '--wait-time', type=float, default=2, help='--show interval (s)')
    parser.add_argument(
        '--images', help='inference only: an image or a folder of images '
        '(no labels, no metric); writes --out and --show-dir')
    parser.add_argument('--tta', action='store_true', help='test time aug')
    add_launch_args(parser)
    return parser.parse_args()


def main():
    args = parse_args()
    if args.show_interval < 1:
        raise ValueError(f'--show-interval must be >= 1, got '
                         f'{args.show_interval}')
    if args.images is not None:
        if args.show or args.tta:
            raise ValueError('--images takes --out and --show-dir, not '
                             '--show or --tta')
        model = init_student(load_config(args.config, args), args.checkpoint)
        inference_images(model, args.images, args.out, args.show_dir)
        return
    cfg = student_config(load_config(args.config, args))
    cfg.load_from = None  # the student's weights are loaded below
    if args.show or args.show_dir:
        hook = cfg.default_hooks.get('visualization')
        if hook is None:
            raise KeyError('--show/--show-dir need default_hooks.visualization')
        hook.draw = True
        hook.interval = args.show_interval
        # The hook logs `runner.iter`, for which mmengine's Runner builds the
        # train loop and its data set: the test set stands in, so testing
        # needs no training data.
        cfg.train_dataloader = cfg.test_dataloader
        if args.show:
            hook.show = True
            hook.wait_time = args.wait_time
        if args.show_dir:
            cfg.visualizer.save_dir = args.show_dir
    if args.tta:
        cfg.test_dataloader.dataset.pipeline = cfg.tta_pipeline
        cfg.tta_model.module = cfg.model
        cfg.model = cfg.tta_model
    if args.out is not None:
        cfg.test_evaluator['output_dir'] = args.out
        cfg.test_evaluator['keep_results'] = True
    runner = Runner.from_cfg(cfg)
    model = runner.model.module if is_model_wrapper(runner.model) \
        else runner.model
    if args.tta:  # SegTTAModel holds the segmentor as `module`
        model = model.module
    state, _ = load_student_state(args.checkpoint)
    model.load_state_dict(state, strict=True)
    runner.test()
    destroy_process_group()


if __name__ == '__main__':
    main()

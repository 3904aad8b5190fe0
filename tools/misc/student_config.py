"""Write the plain student config of a distillation config.

    python tools/misc/student_config.py CONFIG -o student.py \\
        [--cfg-options k=v]

mmseg's own tools (``get_flops.py``, ``benchmark.py``, ``print_config.py``,
``browse_dataset.py``, ``confusion_matrix.py``, ``test.py``) build
``cfg.model``, which in a distillation config is the whole distiller. The
written config has the student segmentor as its model, the distillation
config's data, schedule and runtime, and none of the distiller's imports;
run those tools on it, e.g. through ``tools/misc/mmseg_tool.py``. Works for
gdkd_seg's distillers and mmrazor's ``SingleTeacherDistill``; a plain config
is written back unchanged. ``--cfg-options`` are applied first (some of
mmseg's tools take none).
"""
import argparse

from mmengine.config import Config, DictAction

from gdkd_seg.apis import plain_student_config


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config', help='the distillation config')
    parser.add_argument(
        '-o', '--out', required=True, help='where to write the config')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override settings of the config, key=value (see mmseg)')
    return parser.parse_args()


def main():
    args = parse_args()
    cfg = Config.fromfile(args.config)
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    cfg = plain_student_config(cfg)
    cfg.dump(args.out)
    print(f'wrote the student config ({cfg.model.type}) to {args.out}')


if __name__ == '__main__':
    main()

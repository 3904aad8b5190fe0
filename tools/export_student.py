"""Export a distilled student as a plain mmseg checkpoint (and config).

    python tools/export_student.py CONFIG CHECKPOINT OUT.pth [--out-config OUT.py]

CHECKPOINT may come from gdkd_seg's SegDistiller (``student.*`` keys) or from
mmrazor's SingleTeacherDistill (``architecture.*``). The result loads with
mmseg's own ``init_model`` and ``tools/test.py`` given the student's config,
which ``--out-config`` writes (the distiller config with the teacher removed).
"""
import argparse
import io

import torch
from mmengine.config import Config

from gdkd_seg.apis import load_student_state, student_config
from gdkd_seg.compat import atomic_write_bytes


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config', help='the distillation (or student) config')
    parser.add_argument('checkpoint', help='the distillation checkpoint')
    parser.add_argument('out', help='where to write the student checkpoint')
    parser.add_argument(
        '--out-config', help='also write the plain student config here')
    return parser.parse_args()


def main():
    args = parse_args()
    cfg = student_config(Config.fromfile(args.config))
    state, meta = load_student_state(args.checkpoint)
    # Build the student once: a checkpoint that does not fit fails here, not
    # later in someone else's tools.
    from mmseg.registry import MODELS
    from mmseg.utils import register_all_modules
    register_all_modules(init_default_scope=True)
    model = MODELS.build(dict(cfg.model, pretrained=None))
    model.load_state_dict(state, strict=True)
    buffer = io.BytesIO()
    torch.save({'meta': meta, 'state_dict': state}, buffer)
    atomic_write_bytes(buffer.getvalue(), args.out)
    print(f'wrote {len(state)} student tensors to {args.out}')
    if args.out_config:
        cfg.pop('custom_imports', None)  # a plain mmseg model needs none
        cfg.dump(args.out_config)
        print(f'wrote the student config to {args.out_config}')


if __name__ == '__main__':
    main()

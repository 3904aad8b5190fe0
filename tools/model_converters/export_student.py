"""Export a distilled student as a plain mmseg checkpoint (and config).

    python tools/model_converters/export_student.py CONFIG CHECKPOINT OUT.pth \
        [--out-config OUT.py]

CONFIG is the distillation config the checkpoint was trained with: gdkd_seg's
``SegDistiller`` (checkpoint keys ``student.*``) or mmrazor's
``SingleTeacherDistill`` (``architecture.*``, the student given as a model
dict or ``cfg_path``). OUT.pth holds the student's weights and the
checkpoint's meta less ``meta['config']`` (a Python config string of
mmcv-era checkpoints); the config ``--out-config`` writes is the student's
plain model with the distillation config's data, schedule and runtime,
without the distiller's imports (``tools/misc/student_config.py`` writes the
same config without a checkpoint).
Both load with mmseg's own ``tools/test.py`` and ``init_model``.
"""
import argparse
import io

import torch
from mmengine.config import Config
from mmengine.registry import MODELS, init_default_scope

from gdkd_seg.apis import load_student_state, plain_student_config
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
    cfg = plain_student_config(Config.fromfile(args.config))
    state, meta = load_student_state(args.checkpoint)
    # Build the student once: a checkpoint that does not fit fails here, not
    # later in someone else's tools.
    init_default_scope(cfg.get('default_scope', 'mmseg'))
    model = MODELS.build(dict(cfg.model, pretrained=None))
    model.load_state_dict(state, strict=True)
    # meta['config'] (mmcv-era checkpoints) is Python that mmengine's
    # Runner.resume would execute: a plain checkpoint carries no code.
    meta = {k: v for k, v in meta.items() if k != 'config'}
    buffer = io.BytesIO()
    torch.save({'meta': meta, 'state_dict': state}, buffer)
    atomic_write_bytes(buffer.getvalue(), args.out)
    print(f'wrote {len(state)} student tensors to {args.out}')
    if args.out_config:
        cfg.dump(args.out_config)
        print(f'wrote the student config to {args.out_config}')


if __name__ == '__main__':
    main()

"""Time a full distillation step against its floor.

Step: ``SegDistiller.loss`` (student DeepLabV3-R18 forward with its own
losses, teacher DeepLabV3-R101 forward under no_grad, GDKD on the decode
logits), backward of the summed losses, SGD step. Floor: the student's own
train step plus the teacher's forward alone -- no distillation step can cost
less. Models come from mmseg's own configs, random init, BN (SyncBN reverted as
mmengine's Runner does off-distributed).

Variants: teacher in fp32 or under bf16 autocast; the fused or the plain
GDKD path.

Examples::

    python tools/analysis_tools/benchmark_distill_step.py --batch 8 \\
        --out work_dirs/distill_step.json
    python tools/analysis_tools/benchmark_distill_step.py --quick
"""
import argparse
import json
import os.path as osp
import statistics
import sys
import time
from contextlib import nullcontext
from pathlib import Path

import torch
from mmengine import Config
from mmengine.model import revert_sync_batchnorm
from mmengine.structures import PixelData

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
import gdkd_seg  # noqa: F401,E402
from gdkd_seg.distillers import SegDistiller  # noqa: E402

TEACHER = 'mmseg::deeplabv3/deeplabv3_r101-d8_4xb2-80k_cityscapes-512x1024.py'
STUDENT = 'mmseg::deeplabv3/deeplabv3_r18-d8_4xb2-80k_cityscapes-512x1024.py'


def model_cfg(path: str) -> dict:
    """The ``model`` of an mmseg config, weights not loaded.

    ``mmseg::X`` is read from the configs shipped in the mmseg wheel
    (``mmseg/.mim/configs/X``), which needs no ``pkg_resources``.
    """
    if path.startswith('mmseg::'):
        import mmseg
        path = osp.join(osp.dirname(mmseg.__file__), '.mim', 'configs',
                        path[len('mmseg::'):])
    model = Config.fromfile(path).model
    model.pretrained = None
    model.backbone.init_cfg = None
    model.pop('data_preprocessor', None)
    return model.to_dict()


def make_batch(batch, height, width, num_classes, device):
    from mmseg.structures import SegDataSample
    g = torch.Generator().manual_seed(0)
    inputs = torch.randn(batch, 3, height, width, generator=g).to(device)
    samples = []
    for _ in range(batch):
        labels = torch.randint(0, num_classes, (1, height, width), generator=g)
        labels[:, :height // 8] = 255  # some ignored pixels
        sample = SegDataSample(gt_sem_seg=PixelData(data=labels.to(device)))
        sample.set_metainfo(dict(img_shape=(height, width),
                                 ori_shape=(height, width),
                                 pad_shape=(height, width)))
        samples.append(sample)
    return inputs, samples


def timed(fn, repeats, warmup, device):
    for _ in range(warmup):
        fn()
    sync = torch.cuda.synchronize if device == 'cuda' else (lambda: None)
    times = []
    for _ in range(repeats):
        sync()
        start = time.perf_counter()
        fn()
        sync()
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--device', default='cuda' if
                        torch.cuda.is_available() else 'cpu')
    parser.add_argument('--batch', type=int, default=8)
    parser.add_argument('--size', type=int, nargs=2, default=(512, 1024))
    parser.add_argument('--quick', action='store_true',
                        help='batch 2 at 64x128, few repeats (CPU check)')
    parser.add_argument('--repeats', type=int, default=10)
    parser.add_argument('--warmup', type=int, default=3)
    parser.add_argument('--teacher', nargs='+', default=['fp32', 'bf16'])
    parser.add_argument('--out', help='JSON file for the results')
    args = parser.parse_args()
    if args.quick:
        args.batch, args.size, args.repeats, args.warmup = 2, (64, 128), 2, 1
    device = args.device
    if device == 'cuda':
        torch.backends.cudnn.benchmark = True
    card = torch.cuda.get_device_name() if device == 'cuda' else 'CPU'

    losses = dict(decode_head=dict(type='GDKDLoss', k=3, w0=1.0, w1=1.0,
                                   w2=2.0))
    distiller = SegDistiller(model_cfg(STUDENT), model_cfg(TEACHER),
                             distill_losses=losses)
    distiller = revert_sync_batchnorm(distiller).to(device).train()
    student, teacher = distiller.student, distiller.teacher
    optimizer = torch.optim.SGD(student.parameters(), lr=1e-4, momentum=0.9,
                                weight_decay=5e-4)
    num_classes = student.decode_head.num_classes
    inputs, samples = make_batch(args.batch, *args.size, num_classes, device)

    def train_step(loss_fn):
        optimizer.zero_grad(set_to_none=True)
        parts = loss_fn()
        total = sum(v for k, v in parts.items() if 'loss' in k)
        total.backward()
        optimizer.step()

    def student_step():
        train_step(lambda: student.loss(inputs, samples))

    def distill_step():
        train_step(lambda: distiller.loss(inputs, samples))

    def teacher_forward(dtype):
        autocast = nullcontext() if dtype is None else torch.autocast(
            device_type=device, dtype=dtype)
        with torch.no_grad(), autocast:
            teacher.decode_head(teacher.extract_feat(inputs))

    results = dict(device=card, batch=args.batch, size=list(args.size),
                   rows=[])
    student_ms = timed(student_step, args.repeats, args.warmup, device)
    print(f'{card}: batch {args.batch} at {args.size[0]}x{args.size[1]}; '
          f'student step {student_ms:.1f} ms')
    gdkd = distiller.distill_losses['decode_head']
    for precision in args.teacher:
        dtype = None if precision == 'fp32' else getattr(
            torch, {'bf16': 'bfloat16', 'fp16': 'float16'}[precision])
        distiller.teacher_dtype = dtype
        teacher_ms = timed(lambda: teacher_forward(dtype), args.repeats,
                           args.warmup, device)
        floor = student_ms + teacher_ms
        for use_fused in (True, False):
            gdkd.use_fused = use_fused
            step_ms = timed(distill_step, args.repeats, args.warmup, device)
            row = dict(teacher=precision, loss='fused' if use_fused else
                       'plain', teacher_ms=teacher_ms, student_ms=student_ms,
                       floor_ms=floor, step_ms=step_ms,
                       step_over_floor=step_ms / floor)
            results['rows'].append(row)
            print(f"teacher {precision:>4}  {row['loss']:>5} GDKD: step "
                  f'{step_ms:8.1f} ms  floor {floor:8.1f} ms (teacher '
                  f'{teacher_ms:.1f})  step/floor {step_ms / floor:.3f}')
    if device == 'cuda':
        results['max_memory_allocated'] = torch.cuda.max_memory_allocated()
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(results, indent=1))


if __name__ == '__main__':
    main()

"""Export a (distilled) student to ONNX and check it in onnxruntime.

    python tools/deploy/export_onnx.py CONFIG CHECKPOINT OUT.onnx \
        [--shape H W] [--dynamic] [--opset N]

CONFIG and CHECKPOINT are what ``tools/model_converters/export_student.py``
takes: a distillation config (gdkd_seg's ``SegDistiller`` or mmrazor's) and its
checkpoint, or a plain student config and checkpoint. The graph maps a float
``(N, 3, H, W)`` batch of images (0..255, BGR as OpenCV loads them) to the
``(N, num_classes, H, W)`` logits of mmseg's ``predict``, preprocessing
included (docs/deploy.md). After writing it, onnxruntime (CPU execution
provider) runs it on random images, at ``--shape`` and, with ``--dynamic``,
at a second size, against mmseg's own test path in PyTorch; the tool exits
with an error when the logits differ by more than ``--atol`` or the arg-max
maps agree on fewer than ``--min-agreement`` of the pixels.
"""
import argparse

from gdkd_seg.apis import init_student
from gdkd_seg.apis.deploy import OPSET, check_onnx, export_onnx


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config', help='the distillation (or student) config')
    parser.add_argument('checkpoint', help='its checkpoint')
    parser.add_argument('out', help='the .onnx file to write')
    parser.add_argument('--shape', type=int, nargs=2, default=[512, 1024],
                        metavar=('H', 'W'), help='input size of the export')
    parser.add_argument('--dynamic', action='store_true',
                        help='dynamic batch, height and width')
    parser.add_argument('--opset', type=int, default=OPSET)
    parser.add_argument('--atol', type=float, default=1e-4,
                        help='largest absolute logit difference accepted')
    parser.add_argument('--min-agreement', type=float, default=0.999,
                        help='smallest fraction of pixels whose arg-max '
                        'must agree')
    return parser.parse_args()


def main():
    args = parse_args()
    model = init_student(args.config, args.checkpoint)
    shape = tuple(args.shape)
    export_onnx(model, args.out, shape, dynamic=args.dynamic,
                opset=args.opset)
    print(f'wrote {args.out} (input {"dynamic" if args.dynamic else shape})')
    shapes = [shape]
    if args.dynamic:  # another size, and not a multiple of the first
        shapes.append((shape[0] + 32, shape[1] + 64))
    try:
        found = check_onnx(model, args.out, shapes)
    except RuntimeError as error:  # onnxruntime's failures
        raise SystemExit(
            f'onnxruntime could not run {args.out} at {shapes}: {error}\n'
            'A dynamic export that fails at a size other than --shape has a '
            'size fixed at tracing (SegFormer\'s attention under the '
            'TorchScript exporter, docs/deploy.md): export at the fixed '
            'size you deploy.') from error
    print(f'onnxruntime vs PyTorch at {shapes}: max |diff| '
          f'{found["max_abs"]:.2e} ({found["max_rel"]:.2e} of the largest '
          f'logit), arg-max agreement {100 * found["argmax_agreement"]:.3f}%')
    if found['max_abs'] > args.atol or \
            found['argmax_agreement'] < args.min_agreement:
        raise SystemExit(
            f'the ONNX graph does not reproduce PyTorch: needs max |diff| <= '
            f'{args.atol} and agreement >= {args.min_agreement}')


if __name__ == '__main__':
    main()

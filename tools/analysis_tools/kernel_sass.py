"""Count the machine instructions the fused loss's Triton kernels execute per
pixel, without a GPU: compile each kernel for a GPU architecture (sm_90:
H100/H200) and read its SASS.

The fused kernel is instruction-bound on an H200 (docs/benchmarks.md), so
warp instructions per pixel are the figure to lower; unlike a timing it is
exact and repeatable on any machine. A program's straight-line code is
counted up to its atomic ticket (the tail after it, the final sum, runs in
one program per launch); the class loops are unrolled at compile time, so
that count is what every warp executes. Each warp instruction serves 32
threads: per pixel = instructions x num_warps / BLOCK_P.

The kernels are compiled as the fused path launches them for the registered
losses (``KDLoss``, ``DKDLoss``, ``GDKDLoss``, ``GDKD3Loss`` at their
defaults, or GDKD with other cut points, ``--k``): the compile-time
constants and weights come from each loss's ``PartitionSpec`` through
``fused_triton.constexprs`` and ``fused_triton.weights``.

Registers and spills (the thread's stack frame and local memory; the
kernels have no local arrays) come from the same binary (``cuobjdump
-res-usage``), for any architecture Triton compiles to. The tools are
the ones Triton ships, so this runs wherever triton installs, with the
Triton version a GPU machine would use (the PTX, hence the SASS, differs
between versions).

Example::

    python tools/analysis_tools/kernel_sass.py --losses gdkd \\
        --dtypes float32 bfloat16 --out work_dirs/sass.json
"""
import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

import triton
from triton.backends.compiler import GPUTarget

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from gdkd_seg.losses import DKDLoss, GDKD3Loss, GDKDLoss, KDLoss  # noqa
from gdkd_seg.losses import fused_triton  # noqa

LOSSES = {'kd': KDLoss, 'dkd': DKDLoss, 'gdkd': GDKDLoss,
          'gdkd3': GDKD3Loss}
TRITON_DTYPES = {'float32': 'fp32', 'bfloat16': 'bf16', 'float16': 'fp16'}
FLOAT_ARGS = ('inv_t', 'grad_coef', 'loss_coef', 'num_rows')
# SASS opcodes by what they cost (the opcode's stem, before any '.').
CATEGORIES = {
    'mufu': ('MUFU', ),
    'shuffle': ('SHFL', ),
    'memory': ('LDG', 'STG', 'LDS', 'STS', 'LD', 'ST', 'ATOMG', 'RED',
               'LDL', 'STL'),
    'fp32': ('FADD', 'FMUL', 'FFMA', 'FMNMX', 'FSETP', 'FSEL', 'FCHK',
             'FSET'),
    'int/logic': ('IADD3', 'IMAD', 'ISETP', 'LOP3', 'SEL', 'LEA', 'SHF',
                  'IMNMX', 'PLOP3', 'IABS', 'MOV', 'P2R', 'R2P', 'SHL',
                  'SHR', 'VIADD', 'VIMNMX', 'IMAD.WIDE'),
    'convert': ('F2F', 'I2F', 'F2I', 'I2FP', 'F2FP', 'PRMT'),
}
SASS_LINE = re.compile(r'/\*([0-9a-f]{4,6})\*/\s+(@!?U?P\w+\s+)?'
                       r'([A-Z][A-Z0-9_.]*)([^;]*)')


def _tool(name):
    return os.path.join(os.path.dirname(triton.__file__),
                        'backends/nvidia/bin', name)


def loss_spec(loss, k=None, max_k=None):
    """The registered loss's PartitionSpec, at its defaults; ``k`` (an int,
    cut points, or 'adaptive' with ``max_k``) for GDKD and GDKD3."""
    kwargs = {}
    if loss in ('gdkd', 'gdkd3') and k is not None:
        kwargs['k'] = k
        if k == 'adaptive':
            kwargs['max_k'] = max_k
    return LOSSES[loss](**kwargs).spec


def compile_kernel(kernel, spec, num_classes, dtype, ignore, block_p,
                   num_warps, arch):
    """Triton's compiled kernel for one configuration (no GPU needed): the
    compile-time constants and weights come from ``spec`` as in
    ``fused_triton.launch``; ``ignore``: with an ignore mask."""
    fn = (fused_triton._class_loop_kernel if kernel == 'class_loop' else
          fused_triton._tile_kernel)
    elem = '*' + TRITON_DTYPES[dtype]
    labels = ignore or spec.needs_labels
    constexprs = dict(fused_triton.constexprs(spec, num_classes),
                      HAS_LABELS=labels, HAS_IGNORE=ignore,
                      COUNT_ON_DEVICE=ignore, WRITE_GRAD=True,
                      BLOCK_P=block_p)
    if kernel == 'class_loop':
        constexprs['C'] = num_classes
    else:
        constexprs['BLOCK_C'] = fused_triton.next_power_of_2(num_classes)
    # Maps: the pixel strides are 1 (Triton specialises ints equal to 1).
    constexprs.update(s_sp=1, t_sp=1, g_sp=1)
    signature = {}
    for name in fn.arg_names:
        if name in constexprs:
            signature[name] = 'constexpr'
        elif name in ('s_ptr', 't_ptr', 'grad_ptr'):
            signature[name] = elem
        elif name == 'lab_ptr':
            signature[name] = '*i64'
        elif name in ('ticket_ptr', 'k_ptr'):
            signature[name] = '*i32'
        elif name.endswith('_ptr'):
            signature[name] = '*fp32'
        elif name == 'weights':
            signature[name] = ('fp32', ) * len(fused_triton.weights(spec))
        elif name in FLOAT_ARGS:
            signature[name] = 'fp32'
        else:
            signature[name] = 'i32'
    # Pointers and the batch/class strides of a contiguous 512x1024 map are
    # multiples of 16, which Triton's launcher would see too.
    aligned = [i for i, name in enumerate(fn.arg_names)
               if signature[name] != 'constexpr' and (
                   name.endswith('_ptr') or name in (
                       'P', 's_sb', 's_sc', 't_sb', 't_sc', 'g_sb', 'g_sc'))]
    attrs = {(i, ): [['tt.divisibility', 16]] for i in aligned}
    src = triton.compiler.ASTSource(fn=fn, signature=signature,
                                    constexprs=constexprs, attrs=attrs)
    return triton.compile(src, target=GPUTarget('cuda', arch, 32),
                          options=dict(num_warps=num_warps))


def analyse(compiled, block_p, num_warps):
    """Per-pixel instruction counts, registers and spills of a kernel."""
    with tempfile.TemporaryDirectory() as tmp:
        cubin = os.path.join(tmp, 'k.cubin')
        with open(cubin, 'wb') as f:
            f.write(compiled.asm['cubin'])
        sass, usage = (subprocess.run(
            [_tool('cuobjdump'), flag, cubin], capture_output=True, text=True,
            check=True).stdout for flag in ('-sass', '-res-usage'))
    ops = [(int(m.group(1), 16), m.group(3), m.group(4))
           for m in SASS_LINE.finditer(sass)]
    # Up to the ticket's atomic: what every program runs.
    end = next((i for i, (_, op, _) in enumerate(ops)
                if op.startswith(('ATOMG', 'ATOM.', 'RED'))), len(ops))
    body = ops[:end + 1]
    # A branch back to an earlier address would be a loop whose trips the
    # straight-line count misses.
    loops = sum(1 for address, op, operands in body
                if op.startswith('BRA') and
                int(operands.split()[-1], 16) <= address)
    per_pixel = num_warps / block_p
    counts = Counter()
    for _, op, _ in body:
        stem = op.split('.')[0]
        category = next((c for c, stems in CATEGORIES.items()
                         if stem in stems or op in stems), 'other')
        counts[category] += 1
    regs = re.search(r'REG:(\d+)', usage)
    # Spilled registers live in the thread's stack frame (STACK); LOCAL
    # would be local arrays (none here).
    frame = [int(v) for v in re.findall(r'(?:STACK|LOCAL):(\d+)', usage)]
    return dict(
        instructions=len(body),
        per_pixel=len(body) * per_pixel,
        by_category={c: n * per_pixel for c, n in sorted(counts.items())},
        registers=int(regs.group(1)) if regs else None,
        spill_bytes=sum(frame) if frame else None,
        loops=loops,
    )


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--losses', nargs='+', default=['gdkd'],
                        choices=list(LOSSES))
    parser.add_argument('--classes', nargs='+', type=int, default=[19])
    parser.add_argument('--dtypes', nargs='+', default=['float32'],
                        choices=list(TRITON_DTYPES))
    parser.add_argument('--kernels', nargs='+', default=['tile', 'class_loop'],
                        choices=list(fused_triton.KERNELS))
    parser.add_argument('--configs', nargs='*', default=[],
                        help='BLOCK_P:num_warps to compile besides each '
                        "kernel's default")
    parser.add_argument('--k', nargs='+',
                        help="gdkd: a cut point, several (e.g. 1 3 6) or "
                        "'adaptive'; gdkd3: its k (default: the loss's)")
    parser.add_argument('--max-k', type=int,
                        help="cap on the adaptive cut (--k adaptive)")
    parser.add_argument('--labels', action='store_true',
                        help='with an ignore mask (labels read)')
    parser.add_argument('--arch', type=int, default=90,
                        help='compute capability x10 (90: H100/H200)')
    parser.add_argument('--out', help='write the results as JSON')
    parser.add_argument('--plot', help='write a bar chart (PNG) of the '
                        'instructions per pixel')
    return parser.parse_args()


def main():
    args = parse_args()
    results = []
    print(f'triton {triton.__version__}, sm_{args.arch}')
    print(f"{'loss':6} {'C':>4} {'dtype':9} {'kernel':10} {'cfg':>6} "
          f"{'instr/px':>8} {'mufu':>5} {'shfl':>5} {'mem':>5} {'fp32':>6} "
          f"{'regs':>4} {'spill':>5} {'x tile':>6}")
    k = args.k
    if k is not None and k != ['adaptive']:
        k = tuple(int(v) for v in k)
        k = k[0] if len(k) == 1 else k
    elif k is not None:
        k = 'adaptive'
    for loss in args.losses:
        spec = loss_spec(loss, k, args.max_k)
        for num_classes in args.classes:
            for dtype in args.dtypes:
                tile = None
                for kernel in args.kernels:
                    try:  # as the loss checks before it picks a kernel
                        spec.check_num_classes(num_classes)
                        problem = fused_triton.limit_error(
                            kernel, spec, num_classes)
                    except ValueError as err:
                        problem = str(err)
                    if problem:
                        print(f'{loss:6} {num_classes:>4} {dtype:9} '
                              f'{kernel:10} skipped: {problem}')
                        continue
                    configs = [fused_triton.default_config(num_classes,
                                                           kernel)]
                    configs += [tuple(int(v) for v in c.split(':'))
                                for c in args.configs]
                    for block_p, num_warps in dict.fromkeys(configs):
                        compiled = compile_kernel(
                            kernel, spec, num_classes, dtype, args.labels,
                            block_p, num_warps, args.arch)
                        r = analyse(compiled, block_p, num_warps)
                        r.update(loss=loss, classes=num_classes, dtype=dtype,
                                 kernel=kernel, block_p=block_p,
                                 num_warps=num_warps, labels=args.labels,
                                 cuts=list(spec.cuts),
                                 adaptive_max_k=spec.adaptive and (
                                     spec.adaptive.max_k or num_classes),
                                 triton=triton.__version__, arch=args.arch)
                        results.append(r)
                        if kernel == 'tile' and tile is None:
                            tile = r['per_pixel']
                        cat = r['by_category']
                        ratio = r['per_pixel'] / tile if tile else float('nan')
                        print(f"{loss:6} {num_classes:>4} {dtype:9} "
                              f"{kernel:10} {block_p:>3}:{num_warps:<2} "
                              f"{r['per_pixel']:8.1f} "
                              f"{cat.get('mufu', 0):5.1f} "
                              f"{cat.get('shuffle', 0):5.1f} "
                              f"{cat.get('memory', 0):5.1f} "
                              f"{cat.get('fp32', 0):6.1f} "
                              f"{r['registers'] or '?':>4} "
                              f"{r['spill_bytes'] or 0:>5} {ratio:6.2f}"
                              + ('  (loops!)' if r['loops'] else ''))
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(results, indent=1))
    if args.plot:
        plot(results, args.plot)


def plot(results, path):
    """Grouped bars: instructions per pixel by loss/dtype, one per kernel."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    cases = list(dict.fromkeys(
        (r['loss'], r['classes'], r['dtype']) for r in results))
    kernels = list(dict.fromkeys(r['kernel'] for r in results))
    width = 0.8 / len(kernels)
    fig, ax = plt.subplots(figsize=(1.2 + 1.1 * len(cases), 3.6))
    for i, kernel in enumerate(kernels):
        # The default block size of each kernel (the first compiled).
        values = [next((r['per_pixel'] for r in results
                        if (r['loss'], r['classes'], r['dtype']) == case
                        and r['kernel'] == kernel), 0.) for case in cases]
        xs = [j + (i - (len(kernels) - 1) / 2) * width
              for j in range(len(cases))]
        bars = ax.bar(xs, values, width, label=kernel)
        ax.bar_label(bars, fmt='%.0f', fontsize=7)
    ax.set_xticks(range(len(cases)))
    ax.set_xticklabels([f'{loss}\nC={c} {dtype}' for loss, c, dtype in cases],
                       fontsize=8)
    ax.set_ylabel('warp instructions / pixel')
    ax.set_title(f"SASS per pixel, sm_{results[0]['arch']}, "
                 f"triton {results[0]['triton']}", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == '__main__':
    main()

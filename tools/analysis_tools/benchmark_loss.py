"""Time forward+backward and peak memory of the pixel-wise GDKD loss.

Three implementations, measured in one run so their ratios are meaningful:

* ``reference``: the official code's design (ZaberKo/seg-gdkd's GDKD,
  ``official_defects.official_gdkd``): permute to rows, full softmaxes,
  group masses clamped to [1.2e-7, 1-1.2e-7], leaf softmaxes built by
  subtracting ``1000 * mask`` from logits/T.
* ``plain``: this package's exact log-space path (``use_fused=False``).
* ``fused``: this package's fused loss-and-gradient path (default).
* ``fused+intra``: the fused path plus DIST's intra-class term
  (``intra_weight=1``, the official ``*-dist`` methods: GDKD-DIST for
  ``--losses gdkd``).
* ``dist``: ``DISTLoss`` (DIST's correlations; one plain autograd path),
  on the same inputs, whatever ``--losses`` says.

With both ``reference`` and ``plain`` run, each shape also prints the plain
path's time and peak memory as multiples of the reference design's.

Against two floors: bandwidth (read both logit tensors once, write the
gradient once, at a copy bandwidth measured in the same run) and exponentials
(two per logit, at a measured CPU rate or the GPU's nominal special-function
rate).

GPU: CUDA events, median over repeats; also the same with the host ahead of
the GPU (a GPU sleep first, as when the networks keep the GPU busy in
training), which leaves out host overhead; peak memory = torch.cuda's peak
minus what was allocated before the step (inputs); kernel launches per step
from the profiler. CPU: wall clock, median, repeats interleaved across
methods; peak memory from a tracker of live tensor storage.

Examples::

    python tools/analysis_tools/benchmark_loss.py --out work_dirs/bench.json
    python tools/analysis_tools/benchmark_loss.py --device cpu --quick
    python tools/analysis_tools/benchmark_loss.py --device cpu --quick \
        --methods fused fused+intra dist
"""
import argparse
import json
import statistics
import sys
import time
import weakref
from functools import partial
from pathlib import Path

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from gdkd_seg.losses import (DISTLoss, DKDLoss, GDKD3Loss,  # noqa
                             GDKDLoss, KDLoss)
from gdkd_seg.losses.fused import fused_partitioned_kl  # noqa
from official_defects import official_gdkd  # noqa

GPU_SHAPES = ['8x19x64x128', '8x19x512x1024', '8x150x64x128', '4096x1000',
              '65536x1000']
CPU_SHAPES = ['2x19x64x128', '8x19x64x128', '2x150x64x128', '4096x1000']
# Nominal special-function (MUFU.EX2) rate of an H100/H200 SXM: 16 per clock
# per SM, 132 SMs, ~1.98 GHz boost.
GPU_EXP_RATE = 16 * 132 * 1.98e9


LOSSES = {
    'kd': KDLoss,
    'dkd': DKDLoss,
    'gdkd': GDKDLoss,
    'gdkd3': GDKD3Loss,
    # Deeper cuts (4 groups) and a per-row cut (the class-loop kernel's
    # depth), the partitions beyond the four registered defaults.
    'gdkd_cuts': partial(GDKDLoss, k=(1, 3, 6)),
    'gdkd_adaptive': partial(GDKDLoss, k='adaptive', max_k=8),
}


def make_method(name, loss):
    """``reference``, ``plain``, ``fused``, ``fused+intra``, ``dist`` or a
    Triton configuration: ``fused:KERNEL``, ``fused:KERNEL:BLOCK_P:num_warps``
    or ``fused:BLOCK_P:num_warps`` (KERNEL: ``tile`` or ``class_loop``)."""
    if name == 'reference':
        assert loss == 'gdkd', 'the reference design is GDKD'
        return lambda s, t, y: official_gdkd(s, t)
    if name == 'dist':
        return DISTLoss()
    if name == 'fused+intra':
        return LOSSES[loss](intra_weight=1.0)
    module = LOSSES[loss](use_fused=name != 'plain')
    if name.startswith('fused:'):
        config = tuple(v if v.isalpha() or '_' in v else int(v)
                       for v in name.split(':')[1:])
        return lambda s, t, y: fused_partitioned_kl(
            s, t, module.spec, y, config=config)
    return lambda s, t, y: module(s, t, y)


class LiveStorage(TorchDispatchMode):
    """Peak bytes of tensor storage created inside the mode (CPU memory)."""

    def __init__(self):
        super().__init__()
        self.live = self.peak = 0
        self.seen = set()

    def _free(self, key, nbytes):
        self.seen.discard(key)
        self.live -= nbytes

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if func.is_view:  # shares an existing storage, allocates nothing
            return out
        for x in tree_flatten(out)[0]:
            if isinstance(x, torch.Tensor) and x.device.type == 'cpu':
                storage = x.untyped_storage()
                key, nbytes = storage.data_ptr(), storage.nbytes()
                if nbytes and key not in self.seen:
                    self.seen.add(key)
                    self.live += nbytes
                    self.peak = max(self.peak, self.live)
                    weakref.finalize(x, self._free, key, nbytes)
        return out


def parse_shape(text):
    return tuple(int(v) for v in text.split('x'))


def make_inputs(shape, dtype, device, seed=0, ignore=0.0, labels=False):
    """Random logits, and labels (a fraction ``ignore`` of them 255) when
    ``labels`` or ``ignore > 0``."""
    g = torch.Generator(device='cpu').manual_seed(seed)
    s = (torch.randn(shape, generator=g) * 3).to(device, dtype)
    t = (torch.randn(shape, generator=g) * 3).to(device, dtype)
    if not (labels or ignore > 0):
        return s.requires_grad_(True), t, None
    label_shape = (shape[0], ) + tuple(shape[2:])
    labels = torch.randint(0, shape[1], label_shape, generator=g)
    labels[torch.rand(label_shape, generator=g) < ignore] = 255
    return s.requires_grad_(True), t, labels.to(device)


def step(method, s, t, labels):
    loss = method(s, t, labels)
    grad, = torch.autograd.grad(loss, s)
    return loss, grad


def _event_times(method, s, t, labels, repeats, sleep_cycles=0):
    """CUDA-event ms of each of ``repeats`` steps, each queued behind a GPU
    sleep of ``sleep_cycles`` (0: none)."""
    times = []
    for _ in range(repeats):
        start = torch.cuda.Event(enable_timing=True)
        end = torch.cuda.Event(enable_timing=True)
        if sleep_cycles:
            torch.cuda._sleep(sleep_cycles)
        start.record()
        step(method, s, t, labels)
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    return times


def time_gpu(method, s, t, labels, repeats, warmup):
    for _ in range(warmup):
        step(method, s, t, labels)
    times = _event_times(method, s, t, labels, repeats)
    torch.cuda.synchronize()
    base = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    out = step(method, s, t, labels)
    torch.cuda.synchronize()
    peak = torch.cuda.max_memory_allocated() - base
    del out
    return statistics.median(times), peak


def time_gpu_queued(method, s, t, labels, repeats):
    """Median device ms of a step with the host ahead of the GPU.

    In training the GPU is busy with the networks while the host queues the
    loss, so host overhead hides; here a GPU sleep holds the stream while the
    host queues the step, and the events see device work and launch gaps
    only. None without ``torch.cuda._sleep``.
    """
    if not hasattr(torch.cuda, '_sleep'):
        return None
    start = time.perf_counter()
    step(method, s, t, labels)
    host_s = time.perf_counter() - start
    torch.cuda.synchronize()
    # Sleep for 3x the host's queueing time (>= 1 ms) at <= 2 GHz.
    cycles = int(max(3 * host_s, 1e-3) * 2e9)
    return statistics.median(
        _event_times(method, s, t, labels, repeats, cycles))


def kernels_per_step(method, s, t, labels):
    """CUDA kernels (and memsets) launched by one forward+backward."""
    from torch.profiler import ProfilerActivity, profile
    step(method, s, t, labels)
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        step(method, s, t, labels)
        torch.cuda.synchronize()
    events = [e for e in prof.events()
              if e.device_type == torch.autograd.DeviceType.CUDA]
    return len(events), sum(e.device_time for e in events) / 1e3


def time_cpu(methods, s, t, labels, repeats, warmup):
    """Median wall-clock ms and peak storage bytes per method.

    Repeats are interleaved across methods, so a shared machine's changing
    load hits every method alike.
    """
    for method in methods.values():
        for _ in range(warmup):
            step(method, s, t, labels)
    times = {name: [] for name in methods}
    for _ in range(repeats):
        for name, method in methods.items():
            start = time.perf_counter()
            step(method, s, t, labels)
            times[name].append((time.perf_counter() - start) * 1e3)
    peaks = {}
    for name, method in methods.items():
        tracker = LiveStorage()
        with tracker:
            out = step(method, s, t, labels)
        del out
        peaks[name] = tracker.peak
    return {name: (statistics.median(times[name]), peaks[name])
            for name in methods}


def copy_bandwidth(device):
    """Bytes read + written per second by a large device copy."""
    n = (1 << 28) if device == 'cuda' else (1 << 26)
    src = torch.empty(n, dtype=torch.float32, device=device).uniform_()
    dst = torch.empty_like(src)
    dst.copy_(src)
    times = []
    for _ in range(5 if device == 'cuda' else 3):
        if device == 'cuda':
            torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(5):
            dst.copy_(src)
        if device == 'cuda':
            torch.cuda.synchronize()
        times.append((time.perf_counter() - start) / 5)
    return 2 * src.numel() * 4 / min(times)


def exp_rate(device):
    if device == 'cuda':
        return GPU_EXP_RATE, 'nominal'
    x = torch.randn(1 << 24)
    out = torch.empty_like(x)
    torch.exp(x, out=out)
    start = time.perf_counter()
    for _ in range(3):
        torch.exp(x, out=out)
    return 3 * x.numel() / (time.perf_counter() - start), 'measured'


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--device', default='cuda' if
                        torch.cuda.is_available() else 'cpu')
    parser.add_argument('--shapes', nargs='+',
                        help='e.g. 8x19x64x128 4096x1000')
    parser.add_argument('--quick', action='store_true',
                        help='CPU-sized shapes and few repeats')
    parser.add_argument('--losses', nargs='+', default=['gdkd'],
                        choices=list(LOSSES))
    parser.add_argument('--methods', nargs='+',
                        default=['reference', 'plain', 'fused'],
                        help='reference, plain, fused, fused+intra, dist, '
                        'or a Triton configuration: '
                        'fused:KERNEL[:BLOCK_P:num_warps] '
                        '(KERNEL tile or class_loop) or '
                        'fused:BLOCK_P:num_warps')
    parser.add_argument('--dtypes', nargs='+', default=['float32'])
    parser.add_argument('--ignore', type=float, default=0.0,
                        help='fraction of ignored pixels (labels passed)')
    parser.add_argument('--repeats', type=int, default=None)
    parser.add_argument('--threads', type=int,
                        help='CPU threads (torch.set_num_threads)')
    parser.add_argument('--out', help='JSON file for the results')
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    device = args.device
    gpu = device == 'cuda'
    shapes = args.shapes or (GPU_SHAPES if gpu and not args.quick else
                             CPU_SHAPES)
    repeats = args.repeats or (50 if gpu else (3 if args.quick else 5))
    warmup = 5 if gpu else 1
    card = torch.cuda.get_device_name() if gpu else 'CPU (%d threads)' % \
        torch.get_num_threads()
    bandwidth = copy_bandwidth(device)
    exps_per_s, exp_source = exp_rate(device)
    print(f'device: {card}; copy bandwidth {bandwidth / 1e9:.0f} GB/s; '
          f'exp rate {exps_per_s:.3g}/s ({exp_source})')

    rows = []
    for loss_name, shape_text in [(lo, sh) for lo in args.losses
                                  for sh in shapes]:
        shape = parse_shape(shape_text)
        for dtype_name in args.dtypes:
            dtype = getattr(torch, dtype_name)
            s, t, labels = make_inputs(shape, dtype, device,
                                       ignore=args.ignore,
                                       labels=loss_name == 'dkd')
            numel, size = s.numel(), s.element_size()
            floor_bw = 3 * numel * size / bandwidth * 1e3
            floor_exp = 2 * numel / exps_per_s * 1e3
            result = dict(shape=shape_text, dtype=dtype_name, loss=loss_name,
                          ignore=args.ignore, device=card,
                          logits_bytes=numel * size,
                          floor_bandwidth_ms=floor_bw,
                          floor_exp_ms=floor_exp, methods={})
            methods = {
                name: make_method(name, loss_name)
                for name in args.methods
                if name != 'reference' or (loss_name == 'gdkd'
                                           and args.ignore == 0)
            }
            if not gpu:
                timings = time_cpu(methods, s, t, labels, repeats, warmup)
            for name, method in methods.items():
                launches = kernel_ms = queued_ms = None
                try:
                    if gpu:
                        ms, peak = time_gpu(method, s, t, labels, repeats,
                                            warmup)
                        queued_ms = time_gpu_queued(method, s, t, labels,
                                                    repeats)
                        launches, kernel_ms = kernels_per_step(
                            method, s, t, labels)
                    else:
                        ms, peak = timings[name]
                except torch.cuda.OutOfMemoryError:
                    torch.cuda.empty_cache()
                    result['methods'][name] = dict(error='out of memory')
                    continue
                result['methods'][name] = dict(
                    ms=ms, peak_bytes=peak,
                    peak_over_logits=peak / (numel * size),
                    launches=launches, kernel_ms=kernel_ms,
                    queued_ms=queued_ms)
            rows.append(result)
            del s, t, labels
            if gpu:
                torch.cuda.empty_cache()

    header = (f"{'shape':>14} {'dtype':>8} {'method':>22} {'ms':>9} "
              f"{'x fused':>8} {'peak MiB':>9} {'xlogits':>7} "
              f"{'launch':>6} {'kern ms':>8} {'queued':>8}")
    print(f'\nforward+backward on {card}; ignore={args.ignore}; '
          "'x fused' = time / the fused path's time (or the first "
          "method's); 'queued' = device ms with the host ahead")
    print(header)
    for r in rows:
        # Ratios to 'fused', or to the first method when it is not run.
        base = r['methods'].get('fused') or next(iter(r['methods'].values()),
                                                 {})
        fused_ms = base.get('ms')
        for name, m in r['methods'].items():
            if 'error' in m:
                print(f"{r['shape']:>14} {r['dtype']:>8} {name:>22} "
                      f"{m['error']}")
                continue
            ratio = m['ms'] / fused_ms if fused_ms else float('nan')
            launch = '-' if m['launches'] is None else str(m['launches'])
            kern = '-' if m['kernel_ms'] is None else f"{m['kernel_ms']:.3f}"
            queued = '-' if m['queued_ms'] is None else \
                f"{m['queued_ms']:.3f}"
            print(f"{r['shape']:>14} {r['dtype']:>8} {name:>22} "
                  f"{m['ms']:9.3f} {ratio:8.2f} "
                  f"{m['peak_bytes'] / 2**20:9.1f} "
                  f"{m['peak_over_logits']:7.2f} {launch:>6} {kern:>8} "
                  f"{queued:>8}")
        print(f"{r['shape']:>14} {r['dtype']:>8} {'floors':>22} "
              f"({r['loss']}) bandwidth {r['floor_bandwidth_ms']:.3f} ms, "
              f"exp {r['floor_exp_ms']:.3f} ms")
        plain, reference = (r['methods'].get(name) or {}
                            for name in ('plain', 'reference'))
        if 'ms' in plain and 'ms' in reference:
            print(f"{r['shape']:>14} {r['dtype']:>8} "
                  f"{'plain / reference':>22} time "
                  f"{plain['ms'] / reference['ms']:.2f}x, peak memory "
                  f"{plain['peak_bytes'] / reference['peak_bytes']:.2f}x")
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(
            dict(device=card, copy_bandwidth=bandwidth, exp_rate=exps_per_s,
                 exp_rate_source=exp_source, results=rows), indent=1))


if __name__ == '__main__':
    main()

"""What a segmentor costs to run on CPU, in PyTorch and in onnxruntime:
parameters, FLOPs, latency per image and peak memory (used by
tools/analysis_tools/student_vs_teacher.py and tools/demo.py)."""
import os.path as osp
import statistics
import tempfile
import time
from typing import Callable, Dict, List, Optional, Tuple

import torch
from mmengine.analysis import get_model_complexity_info
from torch import nn

from ..apis import init_student, init_teacher, read_scalars
from ..apis.deploy import (SegmentorLogits, export_onnx, onnx_logits,
                           onnx_session)


def median_seconds(run: Callable[[], object], repeats: int,
                   warmup: int) -> float:
    """The median wall time of ``repeats`` calls of ``run``, after
    ``warmup`` calls that are not timed."""
    assert repeats > 0 and warmup >= 0, \
        f'need repeats > 0 and warmup >= 0, got {repeats} and {warmup}'
    for _ in range(warmup):
        run()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def peak_forward_bytes(run: Callable[[], object]) -> int:
    """The most bytes the tensors created during ``run`` held at once
    (activations; the weights exist before and are not counted).

    From torch's profiler: each operator's own allocations less its frees,
    and the frees between operators, in time order. Scratch memory an
    operator frees before it returns is not seen.
    """
    with torch.profiler.profile(activities=[
            torch.profiler.ProfilerActivity.CPU
    ], profile_memory=True) as profiler:
        run()
    changes = sorted((e.time_range.start, e.self_cpu_memory_usage)
                     for e in profiler.events())
    held = peak = 0
    for _, change in changes:
        held += change
        peak = max(peak, held)
    return peak


def deployed_parameters(segmentor: nn.Module) -> int:
    """Parameters of the deployed segmentor: the auxiliary head only trains
    and is not exported."""
    return sum(p.numel() for name, p in segmentor.named_parameters()
               if not name.startswith('auxiliary_head.'))


@torch.no_grad()
def measure_costs(segmentor: nn.Module,
                  shape: Tuple[int, int],
                  threads: int,
                  repeats: int = 20,
                  warmup: int = 3) -> Dict[str, float]:
    """Parameters, FLOPs, latency and peak memory of one image of ``shape``.

    The model measured is the exported one (:class:`SegmentorLogits`:
    preprocessing, backbone, decode head, resize to the input), in PyTorch
    and, exported to a temporary ONNX file, in onnxruntime's CPU execution
    provider, both on ``threads`` threads.

    Args:
        segmentor (nn.Module): an mmseg segmentor (e.g. from
            :func:`gdkd_seg.apis.init_student`).
        shape (tuple[int, int]): the image's ``(H, W)``.
        threads (int): intra-op threads of PyTorch and onnxruntime.
        repeats (int): timed runs; the median is reported.
        warmup (int): untimed runs before them.

    Returns:
        dict: ``params`` (count), ``flops`` (mmengine's counter: one
        multiply-add counts as one), ``torch_ms`` and ``onnx_ms`` (median
        milliseconds per image), ``peak_mb`` (weights plus the largest
        PyTorch forward allocation, MiB).
    """
    model = SegmentorLogits(segmentor.eval())
    images = torch.rand(1, 3, *shape) * 255
    flops = get_model_complexity_info(
        model, inputs=(images, ), show_table=False,
        show_arch=False)['flops']
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        torch_s = median_seconds(lambda: model(images), repeats, warmup)
        activations = peak_forward_bytes(lambda: model(images))
    finally:
        torch.set_num_threads(previous_threads)
    with tempfile.TemporaryDirectory() as tmp:
        path = osp.join(tmp, 'model.onnx')
        export_onnx(segmentor, path, shape)
        session = onnx_session(path, threads)
        array = images.numpy()
        onnx_s = median_seconds(lambda: onnx_logits(session, array), repeats,
                                warmup)
    weights = sum(t.numel() * t.element_size()
                  for t in list(model.parameters()) + list(model.buffers()))
    return dict(params=deployed_parameters(segmentor), flops=flops,
                torch_ms=1e3 * torch_s, onnx_ms=1e3 * onnx_s,
                peak_mb=(weights + activations) / 2**20)


def cost_table(rows: List[Dict[str, object]]) -> str:
    """A markdown table of :func:`measure_costs` rows, each with a ``name``
    and optionally ``mIoU`` (%), plus ratios to the first row (the
    teacher)."""
    lines = [
        '| model | params (M) | GFLOPs | PyTorch (ms) | onnxruntime (ms) | '
        'peak memory (MiB) | mIoU (%) |',
        '| --- | --- | --- | --- | --- | --- | --- |'
    ]
    for row in rows:
        miou = row.get('mIoU')
        lines.append(
            f"| {row['name']} | {row['params'] / 1e6:.3f} | "
            f"{row['flops'] / 1e9:.3f} | {row['torch_ms']:.1f} | "
            f"{row['onnx_ms']:.1f} | {row['peak_mb']:.1f} | "
            f"{'--' if miou is None else f'{miou:.2f}'} |")
    return '\n'.join(lines)


def measurement_caption(shape: Tuple[int, int], threads: int,
                        repeats: int) -> str:
    """What the numbers of :func:`cost_table` are, in one line."""
    return (f'Per {shape[0]}x{shape[1]} image on CPU, {threads} thread(s), '
            f'median of {repeats} runs after warm-up; parameters without the '
            'auxiliary head; peak memory: weights plus the largest PyTorch '
            'forward allocation.')


def last_miou(work_dir: Optional[str]) -> Optional[float]:
    """The mIoU (%) of a run's last logged validation, or None when no
    work dir is given."""
    if work_dir is None:
        return None

    val = [r for r in read_scalars(work_dir).val if 'mIoU' in r]
    if not val:
        raise ValueError(f'{work_dir} logged no validation mIoU (no '
                         '*/vis_data/scalars.json with an mIoU record)')
    return float(val[-1]['mIoU'])


def student_vs_teacher(config: str,
                       teacher_checkpoint: str,
                       student_checkpoint: str,
                       shape: Tuple[int, int],
                       threads: int,
                       repeats: int = 20,
                       warmup: int = 3,
                       work_dirs: Optional[Dict[str, str]] = None,
                       student_name: str = 'distilled student'
                       ) -> List[Dict[str, object]]:
    """:func:`measure_costs` of a distillation config's teacher and
    student, with the mIoU their runs logged.

    Args:
        config (str): the distillation config.
        teacher_checkpoint (str): the teacher's weights.
        student_checkpoint (str): the distillation checkpoint (or the
            exported student's).
        shape, threads, repeats, warmup: as :func:`measure_costs`.
        work_dirs (dict | None): work dirs of the runs whose last validation
            mIoU to report, under the keys ``'teacher'``, ``'student'`` (the
            student trained alone: a row with the distilled student's costs,
            the same network) and ``'distilled'``.
        student_name (str): the distilled student's row name.

    Returns:
        list[dict]: rows ``teacher``, ``student alone`` (only with its work
        dir) and ``student_name``, each :func:`measure_costs` plus ``name``
        and ``mIoU`` (None without a work dir).
    """
    work_dirs = dict(work_dirs or {})
    unknown = set(work_dirs) - {'teacher', 'student', 'distilled'}
    assert not unknown, f'unknown work_dirs keys {sorted(unknown)}'
    measure = dict(shape=shape, threads=threads, repeats=repeats,
                   warmup=warmup)
    teacher = measure_costs(init_teacher(config, teacher_checkpoint),
                            **measure)
    student = measure_costs(init_student(config, student_checkpoint),
                            **measure)
    rows = [dict(teacher, name='teacher',
                 mIoU=last_miou(work_dirs.get('teacher')))]
    if 'student' in work_dirs:
        rows.append(dict(student, name='student alone',
                         mIoU=last_miou(work_dirs['student'])))
    rows.append(dict(student, name=student_name,
                     mIoU=last_miou(work_dirs.get('distilled'))))
    return rows

"""The teacher's predictive distribution per pixel: how peaked it is, how
often it is multimodal, how many classes hold most of its mass (the adaptive
k), and whether its confidence is calibrated.

Definitions (also written into the JSON the tool saves), with
``q = softmax(t / T)`` sorted ``q_(1) >= q_(2) >= ...``:

* *top-k mass*: ``q_(1) + ... + q_(k)``;
* *multimodal*: ``q_(2) >= 0.1 q_(1)``, i.e. the top-1/top-2 ratio is at
  most 10 -- a second class the teacher finds at least a tenth as likely;
* *low confidence*: ``q_(1) < 0.9``;
* *adaptive k* at ``tau``: the smallest k whose top-k mass reaches ``tau``
  (``functional.adaptive_k``, as ``GDKDLoss(k='adaptive')`` uses it);
* *ECE*: ``sum_b n_b / N |accuracy_b - confidence_b|`` over equal-width
  bins of the top-1 probability, accuracy against the ground truth.
"""
import math
from typing import Dict, Optional, Sequence

import numpy as np
import torch
from torch import Tensor

from ..losses import functional

MULTIMODAL_RATIO = 10.0
LOW_CONFIDENCE = 0.9


def pixel_statistics(teacher_rows: Tensor, temperature: float = 1.0,
                     max_topk: int = 5,
                     taus: Sequence[float] = (0.9, )) -> Dict[str, Tensor]:
    """Per-row statistics of ``softmax(t / T)``, float64.

    Args:
        teacher_rows (Tensor): ``(N, C)`` logits.

    Returns:
        dict: ``top1`` (N,), ``log10_ratio`` (N,) = log10(q_(1) / q_(2)),
        ``topk_mass`` (N, min(max_topk, C)), ``entropy`` (N,) in nats,
        ``prediction`` (N,) and ``adaptive_k`` (N, len(taus)).
    """
    logits = teacher_rows.detach().double() / temperature
    log_q = torch.log_softmax(logits, dim=1)
    q = log_q.exp()
    top = logits.topk(min(2, logits.shape[1]), dim=1).values
    sorted_q = q.sort(dim=1, descending=True).values
    return dict(
        top1=sorted_q[:, 0],
        # From the logits, so a ratio whose q_(2) underflows stays finite.
        log10_ratio=(top[:, 0] - top[:, -1]) / math.log(10),
        topk_mass=sorted_q[:, :max_topk].cumsum(1),
        entropy=-torch.special.xlogy(q, q).sum(1),
        prediction=logits.argmax(1),
        adaptive_k=torch.stack(
            [functional.adaptive_k(teacher_rows, tau, temperature)
             for tau in taus], dim=1))


def expected_calibration_error(count: np.ndarray, confidence_sum: np.ndarray,
                               correct_sum: np.ndarray) -> float:
    """ECE from per-bin counts and sums of confidence and correctness."""
    total = count.sum()
    if total == 0:
        return float('nan')
    return float(np.abs(correct_sum - confidence_sum).sum() / total)


class TeacherDistribution:
    """Streaming histograms, per-class sums and calibration bins.

    Args:
        num_classes (int): C.
        temperature (float): T of the distribution.
        taus (sequence): shares of mass for the adaptive k.
        max_topk (int): top-k mass is reported for k = 1..max_topk.
        calibration_bins (int): equal-width confidence bins for the ECE.
        ignore_index (int): label of pixels to skip.
    """

    def __init__(self,
                 num_classes: int,
                 temperature: float = 1.0,
                 taus: Sequence[float] = (0.5, 0.9, 0.95, 0.99),
                 max_topk: int = 5,
                 calibration_bins: int = 15,
                 ignore_index: int = 255) -> None:
        self.num_classes, self.temperature = num_classes, temperature
        self.taus = tuple(taus)
        self.max_topk = min(max_topk, num_classes)
        self.ignore_index = ignore_index
        self.edges = dict(
            log10_ratio=np.linspace(0, 6, 25),
            topk_mass=np.linspace(0, 1, 21),
            entropy=np.linspace(0, math.log(num_classes), 31),
            confidence=np.linspace(0, 1, calibration_bins + 1))
        self.hist = dict(
            log10_ratio=np.zeros(24, np.int64),
            topk_mass=np.zeros((self.max_topk, 20), np.int64),
            entropy=np.zeros(30, np.int64),
            adaptive_k=np.zeros((len(self.taus), num_classes), np.int64))
        self.calibration = np.zeros((3, calibration_bins))  # n, conf, acc
        keys = ('pixels', 'top1', 'entropy', 'multimodal', 'low_confidence',
                'correct')
        self.per_class = {k: np.zeros(num_classes) for k in keys}
        self.per_class['topk_mass'] = np.zeros((num_classes, self.max_topk))
        self.per_class['adaptive_k'] = np.zeros((num_classes, len(self.taus)))

    def update(self, teacher_logits: Tensor, gt: Tensor) -> None:
        """Add ``(B, C, h, w)`` logits with ``(B[, 1], H, W)`` labels (resized
        to the logits' grid by nearest neighbour)."""
        labels = functional.labels_to_rows(gt, teacher_logits)
        rows = functional.flatten_logits(teacher_logits)
        assert rows.shape[1] == self.num_classes, (
            f'expected {self.num_classes} classes, got {rows.shape[1]}')
        valid = labels != self.ignore_index
        stats = {k: v.cpu().numpy() for k, v in pixel_statistics(
            rows[valid], self.temperature, self.max_topk, self.taus).items()}
        labels = labels[valid].cpu().numpy()
        multimodal = stats['log10_ratio'] <= math.log10(MULTIMODAL_RATIO)
        low_confidence = stats['top1'] < LOW_CONFIDENCE
        correct = stats['prediction'] == labels

        self.hist['log10_ratio'] += _histogram(stats['log10_ratio'],
                                               self.edges['log10_ratio'])
        for j in range(self.max_topk):
            self.hist['topk_mass'][j] += _histogram(stats['topk_mass'][:, j],
                                                    self.edges['topk_mass'])
        self.hist['entropy'] += _histogram(stats['entropy'],
                                           self.edges['entropy'])
        for j in range(len(self.taus)):
            self.hist['adaptive_k'][j] += np.bincount(
                stats['adaptive_k'][:, j] - 1, minlength=self.num_classes)

        bins = bin_index(stats['top1'], self.edges['confidence'])
        n_bins = len(self.edges['confidence']) - 1
        for row, weights in enumerate((None, stats['top1'], correct)):
            self.calibration[row] += np.bincount(bins, weights, n_bins)

        pc = self.per_class
        for key, values in (('pixels', None), ('top1', stats['top1']),
                            ('entropy', stats['entropy']),
                            ('multimodal', multimodal),
                            ('low_confidence', low_confidence),
                            ('correct', correct)):
            pc[key] += np.bincount(labels, values, self.num_classes)
        for j in range(self.max_topk):
            pc['topk_mass'][:, j] += np.bincount(
                labels, stats['topk_mass'][:, j], self.num_classes)
        for j in range(len(self.taus)):
            pc['adaptive_k'][:, j] += np.bincount(
                labels, stats['adaptive_k'][:, j], self.num_classes)

    def summary(self, class_names: Sequence[str] = None) -> dict:
        """JSON-ready numbers (fractions in [0, 1], entropy in nats)."""
        pc = self.per_class
        pixels = pc['pixels'].sum()
        count, confidence, correct = self.calibration
        with np.errstate(invalid='ignore', divide='ignore'):
            per_pixel = pc['pixels'][:, None]
            per_class = dict(
                classes=list(class_names or range(self.num_classes)),
                pixels=pc['pixels'].astype(int).tolist(),
                **{key: json_list(pc[key] / pc['pixels'])
                   for key in ('top1', 'entropy', 'multimodal',
                               'low_confidence')},
                accuracy=json_list(pc['correct'] / pc['pixels']),
                topk_mass={
                    str(k + 1): json_list(pc['topk_mass'][:, k] / pc['pixels'])
                    for k in range(self.max_topk)},
                adaptive_k={
                    str(tau): json_list(pc['adaptive_k'][:, j:j + 1]
                                        / per_pixel)
                    for j, tau in enumerate(self.taus)})
            bin_confidence = json_list(confidence / count)
            bin_accuracy = json_list(correct / count)
        k_values = np.arange(1, self.num_classes + 1)
        return dict(
            definitions=dict(
                multimodal=f'q_(2) >= q_(1) / {MULTIMODAL_RATIO:g}',
                low_confidence=f'q_(1) < {LOW_CONFIDENCE:g}',
                adaptive_k='smallest k with top-k mass >= tau',
                ece=f'{len(count)} equal-width bins of q_(1)'),
            temperature=self.temperature,
            pixels=int(pixels),
            multimodal_fraction=_mean(pc['multimodal'].sum(), pixels),
            low_confidence_fraction=_mean(pc['low_confidence'].sum(), pixels),
            mean_top1=_mean(pc['top1'].sum(), pixels),
            mean_entropy=_mean(pc['entropy'].sum(), pixels),
            mean_topk_mass={str(k + 1): _mean(pc['topk_mass'][:, k].sum(),
                                              pixels)
                            for k in range(self.max_topk)},
            adaptive_k={
                str(tau): dict(
                    mean=_mean((self.hist['adaptive_k'][j] * k_values).sum(),
                               pixels),
                    counts=self.hist['adaptive_k'][j].tolist())
                for j, tau in enumerate(self.taus)},
            accuracy=_mean(pc['correct'].sum(), pixels),
            ece=expected_calibration_error(count, confidence, correct),
            calibration=dict(
                bin_edges=self.edges['confidence'].tolist(),
                pixels=count.astype(int).tolist(),
                confidence=bin_confidence,
                accuracy=bin_accuracy),
            histograms={
                'log10_ratio': dict(edges=self.edges['log10_ratio'].tolist(),
                                    counts=self.hist['log10_ratio'].tolist()),
                'topk_mass': dict(edges=self.edges['topk_mass'].tolist(),
                                  counts=self.hist['topk_mass'].tolist()),
                'entropy': dict(edges=self.edges['entropy'].tolist(),
                                counts=self.hist['entropy'].tolist())},
            per_class=per_class)


def bin_index(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Bin of each value; values outside the edges go to the end bins."""
    return np.clip(np.searchsorted(edges, values, 'right') - 1, 0,
                   len(edges) - 2)


def _histogram(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    return np.bincount(bin_index(values, edges), minlength=len(edges) - 1)


def _mean(total: float, count: float):
    return float(total / count) if count else None


def json_list(values: np.ndarray) -> list:
    """A 1-D or 2-D array as (nested) lists, NaN/inf as None."""
    values = np.asarray(values).reshape(len(values), -1)
    out = [[None if not math.isfinite(v) else float(v) for v in row]
           for row in values]
    return [row[0] for row in out] if values.shape[1] == 1 else out


def measure_teacher_distribution(config,
                                 teacher_ckpt: str,
                                 temperature: float = 1.0,
                                 taus: Sequence[float] = (0.5, 0.9, 0.95,
                                                          0.99),
                                 resolution: str = 'logits',
                                 num_maps: int = 4,
                                 map_k: int = 3,
                                 map_tau: float = 0.9,
                                 max_batches: Optional[int] = None,
                                 split: str = 'val',
                                 data_root: Optional[str] = None,
                                 head: str = 'decode_head',
                                 device: str = 'cpu'):
    """:class:`TeacherDistribution` over a config's data set, and per-pixel
    maps of the first ``num_maps`` images.

    Args:
        config (str | Config): a distiller config (its teacher is used) or
            a plain segmentor config.
        resolution (str): 'logits' (the head's grid, what the distillation
            losses see) or 'image' (bilinearly upsampled to the label map,
            as mmseg's inference does).
        map_k, map_tau: the top-k mass and adaptive-k tau shown in the maps.
        Others: as in ``measure_gradient_magnitudes``.

    Returns:
        tuple: ``(summary, images, maps)``: the JSON-ready summary, RGB
        images and ``{title: [(H, W) arrays]}`` for ``plot_teacher_maps``.
    """
    import torch.nn.functional as F

    from ..apis import as_config, init_teacher
    from .models import build_dataloader, infer_head_logits, iterate_batches
    if resolution not in ('logits', 'image'):
        raise ValueError(f"resolution must be 'logits' or 'image', got "
                         f'{resolution!r}')
    cfg = as_config(config)
    teacher = init_teacher(cfg, teacher_ckpt, device)
    loader = build_dataloader(cfg, split, data_root)
    classes = loader.dataset.metainfo['classes']
    stats = TeacherDistribution(len(classes), temperature, taus,
                                ignore_index=teacher.decode_head.ignore_index)
    images, maps = [], {}
    for inputs, gt, batch_images in iterate_batches(teacher, loader,
                                                    max_batches):
        logits = infer_head_logits(teacher, inputs, head)
        if resolution == 'image':
            logits = F.interpolate(
                logits, size=gt.shape[-2:], mode='bilinear',
                align_corners=teacher.decode_head.align_corners)
        stats.update(logits, gt)
        take = min(num_maps - len(images), len(batch_images))
        if take > 0:
            images += batch_images[:take]
            _add_maps(maps, logits[:take], gt[:take, 0], temperature, map_k,
                      map_tau)
    summary = dict(stats.summary(classes), config=str(
        getattr(cfg, 'filename', '')), teacher_checkpoint=teacher_ckpt,
        head=head, split=split, resolution=resolution,
        palette=[list(c) for c in loader.dataset.metainfo.get('palette', [])])
    return summary, images, maps


def _add_maps(maps: dict, logits: Tensor, gt: Tensor, temperature: float,
              k: int, tau: float) -> None:
    batch, _, height, width = logits.shape
    stats = pixel_statistics(functional.flatten_logits(logits), temperature,
                             k, (tau, ))
    columns = {
        'ground truth': gt.numpy().astype(np.uint8),
        'prediction': stats['prediction'],
        'entropy (nats)': stats['entropy'],
        'top-1 probability': stats['top1'],
        f'top-{k} mass': stats['topk_mass'][:, -1],
        f'adaptive k (tau={tau:g})': stats['adaptive_k'][:, 0],
    }
    for title, values in columns.items():
        if title != 'ground truth':
            values = values.reshape(batch, height, width).numpy()
        maps.setdefault(title, []).extend(list(values))

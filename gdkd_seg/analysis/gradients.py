"""Where a distillation loss pushes the student: the gradient on the
teacher's top-k logits versus the other (non-top) logits.

The paper's first mechanism check. Per pixel, classic KD's gradient is
``T (p_i - q_i)``; written over GDKD's partition it is
``T [p^g_i (P_g - Q_g) + Q_g (p^g_i - q^g_i)]``, so the push that shapes
the student's distribution *among* the non-top classes carries the factor
``Q_2`` (the teacher's mass outside its top k) and vanishes where the teacher
is confident. GDKD weights that term by a constant ``w2`` instead.

:class:`GradientMagnitudes` measures this with the loss modules' own
autograd on real student and teacher logits, over the valid pixels of a data
set, overall and by the teacher's ``Q_2``. Besides the whole gradient ``g``
on a group it reports its *within-group* part
``h_i = g_i - p^g_i sum_{j in g} g_j``, the part that reshapes the
student's distribution inside the group and leaves the group's mass alone
(for any partitioned KL it is ``T w_g (p^g_i - q^g_i)``, with ``w_2 = Q_2``
for KD): the part the paper says KD lets vanish.
"""
from typing import Dict, Optional

import numpy as np
import torch
from torch import Tensor

from ..losses import functional, partition
from .distribution import bin_index, json_list

#: The demo's loss settings (configs/demo/); GDKD's k follows ``k``.
DEFAULT_LOSSES = {
    'KD': dict(type='KDLoss', temperature=1.0),
    'DKD': dict(type='DKDLoss', alpha=1.0, beta=2.0, temperature=1.0),
    'GDKD': dict(type='GDKDLoss', k=3, w0=1.0, w1=1.0, w2=2.0,
                 temperature=1.0),
}


def top_groups(teacher_rows: Tensor, k: int, temperature: float = 1.0):
    """GDKD's two groups of each row and the teacher's mass outside the top
    one, as the loss computes them (``functional.group_index`` and
    ``functional.log_softmax_by_group``).

    Returns:
        tuple: ``(in_top, rest_mass)``: the ``(N, C)`` bool teacher top-k
        (ties to the lowest class index) and ``Q_2``, ``(N,)`` float64 in
        log space (exact where it underflows float32).
    """
    spec = partition.gdkd(k=k, w0=1.0, w1=1.0, w2=1.0,
                          temperature=temperature)
    group = functional.group_index(spec, teacher_rows)
    _, log_mass = functional.log_softmax_by_group(teacher_rows.double(),
                                                  group, 2, temperature)
    return group == 0, log_mass[:, 1].exp()


#: Accumulated per loss: |g| and its within-group part, on each group.
SUMS = ('top', 'rest', 'top_within', 'rest_within')


class GradientMagnitudes:
    """Mean ``|dL_row/ds_i|`` over the teacher's top-k and non-top logits.

    Each loss is evaluated with ``reduction='sum'`` and ``loss_weight=1`` so
    that the gradient on a pixel's logits is that pixel's own
    ``dL_row/ds``. The means are over valid pixels and, within a pixel, over
    its k top (resp. C - k other) logits; ``'within'`` entries are the
    within-group part of the gradient (see the module docstring).

    Args:
        losses (dict): name -> loss config (registered in mmseg's scope).
        k (int): size of the teacher's top group to measure on.
        temperature (float): the losses' T: it sets the teacher's ``Q_2``
            that bins the pixels and the student's ``p^g`` of the
            within-group part.
        ignore_index (int): label of pixels to skip.
        log10_rest_mass_edges (sequence): bin edges of ``log10 Q_2``; values
            outside go to the first or last bin.
    """

    def __init__(self,
                 losses: Dict[str, dict],
                 k: int = 3,
                 temperature: float = 1.0,
                 ignore_index: int = 255,
                 log10_rest_mass_edges=tuple(np.linspace(-8, 0, 17))) -> None:
        from mmseg.registry import MODELS
        from mmengine.registry import DefaultScope
        with DefaultScope.overwrite_default_scope('mmseg'):
            self.losses = {
                name: MODELS.build(dict(cfg, reduction='sum', loss_weight=1.0,
                                        ignore_index=ignore_index))
                for name, cfg in losses.items()
            }
        self.configs = {name: dict(cfg) for name, cfg in losses.items()}
        self.k, self.temperature = k, temperature
        self.ignore_index = ignore_index
        self.edges = np.asarray(log10_rest_mass_edges, dtype=np.float64)
        n_bins = len(self.edges) - 1
        self.pixels = 0
        self.bin_pixels = np.zeros(n_bins, dtype=np.int64)
        self.sums = {
            name: {key: np.zeros(n_bins) for key in SUMS}
            for name in self.losses
        }

    def update(self, student_logits: Tensor, teacher_logits: Tensor,
               gt: Optional[Tensor] = None) -> None:
        """Add one batch of ``(B, C, h, w)`` logits (or ``(N, C)`` rows) and
        labels at any resolution."""
        teacher_rows = functional.flatten_logits(
            functional.align_teacher(student_logits, teacher_logits)).float()
        num_classes = teacher_rows.shape[1]
        if not 1 <= self.k < num_classes:
            raise ValueError(f'k must be in [1, {num_classes - 1}] to leave '
                             f'a non-top group, got {self.k}')
        valid = torch.ones(len(teacher_rows), dtype=torch.bool)
        if gt is not None:
            valid = functional.labels_to_rows(
                gt, student_logits) != self.ignore_index
        in_top, rest_mass = top_groups(teacher_rows, self.k, self.temperature)
        log_q2 = rest_mass.log10()
        bins = bin_index(log_q2[valid].numpy(), self.edges)
        self.pixels += int(valid.sum())
        self.bin_pixels += np.bincount(bins, minlength=len(self.edges) - 1)
        student_rows = functional.flatten_logits(student_logits.detach())
        student_probs = torch.softmax(
            student_rows.double()[valid] / self.temperature, dim=1)
        top = in_top[valid]
        groups = (('top', top, self.k), ('rest', ~top, num_classes - self.k))
        for name, loss_fn in self.losses.items():
            student = student_logits.detach().float().requires_grad_(True)
            with torch.enable_grad():
                value = loss_fn(student, teacher_logits.detach().float(), gt)
                grad, = torch.autograd.grad(value, student)
            grad = functional.flatten_logits(grad).double()[valid]
            for group, mask, size in groups:
                g = torch.where(mask, grad, 0.)
                p = torch.where(mask, student_probs, 0.)
                within = g - p / p.sum(1, keepdim=True) * g.sum(
                    1, keepdim=True)
                for key, part in ((group, g), (f'{group}_within', within)):
                    self.sums[name][key] += np.bincount(
                        bins, (part.abs().sum(1) / size).numpy(),
                        minlength=len(self.edges) - 1)

    def summary(self) -> dict:
        """JSON-ready numbers: per loss, the mean magnitudes, their ratio
        and the same by the teacher's rest mass ``Q_2``."""
        with np.errstate(invalid='ignore', divide='ignore'):
            result = dict(
                k=self.k,
                temperature=self.temperature,
                pixels=self.pixels,
                log10_rest_mass_edges=self.edges.tolist(),
                pixels_by_rest_mass=self.bin_pixels.tolist(),
                losses={})
            for name, sums in self.sums.items():
                means = {key: sums[key].sum() / max(self.pixels, 1)
                         for key in SUMS}
                result['losses'][name] = dict(
                    config=self.configs[name],
                    **{f'mean_abs_grad_{key}': float(means[key])
                       for key in SUMS},
                    rest_to_top_ratio=_ratio(means['rest'], means['top']),
                    by_rest_mass={
                        f'mean_abs_grad_{key}': json_list(
                            sums[key] / self.bin_pixels)
                        for key in SUMS
                    })
        return result


def _ratio(a: float, b: float) -> Optional[float]:
    return float(a / b) if b > 0 else None


def measure_gradient_magnitudes(config,
                                teacher_ckpt: str,
                                student_ckpt: str,
                                k: int = 3,
                                temperature: float = 1.0,
                                losses: Optional[Dict[str, dict]] = None,
                                max_batches: Optional[int] = None,
                                split: str = 'val',
                                data_root: Optional[str] = None,
                                head: str = 'decode_head',
                                device: str = 'cpu') -> dict:
    """:class:`GradientMagnitudes` over a config's data set.

    Args:
        config (str | Config): a distiller config (its teacher and student
            are built) or a plain segmentor config (used for both).
        teacher_ckpt, student_ckpt (str): checkpoints (plain mmseg ones or
            distillation ones, whose student is taken).
        k, temperature: see :class:`GradientMagnitudes`; they also set
            GDKD's k and every loss's T in the default ``losses``.
        losses (dict, optional): name -> loss config; default
            :data:`DEFAULT_LOSSES`.
        max_batches (int, optional): stop after this many batches.
        split (str): 'val' or 'test' (or 'train') dataloader of the config.
        data_root (str, optional): overrides the data set's root.
        head (str): 'decode_head' or 'auxiliary_head'.
    """
    from ..apis import as_config, init_student, init_teacher
    from .models import build_dataloader, infer_head_logits, iterate_batches
    cfg = as_config(config)
    if losses is None:
        losses = {name: dict(loss, temperature=temperature)
                  for name, loss in DEFAULT_LOSSES.items()}
        losses['GDKD']['k'] = k
    teacher = init_teacher(cfg, teacher_ckpt, device)
    student = init_student(cfg, student_ckpt, device)
    stats = GradientMagnitudes(losses, k, temperature,
                               teacher.decode_head.ignore_index)
    loader = build_dataloader(cfg, split, data_root)
    for inputs, gt, _ in iterate_batches(student, loader, max_batches):
        stats.update(infer_head_logits(student, inputs, head),
                     infer_head_logits(teacher, inputs, head), gt)
    return dict(stats.summary(), config=str(getattr(cfg, 'filename', '')),
                teacher_checkpoint=teacher_ckpt,
                student_checkpoint=student_ckpt, head=head, split=split)

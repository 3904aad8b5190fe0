"""Run a segmentor over a data set: mIoU with per-class IoU, and logits."""
from typing import Dict, Iterator, List, Optional, Tuple

import numpy as np
import torch
from mmseg.evaluation.metrics import IoUMetric
from torch import Tensor


@torch.no_grad()
def iterate_logits(model, dataloader,
                   max_batches: Optional[int] = None
                   ) -> Iterator[Tuple[dict, List]]:
    """Yield ``(data, predictions)`` for each batch.

    ``predictions`` are mmseg's ``SegDataSample`` outputs of
    ``model.test_step``: ``seg_logits`` and ``pred_sem_seg`` at the original
    image size, ``gt_sem_seg`` beside them.
    """
    model.eval()
    for i, data in enumerate(dataloader):
        if max_batches is not None and i >= max_batches:
            return
        yield data, model.test_step(data)


def evaluate_segmentor(model, dataloader, num_classes: int,
                       ignore_index: int = 255) -> Dict[str, object]:
    """mIoU, aAcc and per-class IoU (in %) with mmseg's IoUMetric maths.

    Returns:
        dict: ``mIoU``, ``aAcc``, ``mAcc`` (floats) and ``IoU``, ``Acc``
        (lists over classes, NaN where a class never occurs).
    """
    totals = [torch.zeros(num_classes, dtype=torch.float64) for _ in range(4)]
    for _, outputs in iterate_logits(model, dataloader):
        for sample in outputs:
            areas = IoUMetric.intersect_and_union(
                sample.pred_sem_seg.data.squeeze().cpu(),
                sample.gt_sem_seg.data.squeeze().cpu(), num_classes,
                ignore_index)
            for total, area in zip(totals, areas):
                total += area.double()
    metrics = IoUMetric.total_area_to_metrics(
        *totals, metrics=['mIoU'])
    iou, acc = metrics['IoU'] * 100, metrics['Acc'] * 100
    return dict(
        mIoU=float(np.nanmean(iou)),
        mAcc=float(np.nanmean(acc)),
        aAcc=float(metrics['aAcc'] * 100),
        IoU=[float(x) for x in iou],
        Acc=[float(x) for x in acc])

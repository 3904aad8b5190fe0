"""Evaluation and figures shared by tools/demo.py and tools/analysis_tools."""
from .evaluate import evaluate_segmentor, iterate_logits
from .plots import plot_miou_bars, plot_per_class_iou, plot_samples

__all__ = [
    'evaluate_segmentor', 'iterate_logits', 'plot_miou_bars',
    'plot_per_class_iou', 'plot_samples'
]

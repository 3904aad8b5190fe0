"""Figures a person would rather look at than read (matplotlib, Agg)."""
from typing import Dict, List, Sequence

import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def plot_miou_bars(miou: Dict[str, Sequence[float]], out_file: str,
                   title: str = 'mIoU') -> None:
    """Bar per run: the mean over seeds, each seed as a dot."""
    names = list(miou)
    means = [np.mean(miou[n]) for n in names]
    fig, ax = plt.subplots(figsize=(1.2 + 1.1 * len(names), 3.6))
    bars = ax.bar(names, means, color=_colours(len(names)))
    for i, name in enumerate(names):
        ax.scatter([i] * len(miou[name]), miou[name], color='black', s=10,
                   zorder=3)
    ax.bar_label(bars, labels=[f'{m:.1f}' for m in means], padding=2)
    low = min(min(v) for v in miou.values())
    ax.set_ylim(max(0, low - 10), min(100, max(means) + 6))
    ax.set_ylabel('mIoU (%)')
    ax.set_title(title)
    ax.grid(axis='y', alpha=0.3)
    fig.tight_layout()
    fig.savefig(out_file, dpi=120)
    plt.close(fig)


def plot_per_class_iou(iou: Dict[str, Sequence[float]],
                       class_names: Sequence[str], out_file: str,
                       title: str = 'per-class IoU') -> None:
    """Grouped bars: classes on x, one bar per run."""
    names = list(iou)
    width = 0.8 / len(names)
    x = np.arange(len(class_names))
    fig, ax = plt.subplots(figsize=(max(8, 0.55 * len(class_names)), 3.8))
    for i, (name, colour) in enumerate(zip(names, _colours(len(names)))):
        ax.bar(x + (i - (len(names) - 1) / 2) * width,
               np.nan_to_num(iou[name]), width, label=name, color=colour)
    ax.set_xticks(x)
    ax.set_xticklabels(class_names, rotation=45, ha='right')
    ax.set_ylabel('IoU (%)')
    ax.set_ylim(0, 100)
    ax.set_title(title)
    ax.legend(ncol=len(names), fontsize=8, loc='upper right')
    ax.grid(axis='y', alpha=0.3)
    fig.tight_layout()
    fig.savefig(out_file, dpi=120)
    plt.close(fig)


def plot_samples(images: List[np.ndarray], columns: Dict[str, List],
                 classes: Sequence[str], palette: Sequence, out_file: str
                 ) -> None:
    """One row per image: the image, then each column's label map painted
    over it by mmseg's SegLocalVisualizer.

    Args:
        images: RGB uint8 images.
        columns: column title -> one ``PixelData`` label map per image
            (e.g. 'ground truth', 'teacher', 'student', ...).
    """
    from mmseg.visualization import SegLocalVisualizer
    vis = SegLocalVisualizer.get_instance('gdkd_seg_samples', alpha=0.7)
    titles = ['image'] + list(columns)
    fig, axes = plt.subplots(
        len(images), len(titles), squeeze=False,
        figsize=(2.4 * len(titles), 1.35 * len(images) + 0.4))
    for r, image in enumerate(images):
        panels = [image] + [
            vis._draw_sem_seg(image.copy(), columns[t][r], classes, palette,
                              with_labels=False) for t in columns
        ]
        for c, panel in enumerate(panels):
            axes[r, c].imshow(panel)
            axes[r, c].axis('off')
            if r == 0:
                axes[r, c].set_title(titles[c], fontsize=9)
    fig.tight_layout()
    fig.savefig(out_file, dpi=120)
    plt.close(fig)


def _colours(n: int) -> List:
    return [plt.get_cmap('tab10')(i % 10) for i in range(n)]

"""Figures a person would rather look at than read (matplotlib, Agg)."""
import textwrap
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


def plot_gradient_magnitudes(summary: dict, out_file: str) -> None:
    """The summary of ``GradientMagnitudes``: mean |grad| per group and
    loss, and the non-top gradient's within-group part by the teacher's
    rest mass Q_2."""
    losses = summary['losses']
    names, colours = list(losses), _colours(len(losses))
    parts = [('top', f'top-{summary["k"]}'), ('rest', 'non-top'),
             ('rest_within', 'non-top, within')]
    fig, (bars, curve) = plt.subplots(1, 2, figsize=(10, 3.8))
    width = 0.8 / len(names)
    x = np.arange(len(parts))
    for i, (name, colour) in enumerate(zip(names, colours)):
        values = [losses[name][f'mean_abs_grad_{key}'] for key, _ in parts]
        bars.bar(x + (i - (len(names) - 1) / 2) * width, values, width,
                 label=name, color=colour)
    bars.set_xticks(x)
    bars.set_xticklabels([label for _, label in parts])
    bars.set_yscale('log')
    bars.set_ylabel('mean |dL/ds| per logit')
    bars.set_title(f'{summary["pixels"]} pixels')
    bars.legend(fontsize=8)
    bars.grid(axis='y', alpha=0.3)

    edges = np.asarray(summary['log10_rest_mass_edges'])
    centres = 10**((edges[:-1] + edges[1:]) / 2)
    counts = curve.twinx()
    counts.bar(centres, summary['pixels_by_rest_mass'],
               width=np.diff(10**edges), color='0.85', zorder=0)
    counts.set_ylabel('pixels', color='0.5')
    curve.set_zorder(counts.get_zorder() + 1)
    curve.patch.set_visible(False)
    for name, colour in zip(names, colours):
        by_mass = losses[name]['by_rest_mass']
        for key, style in (('rest_within', '-'), ('rest', ':')):
            values = np.array([np.nan if v is None else v
                               for v in by_mass[f'mean_abs_grad_{key}']])
            curve.plot(centres, values, style, marker='o', ms=3,
                       color=colour,
                       label=f'{name}' if key == 'rest_within' else None)
    curve.set_xscale('log')
    curve.set_yscale('log')
    filled = np.flatnonzero(summary['pixels_by_rest_mass'])
    if len(filled):
        curve.set_xlim(10**edges[filled[0]], 10**edges[filled[-1] + 1])
    curve.set_xlabel(f'teacher mass outside its top-{summary["k"]} (Q2)')
    curve.set_ylabel('mean |dL/ds|, non-top logits')
    curve.set_title('non-top: within-group part (solid), whole (dotted)',
                    fontsize=9)
    curve.legend(fontsize=8)
    curve.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out_file, dpi=110)
    plt.close(fig)


def plot_teacher_distribution(summary: dict, out_file: str) -> None:
    """Histograms of the ``TeacherDistribution`` summary: top-1/top-2 ratio,
    top-k mass, entropy and the adaptive k."""
    hist = summary['histograms']
    fig, axes = plt.subplots(2, 2, figsize=(10, 6.4))
    ratio = hist['log10_ratio']
    axes[0, 0].stairs(ratio['counts'], ratio['edges'])
    axes[0, 0].axvline(1, color='red', ls='--', lw=1)
    axes[0, 0].set_xlabel('log10(top-1 / top-2 probability)')
    axes[0, 0].set_title(
        f'multimodal (left of the line): '
        f'{100 * summary["multimodal_fraction"]:.1f}% of pixels', fontsize=9)
    mass = hist['topk_mass']
    for k, counts in enumerate(mass['counts'], start=1):
        axes[0, 1].stairs(counts, mass['edges'], label=f'k={k}')
    axes[0, 1].set_xlabel('teacher mass in its top-k')
    axes[0, 1].set_yscale('log')
    axes[0, 1].legend(fontsize=8)
    entropy = hist['entropy']
    axes[1, 0].stairs(entropy['counts'], entropy['edges'])
    axes[1, 0].set_xlabel('entropy (nats)')
    axes[1, 0].set_title(f'mean {summary["mean_entropy"]:.3f} nats',
                         fontsize=9)
    taus = summary['adaptive_k']
    shown = max(max(np.flatnonzero(v['counts'])) + 1 for v in taus.values())
    width = 0.8 / len(taus)
    for i, (tau, values) in enumerate(taus.items()):
        share = np.array(values['counts'][:shown]) / max(summary['pixels'], 1)
        axes[1, 1].bar(np.arange(1, shown + 1) + (i - (len(taus) - 1) / 2) *
                       width, share, width,
                       label=f'tau={tau} (mean {values["mean"]:.2f})')
    axes[1, 1].set_xlabel('adaptive k: smallest top-k holding tau')
    axes[1, 1].set_ylabel('share of pixels')
    axes[1, 1].legend(fontsize=8)
    for ax in axes.flat[:3]:
        ax.set_ylabel('pixels')
    for ax in axes.flat:
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out_file, dpi=110)
    plt.close(fig)


def plot_distribution_per_class(summary: dict, out_file: str,
                                tau: str = '0.9') -> None:
    """Per ground-truth class: multimodal share, mean entropy, mean adaptive
    k and the teacher's accuracy."""
    per_class = summary['per_class']
    names = per_class['classes']
    panels = [('multimodal', 'multimodal share'),
              ('entropy', 'mean entropy (nats)'),
              (None, f'mean adaptive k (tau={tau})'),
              ('accuracy', 'teacher accuracy')]
    fig, axes = plt.subplots(len(panels), 1, sharex=True,
                             figsize=(max(8, 0.5 * len(names)), 7))
    x = np.arange(len(names))
    for ax, (key, label), colour in zip(axes, panels, _colours(4)):
        values = per_class['adaptive_k'][tau] if key is None \
            else per_class[key]
        ax.bar(x, [np.nan if v is None else v for v in values],
               color=colour)
        ax.set_ylabel(label, fontsize=8)
        ax.grid(axis='y', alpha=0.3)
    axes[-1].set_xticks(x)
    axes[-1].set_xticklabels(
        [f'{n} ({p})' for n, p in zip(names, per_class['pixels'])],
        rotation=45, ha='right', fontsize=8)
    axes[0].set_title('by ground-truth class (pixels in brackets)')
    fig.tight_layout()
    fig.savefig(out_file, dpi=110)
    plt.close(fig)


def plot_reliability(summary: dict, out_file: str) -> None:
    """Reliability diagram: accuracy per confidence bin against the
    diagonal, with the pixels per bin below."""
    cal = summary['calibration']
    edges = np.asarray(cal['bin_edges'])
    centres, width = (edges[:-1] + edges[1:]) / 2, np.diff(edges)
    accuracy = np.array([np.nan if v is None else v for v in cal['accuracy']])
    confidence = np.array(
        [np.nan if v is None else v for v in cal['confidence']])
    fig, (top, bottom) = plt.subplots(
        2, 1, sharex=True, figsize=(4.6, 5.2),
        gridspec_kw=dict(height_ratios=[3, 1]))
    top.bar(centres, accuracy, width, edgecolor='black', label='accuracy')
    top.bar(centres, np.abs(confidence - accuracy), width,
            bottom=np.fmin(accuracy, confidence), color='red', alpha=0.3,
            label='gap to confidence')
    top.plot([0, 1], [0, 1], 'k--', lw=1)
    top.set_ylim(0, 1)
    top.set_ylabel('accuracy')
    top.set_title(f'teacher calibration: ECE {100 * summary["ece"]:.2f}%')
    top.legend(fontsize=8, loc='upper left')
    bottom.bar(centres, cal['pixels'], width, color='0.6')
    bottom.set_yscale('log')
    bottom.set_xlabel('confidence (top-1 probability)')
    bottom.set_ylabel('pixels')
    fig.tight_layout()
    fig.savefig(out_file, dpi=110)
    plt.close(fig)


def plot_teacher_maps(images: List[np.ndarray], columns: Dict[str, List],
                      palette: Sequence, out_file: str) -> None:
    """One row per image: the image, then one map per column. Integer maps
    named 'ground truth' or 'prediction' are painted with ``palette``
    (ignore pixels black); the others get a colour bar.

    Args:
        columns: title -> one ``(H, W)`` array per image.
    """
    colours = np.zeros((256, 3), np.uint8)
    colours[:len(palette)] = np.asarray(palette, np.uint8)
    titles = ['image'] + list(columns)
    fig, axes = plt.subplots(
        len(images), len(titles), squeeze=False,
        figsize=(2.5 * len(titles), 1.45 * len(images) + 0.5))
    for c, title in enumerate(titles):
        painted = title in ('ground truth', 'prediction')
        maps = images if c == 0 else columns[title]
        stack = None if c == 0 or painted else np.stack(maps)
        for r, image in enumerate(maps):
            ax = axes[r, c]
            if c == 0 or painted:
                ax.imshow(image if c == 0 else colours[image])
            else:
                shown = ax.imshow(image, cmap='viridis',
                                  vmin=np.nanmin(stack), vmax=np.nanmax(stack),
                                  interpolation='nearest')
                if r == 0:
                    fig.colorbar(shown, ax=axes[:, c].tolist(), shrink=0.8,
                                 pad=0.02)
            ax.axis('off')
            if r == 0:
                ax.set_title(title, fontsize=9)
    fig.savefig(out_file, dpi=90, bbox_inches='tight')
    plt.close(fig)



def plot_student_vs_teacher(rows: List[dict], out_file: str,
                            title: str) -> None:
    """One panel per measure (parameters, FLOPs, latency in PyTorch and
    onnxruntime, peak memory, mIoU), a bar per model: the rows of
    :func:`gdkd_seg.analysis.deployment.student_vs_teacher`."""
    names = [r['name'] for r in rows]
    colours = _colours(len(rows))
    panels = [('parameters (M)', [r['params'] / 1e6 for r in rows]),
              ('GFLOPs', [r['flops'] / 1e9 for r in rows]),
              ('PyTorch latency (ms)', [r['torch_ms'] for r in rows]),
              ('onnxruntime latency (ms)', [r['onnx_ms'] for r in rows]),
              ('peak memory (MiB)', [r['peak_mb'] for r in rows])]
    if all(r.get('mIoU') is not None for r in rows):
        panels.append(('mIoU (%)', [r['mIoU'] for r in rows]))
    fig, axes = plt.subplots(1, len(panels),
                             figsize=(2.3 * len(panels), 3.4))
    for ax, (label, values) in zip(axes, panels):
        bars = ax.bar(range(len(rows)), values, color=colours)
        ax.bar_label(bars, labels=[f'{v:.3g}' for v in values], padding=2,
                     fontsize=7)
        ax.set_xticks(range(len(rows)), names, rotation=30, ha='right',
                      fontsize=8)
        ax.set_title(label, fontsize=9)
        ax.margins(y=0.15)
        ax.grid(axis='y', alpha=0.3)
    fig.suptitle(textwrap.fill(title, 100), fontsize=9)
    fig.tight_layout()
    fig.savefig(out_file, dpi=120)
    plt.close(fig)

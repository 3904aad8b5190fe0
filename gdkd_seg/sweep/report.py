"""A sweep's results as a table (``sweep.md``), JSON and a figure.

``collect_results`` reads every study of a sweep from its database, so any
worker (or a later call) writes the report of the whole shared sweep.
"""
import io
import json
import locale
import math
import os.path as osp
import platform
import statistics
from typing import IO, Dict, List, Optional, Sequence, Union

import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from ..compat import atomic_write_bytes  # noqa: E402
from .claims import storage_errors  # noqa: E402
from .naming import point_id, short_names  # noqa: E402
from .plan import Sweep  # noqa: E402
from .storage import open_study, rdb_storage, read_points  # noqa: E402


def collect_results(sweep: Sweep) -> dict:
    """Every target's points with per-seed values, mean and std.

    Grid points come in grid order (those not trained yet with the seeds
    done so far); TPE points in the order they finished.
    """
    import optuna
    import torch
    with storage_errors(sweep.storage):
        storage = rdb_storage(sweep.storage)
    targets = []
    for target in sweep.targets:
        records = read_points(open_study(sweep, target, storage))
        if sweep.search == 'grid':
            order = [point_id(p) for p in target.points()]
        else:
            order = sorted((k for k, r in records.items() if r.done),
                           key=lambda k: records[k].trial)
        points = []
        for key in order:
            record = records.get(key)
            seeds = {} if record is None else {
                s: r
                for s, r in record.seeds.items() if s in sweep.seeds
            }
            values = [seeds[s]['value'] for s in sweep.seeds if s in seeds]
            done = record is not None and record.done
            mean, std = mean_std(values) if done else (None, None)
            points.append(
                dict(
                    params=json.loads(key),
                    seeds={
                        str(s): seeds[s]
                        for s in sweep.seeds if s in seeds
                    },
                    mean=mean,
                    std=std,
                    done=done,
                    trial=None if record is None else record.trial))
        targets.append(
            dict(
                label=target.label,
                config=osp.relpath(target.config),
                study=sweep.study_name_of(target),
                keys=target.names,
                points=points))
    return dict(
        metric=sweep.targets[0].metric,
        mode=sweep.mode,
        seeds=sweep.seeds,
        search=sweep.search,
        cfg_options=sweep.cfg_options,
        storage=sweep.storage,
        software=dict(
            python=platform.python_version(),
            torch=torch.__version__,
            optuna=optuna.__version__,
            machine=platform.machine()),
        targets=targets)


def mean_std(values: Sequence[float]):
    """Mean and sample standard deviation (None for one value)."""
    mean = statistics.fmean(values)
    std = statistics.stdev(values) if len(values) > 1 else None
    return mean, std


def best_point(target: dict, mode: str) -> Optional[dict]:
    done = [
        p for p in target['points'] if p['done'] and math.isfinite(p['mean'])
    ]
    if not done:
        return None
    pick = max if mode == 'max' else min
    return pick(done, key=lambda p: p['mean'])


def markdown_table(results: dict) -> str:
    """One row per point: its values, each seed, mean ± std, and the
    difference to the first config's best point (best rows in bold)."""
    keys: Dict[str, str] = {}
    for target in results['targets']:
        keys.update({k: None for k in target['keys']})
    names = short_names(list(keys))
    reference = best_point(results['targets'][0], results['mode'])
    first = results['targets'][0]['label']
    seeds = results['seeds']
    header = (['config'] + [names[k]
                            for k in keys] + [f'seed {s}' for s in seeds] +
              [f'{results["metric"]} mean ± std', f'vs best {first}'])
    rows = [header, ['---'] * len(header)]
    for target in results['targets']:
        best = best_point(target, results['mode'])
        for point in target['points']:
            cells = [target['label']] + [
                _fmt_value(point['params'][k]) if k in point['params'] else ''
                for k in keys
            ]
            cells += [
                _fmt(point['seeds'][str(s)]['value'])
                if str(s) in point['seeds'] else '…' for s in seeds
            ]
            if point['done']:
                summary = _fmt(point['mean'])
                if point['std'] is not None:
                    summary += f' ± {_fmt(point["std"])}'
                if point is best:
                    summary = f'**{summary}**'
                delta = _paired_difference(point, reference, seeds)
            else:
                summary, delta = 'not run', ''
            rows.append(cells + [summary, delta])
    lines = ['| ' + ' | '.join(r) + ' |' for r in rows]
    spread = ('std is the sample standard deviation over seeds; '
              if len(seeds) > 1 else '')
    lines.append('')
    lines.append(
        f'Each seed: the best validation {results["metric"]} of its run '
        f'({results["mode"]} over validations); {spread}bold: each '
        f'config\'s best point; last column: difference to {first}\'s best '
        'point, seed by seed (the same seed gives every point the same '
        'initialisation and data order), mean ± std over seeds.')
    return '\n'.join(lines)


def _paired_difference(point: dict, reference: Optional[dict],
                       seeds: List[int]) -> str:
    if reference is None:
        return ''
    differences = [
        point['seeds'][str(s)]['value'] - reference['seeds'][str(s)]['value']
        for s in seeds
    ]
    mean, std = mean_std(differences)
    return f'{mean:+.2f}' + ('' if std is None else f' ± {_fmt(std)}')


def _fmt(value: float) -> str:
    return f'{value:.2f}' if math.isfinite(value) else str(value)


def _fmt_value(value) -> str:
    return str(value)


def plot_results(results: dict, out_file: Union[str, IO[bytes]]) -> None:
    """Mean ± std per point, one panel per config; a heatmap of the mean
    for a config swept over two keys."""
    targets = [t for t in results['targets'] if t['points']]
    if not targets:  # a TPE study before its first point finished
        fig, ax = plt.subplots(figsize=(5, 2))
        ax.axis('off')
        ax.text(0.5, 0.5, f'no finished point yet ({results["metric"]})',
                ha='center', va='center')
        fig.savefig(out_file, dpi=120, format='png')
        plt.close(fig)
        return
    widths = [
        max(2.0, 0.55 * len(t['points']) +
            1.2) if len(t['keys']) != 2 else 1.0 * len(_axis_values(t, 1)) +
        2.5 for t in targets
    ]
    fig, axes = plt.subplots(
        1,
        len(targets),
        figsize=(sum(widths), 4.2),
        gridspec_kw=dict(width_ratios=widths),
        squeeze=False)
    reference = best_point(results['targets'][0], results['mode'])
    for ax, target in zip(axes[0], targets):
        if len(target['keys']) == 2:
            _heatmap(fig, ax, target, results['metric'])
        else:
            _errorbars(ax, target, results, reference)
    fig.suptitle(f'{results["metric"]} over seeds '
                 f'{", ".join(map(str, results["seeds"]))} (mean ± std)')
    fig.tight_layout()
    fig.savefig(out_file, dpi=120, format='png')
    plt.close(fig)


def _label(point: dict, keys: Dict[str, str]) -> str:
    return '\n'.join(f'{keys[k]}={v}' for k, v in point['params'].items())


def _errorbars(ax, target: dict, results: dict,
               reference: Optional[dict]) -> None:
    points = target['points']
    x = np.arange(len(points))
    for i, point in enumerate(points):
        values = [r['value'] for r in point['seeds'].values()]
        ax.scatter([i] * len(values), values, color='grey', s=10, zorder=2)
        if point['done']:
            ax.errorbar(
                i,
                point['mean'],
                yerr=point['std'] or 0,
                fmt='o',
                color='C0',
                capsize=4,
                zorder=3)
    if reference is not None:
        ax.axhline(
            reference['mean'],
            color='C3',
            lw=0.8,
            ls='--',
            label=f'best {results["targets"][0]["label"]}')
        ax.legend(fontsize=7, loc='lower right')
    ax.set_xticks(x)
    ax.set_xticklabels(
        [_label(p, target['keys']) or target['label'] for p in points],
        fontsize=7)
    ax.set_xlim(-0.6, len(points) - 0.4)
    ax.set_title(target['label'])
    ax.set_ylabel(results['metric'])
    ax.grid(axis='y', alpha=0.3)


def _axis_values(target: dict, axis: int) -> List:
    key = list(target['keys'])[axis]
    values = []
    for point in target['points']:
        if point['params'][key] not in values:
            values.append(point['params'][key])
    return values


def _heatmap(fig, ax, target: dict, metric: str) -> None:
    row_key, col_key = list(target['keys'])
    rows, cols = _axis_values(target, 0), _axis_values(target, 1)
    mean = np.full((len(rows), len(cols)), np.nan)
    text = np.full(mean.shape, '', dtype=object)
    for point in target['points']:
        i = rows.index(point['params'][row_key])
        j = cols.index(point['params'][col_key])
        if point['done']:
            mean[i, j] = point['mean']
            text[i,
                 j] = _fmt(point['mean']) + (f'\n±{_fmt(point["std"])}' if
                                             point['std'] is not None else '')
    image = ax.imshow(mean, cmap='viridis', aspect='auto')
    finite = mean[np.isfinite(mean)]
    middle = (finite.min() + finite.max()) / 2 if finite.size else 0
    for i in range(len(rows)):
        for j in range(len(cols)):
            colour = 'black' if np.isfinite(mean[i, j]) and \
                mean[i, j] > middle else 'white'
            ax.text(
                j,
                i,
                text[i, j],
                ha='center',
                va='center',
                fontsize=7,
                color=colour)
    ax.set_xticks(range(len(cols)))
    ax.set_xticklabels(cols)
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels(rows)
    ax.set_xlabel(target['keys'][col_key])
    ax.set_ylabel(target['keys'][row_key])
    ax.set_title(f'{target["label"]} (mean {metric})')
    fig.colorbar(image, ax=ax, fraction=0.05)


def write_report(results: dict, work_dir: str) -> List[str]:
    """Write ``sweep.md``, ``sweep.json`` and ``sweep.png``; their paths.

    Each file is written atomically (:func:`atomic_write_bytes`), so
    workers that finish points at the same moment never leave a mixed file.
    """
    paths = [
        osp.join(work_dir, f'sweep.{ext}') for ext in ('md', 'json', 'png')
    ]
    encoding = locale.getpreferredencoding(False)  # as open(path, 'w')
    figure = io.BytesIO()
    plot_results(results, figure)
    contents = ((markdown_table(results) + '\n').encode(encoding),
                json.dumps(results, indent=1).encode(encoding),
                figure.getvalue())
    for data, path in zip(contents, paths):
        atomic_write_bytes(data, path)
    return paths

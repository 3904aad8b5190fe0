"""Reading mmengine's logged scalars: runs in order, resumes, metrics."""
import json
import math

import pytest

from gdkd_seg.apis import best_metric, read_scalars


def write_run(work_dir, stamp, records, tail=''):
    vis = work_dir / stamp / 'vis_data'
    vis.mkdir(parents=True)
    text = ''.join(json.dumps(r) + '\n' for r in records) + tail
    (vis / 'scalars.json').write_text(text)


def test_resumed_runs_merge_and_the_later_record_wins(tmp_path):
    write_run(tmp_path, '20260101_000000', [
        dict(loss=3.0, iter=1, step=1), dict(loss=2.5, iter=2, step=2),
        dict(mIoU=10.0, aAcc=50.0, step=2), dict(loss=9.0, iter=3, step=3)
    ], tail='{"loss": 1.')  # killed mid-write
    write_run(tmp_path, '20260101_010000', [
        dict(loss=2.0, iter=3, step=3), dict(loss=1.5, iter=4, step=4),
        dict(mIoU=12.5, aAcc=55.0, step=4)
    ])
    runs = read_scalars(str(tmp_path))
    assert [r['iter'] for r in runs.train] == [1, 2, 3, 4]
    assert runs.train[2]['loss'] == 2.0
    assert [r['step'] for r in runs.val] == [2, 4]
    assert best_metric(str(tmp_path)) == (12.5, 4)
    assert best_metric(str(tmp_path), 'aAcc', mode='min') == (50.0, 2)
    assert best_metric(str(tmp_path), 'accuracy/top1') is None


def test_empty_work_dir_and_broken_lines(tmp_path):
    assert read_scalars(str(tmp_path)) == ([], [])
    write_run(tmp_path, '20260101_000000',
              [dict(loss=1.0, iter=1, step=1)], tail='garbage\n{"a": 1}\n')
    with pytest.raises(ValueError, match='scalars.json:2 is not JSON'):
        read_scalars(str(tmp_path))
    with pytest.raises(ValueError, match="mode must be 'max' or 'min'"):
        best_metric(str(tmp_path), mode='best')


@pytest.mark.parametrize('mode', ['max', 'min'])
def test_non_finite_validations_are_skipped(tmp_path, mode):
    """A NaN (or inf) first validation is no best value, neither for max
    (NaN compares false to everything) nor for min."""
    write_run(tmp_path, '20260101_000000', [
        dict(mIoU=float('nan'), step=2), dict(mIoU=float('inf'), step=4),
        dict(mIoU=30.0, step=6), dict(mIoU=40.0, step=8)
    ])
    assert best_metric(str(tmp_path), mode=mode) == \
        ((40.0, 8) if mode == 'max' else (30.0, 6))


def test_no_finite_validation_gives_nan(tmp_path):
    write_run(tmp_path, '20260101_000000', [
        dict(mIoU=float('nan'), step=2), dict(mIoU=float('-inf'), step=4)
    ])
    value, step = best_metric(str(tmp_path))
    assert math.isnan(value) and step == 4

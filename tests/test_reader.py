"""The live metrics reader: exactly the new lines, torn lines, rewrites, and downsampling."""

from __future__ import annotations

import json
import math
import os

from gm.runs.folder import RunFolder
from gm.runs.reader import MetricsHistory, MetricsReader, downsample, scalar_keys, series


def _line(step: int, **values) -> str:
    return json.dumps({"step": step, "epoch": step / 100, "time": step / 10, "loss": 1.0 / step,
                       **values}) + "\n"


def _append(path, text: str) -> None:
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(text)


def test_reads_exactly_what_was_appended(tmp_path):
    path = tmp_path / "metrics.jsonl"
    reader = MetricsReader(path)
    assert reader.read_new().records == []  # no file yet
    path.touch()
    assert reader.read_new().records == []

    _append(path, _line(1) + _line(2) + _line(3))
    update = reader.read_new()
    assert [r["step"] for r in update.records] == [1, 2, 3] and not update.reset
    assert reader.read_new().records == []

    torn = _line(5)
    _append(path, _line(4) + torn[:17])  # the writer is in the middle of line 5
    assert [r["step"] for r in reader.read_new().records] == [4]
    assert reader.read_new().records == []  # still incomplete: kept back, not half-parsed
    _append(path, torn[17:-1])
    assert reader.read_new().records == []
    _append(path, "\n" + _line(6))
    update = reader.read_new()
    assert update.records == [json.loads(torn), json.loads(_line(6))] and not update.reset
    assert reader.offset == path.stat().st_size


def test_resume_rewrite_is_detected_and_reread(tmp_path):
    run_path = tmp_path / "run"
    run_path.mkdir()
    (run_path / "config.json").write_text("{}")
    run = RunFolder(run_path)
    run.append_metrics([{"step": s, "loss": 1.0} for s in (5, 10, 15, 20)])
    history = MetricsHistory(run.metrics_path)
    assert history.update() and [r["step"] for r in history.records] == [5, 10, 15, 20]

    run.truncate_metrics_after(10)  # what a resume from the step-10 checkpoint does
    run.append_metrics([{"step": s, "loss": 2.0} for s in (15, 20, 25, 30)])
    assert history.update()
    assert [(r["step"], r["loss"]) for r in history.records] == [
        (5, 1.0), (10, 1.0), (15, 2.0), (20, 2.0), (25, 2.0), (30, 2.0)]
    assert not history.update()


def test_in_place_truncation_is_detected(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text(_line(1) + _line(2))
    reader = MetricsReader(path)
    assert len(reader.read_new().records) == 2
    inode = path.stat().st_ino
    with open(path, "w", encoding="utf-8") as fh:  # shorter, same inode
        fh.write(_line(7))
    update = reader.read_new()
    assert update.reset and [r["step"] for r in update.records] == [7]
    # Rewritten in place to a longer file: the bytes before the old offset changed.
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(_line(8) + _line(9) + _line(10))
    assert path.stat().st_ino == inode
    update = reader.read_new()
    assert update.reset and [r["step"] for r in update.records] == [8, 9, 10]
    os.remove(path)
    assert reader.read_new().reset


def test_garbage_line_from_a_crash_is_skipped(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text(_line(1) + '{"step": 2, "lo' + _line(3))  # torn line, then appended to
    assert [r["step"] for r in MetricsReader(path).read_new().records] == [1]


def test_series_skips_missing_and_non_finite_values():
    records = [{"step": 1, "loss": 3.0, "kl_dims": [1.0, 2.0]}, {"step": 2, "loss": None},
               {"step": 3, "loss": float("nan")}, {"step": 4, "loss": 1.0, "fid": 9.0}, {"loss": 5.0}]
    assert series(records, "loss") == ([1, 4], [3.0, 1.0])
    assert series(records, "fid") == ([4], [9.0])
    assert scalar_keys(records) == ["loss", "fid"]


def test_downsample_keeps_ends_and_extremes():
    n = 100_000
    xs = list(range(n))
    ys = [math.sin(i / 500) for i in range(n)]
    ys[31_337] = 50.0    # a spike, e.g. a divergence
    ys[77_001] = -50.0
    dx, dy = downsample(xs, ys, 2000)
    assert len(dx) <= 2000 and len(dx) == len(dy)
    assert dx[0] == 0 and dx[-1] == n - 1 and dx == sorted(dx)
    assert 50.0 in dy and -50.0 in dy
    assert all(ys[x] == y for x, y in zip(dx, dy))
    assert max(b - a for a, b in zip(dx, dx[1:])) <= 2 * n / 999  # spread over the whole run
    assert downsample(xs[:10], ys[:10], 2000) == (xs[:10], ys[:10])
    assert downsample(xs, ys, 2) == ([0, n - 1], [ys[0], ys[-1]])


def test_history_series_downsamples_each_metric(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text("".join(_line(s, kl=float(s % 7)) for s in range(1, 5001)))
    history = MetricsHistory(path)
    history.update()
    out = history.series(max_points=500)
    assert set(out) == {"loss", "kl"}
    for xs, _ys in out.values():
        assert 250 < len(xs) <= 500 and xs[0] == 1 and xs[-1] == 5000
    wall = history.series(["loss"], x="time", max_points=10_000)["loss"]
    assert len(wall[0]) == 5000 and wall[0][0] == 0.1

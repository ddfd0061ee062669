"""The training-throughput benchmark runs its three variants and reports what it claims to (the
speed targets themselves are measured by the benchmark, never asserted here)."""

from __future__ import annotations

import json

import torch


def test_train_throughput_smoke(mnist_dir, tmp_path, capsys):
    from bench import train_throughput
    out = tmp_path / "r.json"
    before = torch.get_num_threads()
    try:
        assert train_throughput.main(["--models", "gan", "--steps", "4", "--warmup-steps", "1",
                                      "--repeats", "1", "--overhead-steps", "21", "--data-dir", str(mnist_dir), "--json", str(out)]) == 0
    finally:
        torch.set_num_threads(before)
    (row,) = json.loads(out.read_text())
    assert row["model"] == "gan" and row["batch"] == 64 and row["images_per_step"] == 64
    for key in ("gm", "compute", "reference"):
        assert row[key] > 0 and len(row["values"][key]) == 1
    assert row["gm/compute"] == row["gm"] / row["compute"]
    assert 0 < row["periodic_share"] < 0.5 and row["grid_ms"] > 0 and row["ckpt_ms"] > 0
    assert 0 < row["loop_ms"]
    assert "| `gan` | 64 | 64 |" in capsys.readouterr().out


def test_time_to_quality_smoke(mnist_dir, tmp_path, capsys):
    """Both variants (gm's loop and the course script) train, probe on schedule and report; a target
    nobody meets in a few seconds gives 'not reached' rows, never a speed-up."""
    from bench import time_to_quality
    out = tmp_path / "ttq.json"
    assert time_to_quality.main(["--models", "gan", "--every", "5", "--max-minutes", "0.05", "--ratio", "0.99",
                                 "--data-dir", str(mnist_dir), "--json", str(out)]) == 0
    (row,) = json.loads(out.read_text())["rows"]
    assert row["model"] == "gan" and row["gm_seconds"] is None and row["course_seconds"] is None
    assert row["gm_best_ratio"] is not None and row["course_best_ratio"] is not None
    assert "speedup" not in row
    assert "| `gan` | not reached in 0.05 min" in capsys.readouterr().out

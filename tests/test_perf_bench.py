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

"""GAN family through the real loop on the offline MNIST digits: smoke runs, resume equivalence, CLI."""

from __future__ import annotations

import json

import pytest
import torch

from gm.cli import main as cli_main
from gm.config import with_overrides
from gm.registry import get_spec
from gm.runs.loop import new_session, open_session, train

# Small but real: every network at a fraction of its width, a few steps of small batches.
TINY = {"batch_size": 8, "width": 0.125, "log_every": 1, "checkpoint_every": 1000,
        "sample_every": 1000}

METRICS = {
    "gan": {"d_loss", "g_loss", "d_real", "d_fake"},
    "dcgan": {"d_loss", "g_loss", "d_real", "d_fake"},
    "wgan": {"d_loss", "g_loss", "d_real", "d_fake", "w_dist"},
    "wgan-gp": {"d_loss", "g_loss", "d_real", "d_fake", "w_dist", "gp"},
    "ssgan": {"d_loss", "g_loss", "d_real", "d_fake", "d_rot", "g_rot", "rot_acc"},
    "acgan": {"d_loss", "g_loss", "d_real", "d_fake", "d_cls", "cls_acc"},
}


def tiny_config(model: str, **extra):
    spec = get_spec(model)
    return with_overrides(spec.config_cls(), {**TINY, **extra}, model=model)


def read_metrics(run_path) -> list[dict]:
    return [json.loads(line) for line in (run_path / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("model", list(METRICS))
def test_every_gan_trains_without_nan(model, mnist_dir, runs_dir):
    session = new_session(model, tiny_config(model), runs_dir=runs_dir, name=model, device="cpu",
                          data_dir=str(mnist_dir), steps=3)
    assert train(session) == "finished"
    rows = read_metrics(session.run.path)
    assert [r["step"] for r in rows] == [1, 2, 3]
    for row in rows:
        assert METRICS[model] <= set(row)
        assert all(v == v and abs(v) < 1e6 for k, v in row.items() if isinstance(v, float))
        if model in ("wgan", "wgan-gp"):
            assert row["w_dist"] == pytest.approx(row["d_real"] - row["d_fake"], abs=1e-5)
        else:
            assert 0 <= row["d_real"] <= 1 and 0 <= row["d_fake"] <= 1
    grids = sorted(session.run.samples_dir.glob("step-*.png"))
    assert grids, "a sample grid is saved at the end"


def _weights_after(session) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in session.trainer.weights().items()}


@pytest.mark.parametrize("model,extra", [
    ("dcgan", {"instance_noise": 0.2, "label_smoothing": True}),   # BCE; dropout + noise RNGs
    ("wgan-gp", {"n_critic": 2}),                                   # Wasserstein; GP's random mixes
    ("ssgan", {"n_critic": 1, "width": 0.0625}),                    # spectral-norm power iterations
])
def test_resume_equals_uninterrupted(model, extra, mnist_dir, runs_dir):
    config = tiny_config(model, **extra)
    whole = new_session(model, config, runs_dir=runs_dir, name="whole", device="cpu",
                        data_dir=str(mnist_dir), steps=5)
    assert train(whole) == "finished"
    first = new_session(model, config, runs_dir=runs_dir, name="split", device="cpu",
                        data_dir=str(mnist_dir), steps=3)
    assert train(first) == "finished"
    del first
    second = open_session(runs_dir / "split", steps=2, device="cpu", data_dir=str(mnist_dir))
    assert second.trainer.step == 3
    assert train(second) == "finished"
    a, b = _weights_after(whole), _weights_after(second)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    rows_a, rows_b = read_metrics(whole.run.path), read_metrics(runs_dir / "split")
    assert [r["step"] for r in rows_b] == [1, 2, 3, 4, 5]
    assert rows_a[-1]["g_loss"] == pytest.approx(rows_b[-1]["g_loss"], rel=1e-4, abs=1e-6)


def test_cli_trains_a_gan(mnist_dir, runs_dir, capsys):
    code = cli_main(["train", "gan", "--steps", "2", "--device", "cpu", "--runs-dir", str(runs_dir),
                     "--data-dir", str(mnist_dir), "--name", "cli-gan", "--quiet",
                     "--set", "width=0.25", "--set", "log_every=1", "--batch-size", "8"])
    assert code == 0
    assert {"d_loss", "g_loss"} <= set(read_metrics(runs_dir / "cli-gan")[-1])
    assert cli_main(["train", "ssgan", "--steps", "1", "--runs-dir", str(runs_dir),
                     "--data-dir", str(mnist_dir), "--set", "loss=mse"]) == 2
    assert "loss" in capsys.readouterr().err

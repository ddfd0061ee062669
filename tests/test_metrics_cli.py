"""`python -m gm stats | fid | eval` end to end on small n: a VAE run on dSprites, MNIST digit files,
and a fake class-conditional run for ACGAN accuracy."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from gm.cli import main
from gm.models.base import ClassConditional, SamplesFromNoise

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
EVAL_KEYS = {"step", "metric", "value", "n", "features", "stats_key", "time", "seed"}


def _mnist(train: bool):
    if not (SHARED_DATA / "MNIST" / "raw").is_dir():
        pytest.skip(f"the shared offline MNIST digits are not at {SHARED_DATA} (../shared/data from the repo root)")
    from gm.data.mnist import load_mnist
    return load_mnist(SHARED_DATA, train=train, download=False)


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    """A fresh stats cache for the test (GM_CACHE_DIR)."""
    monkeypatch.setenv("GM_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture(scope="module")
def vae_run(tmp_path_factory):
    runs = tmp_path_factory.mktemp("runs")
    assert main(["train", "vae", "--steps", "5", "--runs-dir", str(runs), "--name", "v", "--device", "cpu",
                 "--quiet"]) == 0
    return runs / "v"


def _last_line(capsys) -> tuple[str, str]:
    captured = capsys.readouterr()
    return captured.out.strip().splitlines()[-1], captured.err


def test_fid_of_a_run_prints_the_value_and_records_it(vae_run, cache, capsys):
    assert main(["fid", str(vae_run), "--features", "classifier", "--n", "300"]) == 0
    line, err = _last_line(capsys)
    value = float(line)
    assert value > 0
    assert "computed and cached" in err and "not comparable with Inception FID" in err
    records = [json.loads(x) for x in (vae_run / "eval.jsonl").read_text().splitlines()]
    assert set(records[-1]) == EVAL_KEYS
    assert records[-1]["metric"] == "fid" and records[-1]["features"] == "classifier"
    assert records[-1]["step"] == 5 and records[-1]["n"] == 300 and records[-1]["value"] == pytest.approx(value)

    assert main(["fid", str(vae_run), "--features", "classifier", "--n", "300", "--no-record"]) == 0
    again, err = _last_line(capsys)
    assert float(again) == pytest.approx(value, rel=1e-9)   # same seed, same samples, cached real stats
    assert "from cache" in err
    assert len((vae_run / "eval.jsonl").read_text().splitlines()) == len(records)


def test_eval_of_a_vae_run_reports_every_metric_that_applies(vae_run, cache, capsys):
    assert main(["eval", str(vae_run), "--n", "300", "--quiet"]) == 0
    line, _ = _last_line(capsys)
    out = json.loads(line)
    for key in ("fid_classifier", "precision", "recall", "classes_covered", "kl_to_uniform", "class_histogram", "mig"):
        assert key in out, key
    assert out["dataset"] == "dsprites" and out["coverage_of"] == "shape" and out["num_classes"] == 3
    assert sum(out["class_histogram"]) == 300 and 0 <= out["mig"] <= 1
    assert set(out["mig_per_factor"]) == {"shape", "scale", "posX", "posY"}   # orientation is constant
    assert "acgan_accuracy" not in out and "fid_inception" not in out
    metrics = {json.loads(x)["metric"] for x in (vae_run / "eval.jsonl").read_text().splitlines()}
    assert {"fid", "precision", "recall", "classes_covered", "kl_to_uniform", "mig"} <= metrics


def test_stats_command_caches(cache, capsys):
    _mnist(train=True)
    args = ["stats", "mnist", "--features", "classifier", "--n", "500", "--data-dir", str(SHARED_DATA)]
    assert main(args) == 0
    path, err = _last_line(capsys)
    assert Path(path).is_file() and Path(path).parent == cache / "stats" and "\ncomputed: " in "\n" + err
    with np.load(path) as f:
        assert f["mu"].dtype == np.float64 and f["sigma"].shape == (f["mu"].size, f["mu"].size)
    assert main(args) == 0
    assert "\ncached: " in "\n" + _last_line(capsys)[1]


def test_fid_and_eval_of_digit_files(tmp_path, cache, capsys):
    train, test = _mnist(train=True), _mnist(train=False)
    np.savez(tmp_path / "real.npz", images=test.images[:500, 0].numpy())
    np.savez(tmp_path / "one.npz", images=test.images[:1, 0].numpy().repeat(500, axis=0))
    common = ["--dataset", "mnist", "--n", "500", "--data-dir", str(SHARED_DATA), "--quiet"]
    assert main(["fid", str(tmp_path / "real.npz"), "--features", "classifier", *common]) == 0
    real_fid = float(_last_line(capsys)[0])
    assert main(["fid", str(tmp_path / "one.npz"), "--features", "classifier", *common]) == 0
    collapsed_fid = float(_last_line(capsys)[0])
    assert collapsed_fid > 5 * real_fid

    assert main(["eval", str(tmp_path / "real.npz"), *common]) == 0
    real = json.loads(_last_line(capsys)[0])
    assert real["classes_covered"] == 10 and real["recall"] > 0.5 and "mig" not in real
    assert main(["eval", str(tmp_path / "one.npz"), *common]) == 0
    one = json.loads(_last_line(capsys)[0])
    assert one["classes_covered"] == 1 and one["recall"] < 0.05
    del train


def test_user_errors_exit_2_with_one_line(tmp_path, cache, capsys):
    np.savez(tmp_path / "x.npz", images=np.zeros((4, 28, 28), np.uint8))
    assert main(["fid", str(tmp_path / "x.npz"), "--features", "classifier"]) == 2
    assert "pass --dataset" in capsys.readouterr().err
    assert main(["fid", str(tmp_path / "missing")]) == 2
    assert "does not exist" in capsys.readouterr().err
    np.savez(tmp_path / "bad.npz", images=np.full((4, 28, 28), 3.0))
    assert main(["eval", str(tmp_path / "bad.npz"), "--dataset", "mnist"]) == 2
    assert "must be in [0, 1]" in capsys.readouterr().err
    _mnist(train=False)
    assert main(["stats", "mnist", "--features", "classifier", "--split", "test", "--n", "5000",
                 "--data-dir", str(SHARED_DATA)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "has only 1,000 images" in err


class _PoolFeatures:
    """Stands in for Inception (cheap): 7x7 average pooling of the grey image."""

    kind, name, dims, weights_hash, batch_size, device = "inception", "avgpool-16", 16, "-", 256, torch.device("cpu")

    def __call__(self, images: torch.Tensor) -> np.ndarray:
        return torch.nn.functional.avg_pool2d(images.float().mean(1, keepdim=True), 7).flatten(1).double().numpy()


class _PerfectConditional:
    """A stand-in class-conditional generator: real test digits of the requested classes."""

    num_classes, image_shape = 10, (1, 28, 28)

    def __init__(self, digits) -> None:
        self.by_class = {c: digits.images[digits.labels == c].float() / 255 for c in range(10)}

    def sample(self, n, seed, labels=None):
        g = torch.Generator().manual_seed(seed)
        labels = labels if labels is not None else torch.randint(0, 10, (n,), generator=g)
        return torch.stack([self.by_class[int(c)][int(torch.randint(0, 80, (1,), generator=g))] for c in labels])


# Declared the way a model class outside gm's hierarchy can: a virtual subclass of each capability.
SamplesFromNoise.register(_PerfectConditional)
ClassConditional.register(_PerfectConditional)


def test_acgan_accuracy_uses_the_requested_labels(tmp_path, cache, monkeypatch):
    from gm.metrics import evaluate as ev
    from gm.runs.folder import RunFolder
    test = _mnist(train=False)
    run = RunFolder.create(tmp_path, "acgan", {"model": "acgan", "dataset": "mnist"})
    monkeypatch.setattr(ev, "_open_run", lambda path, device: ev._Run(_PerfectConditional(test), run, 7))
    seen = []
    out = ev.evaluate(run.path, n=400, data_dir=str(SHARED_DATA), inception=True,
                      inception_extractor=_PoolFeatures(), progress=lambda *p: seen.append(p))
    assert out["acgan_accuracy"] > 0.95 and out["classes_covered"] == 10
    assert out["fid_inception"] >= 0 and out["stats_key_inception"] != out["stats_key"]
    assert seen[-1][0] == seen[-1][1] == 400 * 5   # generated, real, conditional, inception: generated + real
    lines = [json.loads(x) for x in (run.path / "eval.jsonl").read_text().splitlines()]
    assert {x["metric"] for x in lines} >= {"acgan_accuracy", "fid", "precision", "recall"}
    assert {x["features"] for x in lines if x["metric"] == "fid"} == {"classifier", "inception"}
    assert all(x["step"] == 7 and set(x) == EVAL_KEYS for x in lines)

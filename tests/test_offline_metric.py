"""The offline realism metric is validated, not assumed (issue 17, item 1).

The disturbance tests of Heusel et al. 2017 on held-out real images: for Gaussian noise, Gaussian
blur, black rectangles, swirl, salt-and-pepper and contamination with the other dataset's images, at
six increasing levels, the Fréchet distance on the offline evaluator's features rises strictly; and
grey blobs (a collapsed non-digit generator) rank worse than every real subset of 1, 3 or 10 digit
classes (dSprites: 1, 2 or 3 shapes). Small n keeps it fast; every level is kept.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from gm.metrics import disturb

N = 300


@pytest.fixture(scope="module")
def tables():
    return {}


def _table(dataset, data_dir, tables):
    from gm.metrics.offline import offline_extractor
    from gm.metrics.validate import disturbance_table

    if dataset not in tables:
        ext = offline_extractor(dataset)
        tables[dataset] = disturbance_table(dataset, lambda x: ext.all(x)[0], data_dir=str(data_dir), n=N)
    return tables[dataset]


@pytest.mark.parametrize("dataset", ["mnist", "dsprites"])
def test_every_disturbance_raises_the_distance_monotonically(dataset, mnist_dir, tables):
    from gm.metrics.validate import LEVELS

    t = _table(dataset, mnist_dir, tables)
    assert set(t.rows) == {"noise", "blur", "rectangles", "swirl", "salt_pepper", "contaminate"}
    for name, row in t.rows.items():
        assert len(row) == len(LEVELS[dataset][name]) >= 6       # clean + at least 5 increasing levels
        assert all(b > a for a, b in zip(row, row[1:])), f"{dataset} {name}: {[round(v, 2) for v in row]}"


@pytest.mark.parametrize("dataset", ["mnist", "dsprites"])
def test_blobs_rank_worse_than_every_real_subset(dataset, mnist_dir, tables):
    from gm.metrics.validate import SUBSET_SIZES

    t = _table(dataset, mnist_dir, tables)
    sizes = {len(k.split(",")) for k in t.subsets}
    assert sizes == set(SUBSET_SIZES[dataset])
    assert len(t.subsets) == (10 + 120 + 1 if dataset == "mnist" else 3 + 3 + 1)
    worst, value = t.worst_subset()
    assert t.others["grey blobs"] > value, (worst, value, t.others)


def test_disturbances_are_seeded_shaped_and_bounded():
    x = torch.rand(8, 1, 28, 28)
    for name, fn in disturb.DISTURBANCES.items():
        a, b = fn(x, 2 if name in ("rectangles", "swirl", "blur") else 0.2, seed=3), \
            fn(x, 2 if name in ("rectangles", "swirl", "blur") else 0.2, seed=3)
        assert a.shape == x.shape and torch.equal(a, b) and 0 <= a.min() and a.max() <= 1, name
        assert torch.equal(fn(x, 0, seed=3), x), name           # level 0 is the identity
    others = torch.zeros(4, 1, 64, 64)
    mixed = disturb.contaminate(x, 0.5, others, seed=0)
    assert int((mixed.flatten(1).sum(1) == 0).sum()) == 4
    assert disturb.grey_blobs(5, 28).shape == (5, 1, 28, 28)


def test_recognisable_share_and_within_class_diversity():
    from gm.metrics.offline import recognisable_share, within_class_diversity

    probs = np.array([[0.95, 0.03, 0.02], [0.5, 0.4, 0.1], [0.0, 0.02, 0.98]])  # last column: not real
    assert recognisable_share(probs) == pytest.approx(1 / 3)
    rng = np.random.default_rng(0)
    real = rng.normal(size=(200, 8))
    p_real = np.tile([[0.97, 0.02, 0.01]], (200, 1))
    p_real[100:] = [0.02, 0.97, 0.01]
    assert within_class_diversity(real, p_real, real, p_real) == pytest.approx(1.0)
    collapsed = np.repeat(real[:2], 100, axis=0) + 0.01 * rng.normal(size=(200, 8))
    assert within_class_diversity(collapsed, p_real, real, p_real) < 0.2


def test_eval_reports_the_offline_metrics_beside_the_existing_keys(tmp_path, mnist_dir, monkeypatch, capsys):
    from gm.metrics.evaluate import evaluate, fid
    from gm.metrics.train_offline import mnist_split

    monkeypatch.setenv("GM_CACHE_DIR", str(tmp_path / "cache"))
    _, (xh, _), _ = mnist_split(str(mnist_dir))
    np.savez(tmp_path / "digits.npz", images=(xh[:200, 0].numpy() * 255).astype(np.uint8))
    np.savez(tmp_path / "blobs.npz", images=disturb.grey_blobs(200, 28).numpy()[:, 0].astype(np.float32))
    out = {name: evaluate(tmp_path / f"{name}.npz", dataset="mnist", n=200, split="test", device="cpu",
                          data_dir=str(mnist_dir), record=False) for name in ("digits", "blobs")}
    for o in out.values():
        assert {"fid_classifier", "precision", "recall", "classes_covered", "fid_offline", "recognisable_share",
                "recognisable_share_real", "within_class_diversity"} <= set(o)
        json.dumps(o)
    assert out["digits"]["fid_offline"] < out["blobs"]["fid_offline"]
    assert out["digits"]["recognisable_share"] > 0.8 and out["blobs"]["recognisable_share"] < 0.05
    assert out["digits"]["recognisable_share_real"] == out["blobs"]["recognisable_share_real"] > 0.8
    assert 0.8 < out["digits"]["within_class_diversity"] < 1.25
    r = fid(tmp_path / "blobs.npz", features="offline", dataset="mnist", n=200, split="test", device="cpu",
            data_dir=str(mnist_dir), record=False)
    assert r.features == "offline" and r.value == pytest.approx(out["blobs"]["fid_offline"], rel=1e-2)  # 8-bit vs float

    from gm.cli import main
    capsys.readouterr()
    assert main(["fid", str(tmp_path / "blobs.npz"), "--features", "offline", "--dataset", "mnist", "--n", "200",
                 "--split", "test", "--device", "cpu", "--data-dir", str(mnist_dir), "--quiet"]) == 0
    assert float(capsys.readouterr().out.strip().splitlines()[-1]) == pytest.approx(r.value, rel=1e-9)

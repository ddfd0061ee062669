"""The real-statistics cache: miss, hit, invalidation, and statistics files as FID sources."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from gm.errors import GMError
from gm.metrics.stats import entry_path, real_stats

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture
def data_dir() -> str:
    if not (SHARED_DATA / "MNIST" / "raw").is_dir():
        pytest.skip(f"the shared offline MNIST digits are not at {SHARED_DATA} (../shared/data from the repo root)")
    return str(SHARED_DATA)


class PoolFeatures:
    """A tiny deterministic extractor (7x7 average pooling -> 16-d) that counts its images."""

    kind = "test"
    name = "avgpool-16"
    dims = 16
    batch_size = 256
    device = torch.device("cpu")

    def __init__(self, weights_hash: str = "w1") -> None:
        self.weights_hash = weights_hash
        self.images = 0

    def __call__(self, images: torch.Tensor) -> np.ndarray:
        self.images += images.shape[0]
        return torch.nn.functional.avg_pool2d(images.float(), 7).flatten(1).double().numpy()


def test_miss_then_hit_then_invalidated_by_any_key(tmp_path, data_dir):
    ext = PoolFeatures()
    first = real_stats("mnist", ext, n=300, seed=0, data_dir=data_dir, folder=tmp_path)
    assert not first.cached and ext.images == 300
    assert first.path == entry_path(first.key, tmp_path) and first.path.is_file()
    stored = json.loads(first.path.with_suffix(".json").read_text())
    assert stored == first.key
    assert set(stored) == {"dataset", "split", "n", "seed", "features", "extractor", "weights", "data", "format"}

    hit = real_stats("mnist", ext, n=300, seed=0, data_dir=data_dir, folder=tmp_path)
    assert hit.cached and ext.images == 300              # no feature was computed
    np.testing.assert_array_equal(hit.mu, first.mu)
    np.testing.assert_array_equal(hit.sigma, first.sigma)
    assert hit.key_id == first.key_id

    new_weights = PoolFeatures("w2")                      # same file name, other key -> recomputed
    changed = real_stats("mnist", new_weights, n=300, seed=0, data_dir=data_dir, folder=tmp_path)
    assert not changed.cached and new_weights.images == 300 and changed.path == first.path
    assert json.loads(first.path.with_suffix(".json").read_text())["weights"] == "w2"
    again = real_stats("mnist", ext, n=300, seed=0, data_dir=data_dir, folder=tmp_path)
    assert not again.cached                               # the old weights' entry was overwritten

    for kwargs in ({"n": 200, "seed": 0}, {"n": 300, "seed": 1}, {"n": 300, "seed": 0, "split": "test"}):
        other = real_stats("mnist", ext, data_dir=data_dir, folder=tmp_path, **kwargs)
        assert not other.cached and other.key_id != first.key_id


def test_a_torn_cache_entry_is_recomputed(tmp_path, data_dir):
    ext = PoolFeatures()
    first = real_stats("mnist", ext, n=100, data_dir=data_dir, folder=tmp_path)
    first.path.write_bytes(b"not an npz")
    again = real_stats("mnist", ext, n=100, data_dir=data_dir, folder=tmp_path)
    assert not again.cached and ext.images == 200
    np.testing.assert_allclose(again.mu, first.mu)


def test_gm_cache_dir_moves_the_cache(tmp_path, monkeypatch, data_dir):
    from gm.metrics.stats import cache_dir
    monkeypatch.setenv("GM_CACHE_DIR", str(tmp_path / "c"))
    assert cache_dir() == tmp_path / "c" / "stats"
    st = real_stats("mnist", PoolFeatures(), n=50, data_dir=data_dir)
    assert st.path.parent == tmp_path / "c" / "stats"


def test_too_few_real_images_is_said_clearly(tmp_path, data_dir):
    with pytest.raises(GMError, match=r"only 1,000 images, fewer than n = 5,000"):
        real_stats("mnist", PoolFeatures(), n=5000, split="test", data_dir=data_dir, folder=tmp_path)


def test_pytorch_fid_style_stats_files_are_fid_sources(tmp_path):
    from gm.metrics.evaluate import fid
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(200, 8)), rng.normal(size=(200, 8)) + 1.0
    for name, x in (("a", a), ("b", b)):  # what `python -m pytorch_fid --save-stats` writes
        np.savez_compressed(tmp_path / f"{name}.npz", mu=x.mean(0), sigma=np.cov(x, rowvar=False))
    result = fid(tmp_path / "a.npz", tmp_path / "b.npz")
    assert result.value == pytest.approx(8.0, rel=0.25)
    assert result.extractor == "stats"
    assert fid(tmp_path / "a.npz", tmp_path / "a.npz").value == pytest.approx(0.0, abs=1e-8)

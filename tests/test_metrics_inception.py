"""Inception FID: offline behaviour without weights, safe weight loading, and the whole pipeline with
pytorch-fid's architecture and random weights."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from gm.errors import GMError
from gm.metrics import inception


@pytest.fixture
def offline(monkeypatch, tmp_path):
    """An empty torch home and no network: the state of a fresh offline machine."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))

    def blocked(url, dst):
        raise OSError("network blocked in tests")

    monkeypatch.setattr(inception, "_download", blocked)
    return tmp_path / "torch" / "hub" / "checkpoints"


def _digits(n: int, seed: int) -> np.ndarray:
    """Blurry blob images (uint8 N x 28 x 28): cheap stand-ins for digits."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:28, 0:28]
    out = np.zeros((n, 28, 28))
    for i in range(n):
        cy, cx = rng.uniform(8, 20, size=2)
        out[i] = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / rng.uniform(10, 30))
    return (out * 255).astype(np.uint8)


def test_missing_weights_is_one_sentence_and_exit_code_2(offline, tmp_path, capsys):
    from gm.cli import main
    np.savez(tmp_path / "a.npz", images=_digits(4, 0))
    code = main(["fid", str(tmp_path / "a.npz"), "--dataset", "mnist", "--n", "4", "--quiet"])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1 and err.startswith("error: ")
    assert inception.WEIGHTS_FILE in err
    assert str(offline) in err and "$TORCH_HOME/hub/checkpoints" in err and "--inception-weights" in err


def test_weights_are_found_in_the_hub_folder_or_at_a_given_path(offline, tmp_path):
    with pytest.raises(GMError, match="not available offline"):
        inception.find_weights()
    offline.mkdir(parents=True, exist_ok=True)
    (offline / inception.WEIGHTS_FILE).write_bytes(b"x")
    assert inception.find_weights() == offline / inception.WEIGHTS_FILE
    with pytest.raises(GMError, match="is not a file"):
        inception.find_weights(tmp_path / "nope.pth")


class Payload:
    def __reduce__(self):
        return (print, ("pickled code ran",))


def test_weights_files_are_never_unpickled(tmp_path, capsys):
    evil = tmp_path / "evil.pth"
    torch.save({"w": Payload()}, evil)
    with pytest.raises(GMError, match="not a readable PyTorch weights file"):
        inception.load_state_dict_file(evil)
    assert "pickled code ran" not in capsys.readouterr().out
    wrong = tmp_path / "wrong.pth"
    torch.save({"conv.weight": torch.zeros(2)}, wrong)
    with pytest.raises(GMError, match="do not fit"):
        inception.build_inception(inception.load_state_dict_file(wrong))


@pytest.fixture(scope="module")
def random_net():
    torch.manual_seed(0)
    return inception.random_inception(seed=0)


def test_inception_pipeline_with_random_weights(random_net, tmp_path):
    from gm.metrics.evaluate import fid
    from gm.metrics.sources import open_source
    a, b = _digits(3, 1), 255 - _digits(3, 2)           # blobs vs inverted blobs
    np.savez(tmp_path / "a.npz", images=a)
    np.savez(tmp_path / "b.npz", images=b[:, None])    # N x 1 x H x W works too
    folder = tmp_path / "a_png"
    folder.mkdir()
    for i, img in enumerate(a[:2]):
        Image.fromarray(img).convert("RGB").save(folder / f"{i:03d}.png")   # as pytorch-fid would read them

    feats = random_net(torch.from_numpy(a[:2]).float().unsqueeze(1) / 255)
    assert feats.shape == (2, 2048) and feats.dtype == np.float64 and np.isfinite(feats).all()
    from_png = random_net(open_source(folder).images.batch(0, 2))
    np.testing.assert_allclose(from_png, feats, rtol=1e-5, atol=1e-6)   # grey in memory = RGB PNG files

    result = fid(tmp_path / "a.npz", tmp_path / "b.npz", extractor=random_net)
    assert result.features == "inception" and result.n_a == result.n_b == 3
    assert np.isfinite(result.value) and result.value > 1e-3


class CountingFeatures:
    kind, name, dims, weights_hash, batch_size, device = "test", "mean-4", 4, "-", 2, torch.device("cpu")

    def __call__(self, images: torch.Tensor) -> np.ndarray:
        return torch.nn.functional.adaptive_avg_pool2d(images.float().mean(1, keepdim=True), 2).flatten(1).double().numpy()


def test_progress_and_cancel(tmp_path):
    import threading

    from gm.metrics.evaluate import fid
    from gm.metrics.features import Cancelled
    np.savez(tmp_path / "a.npz", images=_digits(5, 3))
    seen = []
    fid(tmp_path / "a.npz", tmp_path / "a.npz", extractor=CountingFeatures(), progress=lambda *p: seen.append(p))
    assert [s[0] for s in seen] == [2, 4, 5, 7, 9, 10] and {s[1] for s in seen} == {10}
    assert seen[-1][2] == pytest.approx(0.0, abs=1e-9)
    cancel = threading.Event()
    calls = []

    def cancel_after_first(done, total, eta):
        calls.append(done)
        cancel.set()

    with pytest.raises(Cancelled):
        fid(tmp_path / "a.npz", tmp_path / "a.npz", extractor=CountingFeatures(), progress=cancel_after_first,
            cancel=cancel)
    assert calls == [2]


@pytest.mark.slow
def test_equals_pytorch_fid_on_the_same_pngs_with_the_same_weights(tmp_path, monkeypatch):
    import pytorch_fid.inception as pfi
    from pytorch_fid.fid_score import calculate_fid_given_paths

    from gm.metrics.evaluate import fid
    state = inception.random_state_dict(seed=1)
    weights = tmp_path / "random.pth"
    torch.save(state, weights)
    for name, seed in (("a", 4), ("b", 5)):
        (tmp_path / name).mkdir()
        for i, img in enumerate(_digits(24, seed)):
            Image.fromarray(img).save(tmp_path / name / f"{i:03d}.png")
    ours = fid(tmp_path / "a", tmp_path / "b", inception_weights=str(weights), device="cpu").value
    monkeypatch.setattr(pfi, "load_state_dict_from_url", lambda *a, **k: state)
    ref = calculate_fid_given_paths([str(tmp_path / "a"), str(tmp_path / "b")], 50, "cpu", 2048, num_workers=0)
    assert ours == pytest.approx(ref, rel=1e-4)


def test_estimate_measures_a_rate():
    from gm.metrics.evaluate import estimate_seconds
    secs, rate = estimate_seconds(CountingFeatures(), 100, (1, 28, 28))
    assert rate > 0 and secs == pytest.approx(100 / rate)


def test_hub_folder_follows_torch_home(monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    assert inception.hub_checkpoints_dir() == Path(tmp_path) / "hub" / "checkpoints"

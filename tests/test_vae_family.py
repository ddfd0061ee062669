"""β-VAE and ControlVAE trainers, checkpoint/resume continuity of β, the VAE views and the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from gm import vae_views
from gm.cli import main
from gm.config import from_dict, to_dict
from gm.data.base import Batch
from gm.data.dsprites import load_dsprites
from gm.registry import get_spec
from gm.runs import loop
from gm.runs.checkpoint import latest_checkpoint, load_checkpoint
from gm.runs.folder import RunFolder


@pytest.fixture(scope="module")
def small_dsprites():
    """512 rendered dSprites images: enough for a few tiny steps, fast to build."""
    full = load_dsprites(render_only=True)
    keep = torch.randperm(len(full), generator=torch.Generator().manual_seed(0))[:512]
    full.images = full.images[keep].clone()
    full.labels = full.labels[keep].clone()
    return full


def _config(model: str, **values):
    spec = get_spec(model)
    return from_dict(spec.config_cls, {**to_dict(spec.config_cls()), "width": 0.25, "batch_size": 16,
                                       "log_every": 1, **values}, model=model)


def _trainer(model: str, dataset, **values):
    config = _config(model, **values)
    return get_spec(model).new_trainer(config, dataset, torch.device("cpu"))


def _step(trainer, dataset, n: int = 1) -> list[dict]:
    out = []
    for i in range(n):
        batch = dataset.images[i * 16:(i + 1) * 16]
        out.append(trainer.train_step(Batch({"dsprites": batch})))
    return out


# ---- trainers --------------------------------------------------------------------------------
def test_betavae_uses_its_beta(small_dsprites):
    t = _trainer("betavae", small_dsprites, beta=3.5)
    for m in _step(t, small_dsprites, 3):
        assert m["beta"] == 3.5
        assert float(m["loss"]) == pytest.approx(float(m["recon"]) + 3.5 * float(m["kl"]), rel=1e-5)


def test_controlvae_step_metrics_follow_the_controller(small_dsprites):
    t = _trainer("controlvae", small_dsprites, kl_target=0.0, ki=0.05, beta_min=1.0, kl_dims_every=2)
    metrics = _step(t, small_dsprites, 4)
    for m in metrics:
        assert {"loss", "recon", "kl", "beta", "kl_target", "p_term", "i_term"} <= set(m)
        assert m["kl_target"] == 0.0
        assert float(m["loss"]) == pytest.approx(float(m["recon"]) + m["beta"] * float(m["kl"]), rel=1e-5)
        assert m["beta"] == pytest.approx(max(1.0, m["p_term"] + m["i_term"] + 1.0))
    assert "kl_dims" in metrics[1] and metrics[1]["kl_dims"].shape == (10,)
    # Any KL is above a set point of 0, so the integrator must push β up from the first step.
    assert metrics[-1]["i_term"] > metrics[0]["i_term"] > 0
    assert metrics[-1]["beta"] > 1.0
    assert t.extra_state()["controller"]["step"] == 4


def test_controlvae_config_rejects_inverted_bounds():
    from gm.errors import GMError
    with pytest.raises(GMError, match="beta_min"):
        _config("controlvae", beta_min=5, beta_max=2)


# ---- checkpoint / resume continuity ----------------------------------------------------------
def _no_checkpoint_wall_clock(**values):
    return _config("controlvae", kl_target=1.0, ki=0.02, checkpoint_every=1000,
                   checkpoint_seconds=1e6, sample_every=1000, **values)


def test_resume_continues_the_same_beta_trajectory(tmp_path, monkeypatch, small_dsprites):
    monkeypatch.setattr("gm.runs.session.load_dataset", lambda name, data_dir=None: small_dsprites)
    config = _no_checkpoint_wall_clock()
    n, m = 5, 4

    whole = loop.new_session("controlvae", config, runs_dir=tmp_path, name="whole", device="cpu",
                             steps=n + m, dataset=small_dsprites)
    assert loop.train(whole) == "finished"

    first = loop.new_session("controlvae", config, runs_dir=tmp_path, name="split", device="cpu",
                             steps=n, dataset=small_dsprites)
    assert loop.train(first) == "finished"
    second = loop.open_session(tmp_path / "split", steps=m)
    assert second.trainer.step == n
    assert second.trainer.controller.step == n
    assert loop.train(second) == "finished"

    def rows(name):
        out = RunFolder(tmp_path / name).read_metrics()
        return [{k: v for k, v in r.items() if k != "time"} for r in out]

    a, b = rows("whole"), rows("split")
    assert [r["step"] for r in a] == list(range(1, n + m + 1))
    assert [r["beta"] for r in a] == [r["beta"] for r in b]
    assert a == b
    betas = [r["beta"] for r in a]
    assert len(set(betas)) > 1                       # β actually moved

    (wa, sa, _), (wb, sb, _) = (load_checkpoint(latest_checkpoint(tmp_path / r / "checkpoints")[1])
                                for r in ("whole", "split"))
    assert sa["trainer"]["extra"] == sb["trainer"]["extra"]
    assert sa["trainer"]["extra"]["controller"]["step"] == n + m
    assert wa.keys() == wb.keys()
    for k in wa:
        assert torch.equal(wa[k], wb[k]), k


# ---- views -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def vae_trainer(small_dsprites):
    return _trainer("vae", small_dsprites)


def test_prior_grid_is_the_assignments_5_by_10(vae_trainer):
    images = vae_views.prior_samples(vae_trainer, seed=3)
    assert images.shape == (50, 1, 64, 64) and images.dtype == torch.float32
    assert 0.0 <= float(images.min()) and float(images.max()) <= 1.0
    assert torch.equal(images, vae_views.prior_samples(vae_trainer, seed=3))
    assert not torch.equal(images, vae_views.prior_samples(vae_trainer, seed=4))
    grid = vae_views.prior_grid(vae_trainer)
    assert grid.dtype == np.uint8 and grid.shape == (5 * 66 + 2, 10 * 66 + 2)


def test_reconstructions_beside_originals(vae_trainer, small_dsprites):
    batch = small_dsprites.images[:7]
    originals, recons = vae_views.reconstruct(vae_trainer, batch)
    assert originals.shape == recons.shape == (7, 1, 64, 64)
    assert torch.equal(originals, batch.float())            # dSprites pixels are 0/1
    assert 0.0 <= float(recons.min()) and float(recons.max()) <= 1.0
    grid = vae_views.reconstruction_grid(vae_trainer, batch, per_row=5)
    assert grid.shape == (4 * 66 + 2, 5 * 66 + 2)            # two (original, recon) row pairs


def test_encode_decode_and_png(vae_trainer, small_dsprites):
    mu, logvar = vae_views.encode(vae_trainer, small_dsprites.images[:3])
    assert mu.shape == logvar.shape == (3, 10)
    one = vae_views.decode(vae_trainer.vae, [0.0] * 10)       # the bare module works too
    assert one.shape == (1, 1, 64, 64)
    assert torch.allclose(vae_views.decode(vae_trainer, mu)[0], vae_views.reconstruct(
        vae_trainer, small_dsprites.images[:1])[1][0])
    png = vae_views.decode_png(vae_trainer, np.zeros(10), scale=2)
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    from gm.errors import GMError
    with pytest.raises(GMError, match="10 values"):
        vae_views.decode(vae_trainer, [0.0] * 3)
    with pytest.raises(GMError, match="VAE-family"):
        vae_views.decode(torch.nn.Linear(2, 2), [0.0])


def test_traversal_orders_rows_by_kl_and_sweeps_one_dim(vae_trainer):
    kl_dims = [0.1, 3.0, 0.0, 1.5, 0.0, 0.0, 0.2, 0.0, 0.0, 2.0]
    z = torch.randn(10, generator=torch.Generator().manual_seed(1))
    tr = vae_views.traversal(vae_trainer, z, kl_dims=kl_dims, steps=5, span=2.0)
    assert tr.dims == [1, 9, 3, 6, 0, 2, 4, 5, 7, 8]
    assert tr.kl_dims[:3] == [3.0, 2.0, 1.5]
    assert tr.values == pytest.approx([-2.0, -1.0, 0.0, 1.0, 2.0])
    assert tr.images.shape == (50, 1, 64, 64)
    assert tr.grid().shape == (10 * 66 + 2, 5 * 66 + 2)
    # Row 0 sweeps dim 1 with the other dims at z: its middle image decodes z with z[1] = 0.
    code = z.clone()
    code[1] = 0.0
    assert torch.allclose(tr.images[2], vae_views.decode(vae_trainer, code)[0], atol=1e-6)
    picked = vae_views.traversal(vae_trainer, dims=[4, 2], steps=3)
    assert picked.dims == [4, 2] and picked.images.shape == (6, 1, 64, 64)


def test_interpolation_ends_at_both_codes(vae_trainer):
    z0, z1 = torch.zeros(10), torch.ones(10)
    images = vae_views.interpolate(vae_trainer, z0, z1, steps=6)
    assert images.shape == (6, 1, 64, 64)
    assert torch.allclose(images[0], vae_views.decode(vae_trainer, z0)[0], atol=1e-6)
    assert torch.allclose(images[-1], vae_views.decode(vae_trainer, z1)[0], atol=1e-6)
    assert vae_views.interpolation_grid(vae_trainer, z0, z1, steps=6).shape == (68, 6 * 66 + 2)


# ---- CLI ---------------------------------------------------------------------------------------
def test_cli_trains_controlvae_with_preset(tmp_path, capsys):
    code = main(["train", "controlvae", "--preset", "kl8", "--steps", "3", "--batch-size", "16",
                 "--set", "width=0.25", "--set", "log_every=1", "--runs-dir", str(tmp_path),
                 "--name", "c8", "--device", "cpu", "--quiet"])
    assert code == 0, capsys.readouterr().err
    run = RunFolder(tmp_path / "c8")
    assert run.read_config()["config"]["kl_target"] == 8.0
    rows = run.read_metrics()
    assert [r["step"] for r in rows] == [1, 2, 3]
    for r in rows:
        assert r["kl_target"] == 8.0
        assert {"loss", "recon", "kl", "beta", "p_term", "i_term"} <= set(r)
    state = json.loads((tmp_path / "c8" / "state.json").read_text())
    assert state["status"] == "finished" and state["step"] == 3


def test_cli_rejects_an_unknown_preset(tmp_path, capsys):
    assert main(["train", "controlvae", "--preset", "kl99", "--runs-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "kl8" in err and "kl14" in err and err.count("\n") == 1

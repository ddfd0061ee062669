"""The shipped pretrained runs (checkpoints/pretrained/<model>/): each loads and samples like a local
run, and the app's Home shows a grid for every model on a fresh clone with no runs."""

from __future__ import annotations

import json

import pytest
import streamlit as st
import torch
from streamlit.testing.v1 import AppTest

from gm import load_model
from gm.pretrained import ENTRIES
from gm.registry import model_names
from gm.runs.folder import RunFolder
from tests.conftest import REPO
from tests.test_home_gallery import gallery_cards

SHIPPED = REPO / "checkpoints" / "pretrained"


@pytest.mark.parametrize("name", list(ENTRIES))
def test_pretrained_loads_and_samples(name):
    folder = SHIPPED / name
    if not (folder / "config.json").is_file():
        pytest.skip(f"no shipped pretrained weights for {name} ({folder} absent; "
                    f"`python -m gm.pretrained build --models {name}` makes them)")
    trainer, run = load_model(folder, "cpu"), RunFolder(folder)
    entry = ENTRIES[name]
    cfg = run.read_config()
    assert cfg["model"] == entry.model and run.read_state()["status"] == "finished"
    assert all(cfg["config"][k] == v for k, v in entry.overrides)
    summary = json.loads((folder / "metrics.json").read_text())
    assert summary["steps"] > 0
    if "translates" in trainer.capabilities:
        from tests.data.make_pretrained_references import reference_outputs
        images, _ = reference_outputs(trainer)
        assert {"target_accuracy", "gt_iou", "position_error_px", "cycle_l1", "parameters", "pairs"} <= set(summary)
    else:
        images = trainer.sample(4, seed=0)
        assert summary["fid_classifier"] >= 0 and "classes_covered" in summary
    assert images.shape[0] in (4, 8) and torch.isfinite(images).all()
    assert images.float().std() > 0.01  # not a blank canvas
    assert (folder / "samples.png").is_file() and run.sample_grids()
    weights = next((folder / "checkpoints").glob("step-*/model.safetensors"))
    from safetensors.torch import load_file
    assert {v.dtype for v in load_file(str(weights)).values()} <= {torch.float16, torch.int64}


def test_pretrained_folder_is_small():
    if not SHIPPED.is_dir():
        pytest.skip("no checkpoints/pretrained in this checkout")
    size = sum(p.stat().st_size for p in SHIPPED.rglob("*") if p.is_file())
    # Issue 17's budget: fp16 weights of what sampling reads, early/middle/final grids, metrics.
    assert size < 40e6, f"checkpoints/pretrained is {size / 1e6:.1f} MB"


def test_home_shows_every_pretrained_model_without_runs(tmp_path, monkeypatch):
    from gm.pretrained import showcase_runs
    present = [m for m, r in showcase_runs(SHIPPED).items() if (r.path / "samples.png").is_file()]
    if not present:
        pytest.skip("no shipped pretrained weights in this checkout")
    monkeypatch.setenv("GM_PRETRAINED_DIR", str(SHIPPED))
    monkeypatch.setenv("GM_RUNS_DIR", str(tmp_path / "empty-runs"))
    try:
        at = AppTest.from_file(str(REPO / "app.py"), default_timeout=120)
        at.run()
        assert not at.exception, [e.value for e in at.exception]
        cards = gallery_cards(at)   # Home's model gallery, one HTML block
        captions = [c["caption"] for c in cards if c["caption"]]
        assert sum(c.startswith("pretrained, step") for c in captions) == len(present)
        notes = [n for c in cards for n in c["notes"]]
        # The MNIST GANs' cards carry their held-out figures; failure examples are no model's card.
        measured = [n for n in notes if n.startswith("Held-out digits:")]
        assert len(measured) >= 5, measured
        # Translation cards carry their ground-truth figures (CycleGAN via its first pair's run).
        truth = [n for n in notes if n.startswith("Against the true counterparts:")]
        assert len(truth) == sum(m in present for m in ("cyclegan", "stargan")), truth
        assert not any("failure" in c for c in captions) and not any("failure" in c["model"] for c in cards)
        assert at.selectbox[0].format_func(at.selectbox[0].value).startswith("pretrained · ")
        assert any("No runs yet" in i.value for i in at.info)
    finally:
        from pages import _ui
        _ui.manager().shutdown(timeout=60)
        st.cache_resource.clear()


def test_pretrained_runs_do_not_resume():
    folder = next((SHIPPED / m for m in model_names() if (SHIPPED / m / "config.json").is_file()), None)
    if folder is None:
        pytest.skip("no shipped pretrained weights in this checkout")
    from gm.errors import GMError
    from gm.runs.loop import plan_resume
    with pytest.raises(GMError, match="weights only"):
        plan_resume(folder, steps=10)

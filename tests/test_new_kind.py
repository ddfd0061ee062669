"""A model of a kind gm was not written for (a two-domain translator, tests/toy_models.py) trains
through the real loop on unpaired dSprites domains, loads with gm.load_model, and every page of the
app renders it: its curves where they apply, "not available" where a view does not."""

from __future__ import annotations

import json

import pytest
import streamlit as st
import torch

import gm
from gm.config import with_overrides
from gm.registry import get_spec
from gm.runs.loop import new_session, open_session, train
from tests import toy_models
from tests.test_app import PAGES, open_page


@pytest.fixture
def toy():
    with toy_models.registered() as spec:
        yield spec


def _session(runs_dir, name="toy", steps=6, **values):
    spec = get_spec(toy_models.NAME)
    config = with_overrides(spec.config_cls(), {"batch_size": 8, "log_every": 2, "sample_every": 3,
                                                "checkpoint_every": 3, **values}, model=spec.name)
    return new_session(spec.name, config, runs_dir=runs_dir, name=name, device="cpu", steps=steps)


def test_a_two_domain_model_trains_on_unpaired_domains(toy, runs_dir):
    session = _session(runs_dir)
    assert session.batcher.domains == ("square", "ellipse", "heart")
    assert train(session) == "finished"
    run = session.run
    rows = [json.loads(line) for line in run.metrics_path.read_text().splitlines()]
    assert rows[-1]["step"] == 6 and all("cycle_l1" in r for r in rows)
    assert run.read_config()["data_shape"]["domains"] == ["square", "ellipse", "heart"]
    assert run.sample_grids()

    model = gm.load_model(run.path, device="cpu")
    assert model.capabilities == {"translates"}
    squares = session.batcher.draw(1).images["square"][:4].float()
    with torch.no_grad():
        out = model.translate(squares, to="ellipse")
    assert out.shape == squares.shape and float(out.min()) >= 0 and float(out.max()) <= 1
    from gm.errors import GMError
    with pytest.raises(GMError, match="Unknown domain"):
        model.translate(squares, to="triangle")
    with pytest.raises(GMError, match="does not sample"):
        model.sample(2, seed=0)


def test_a_two_domain_run_resumes_exactly(toy, runs_dir):
    whole = _session(runs_dir, "whole", steps=6)
    assert train(whole) == "finished"
    half = _session(runs_dir, "half", steps=3)
    assert train(half) == "finished"
    resumed = open_session(half.run.path, steps=3)
    assert resumed.batcher.state_dict() == {"domains": {
        name: b.state_dict() for name, b in resumed.batcher.batchers.items()}}
    assert train(resumed) == "finished"
    for key, value in whole.trainer.weights().items():
        assert torch.equal(value, resumed.trainer.weights()[key]), key


@pytest.mark.parametrize("page", PAGES)
def test_every_page_shows_a_new_kind_or_says_not_available(page, toy, tmp_path, monkeypatch):
    runs = tmp_path / "runs"
    runs.mkdir()
    monkeypatch.setenv("GM_RUNS_DIR", str(runs))
    try:
        session = _session(runs)
        assert train(session) == "finished"
        at = open_page(page, session.run.path)
        assert not at.exception and not at.error, [e.value for e in at.error]
        if page == "pages/monitor.py":
            titles = [json.loads(c.proto.spec)["layout"]["title"]["text"] for c in at.get("plotly_chart")]
            assert any("cycle_l1" in str(t) for t in titles)   # a logged scalar gets a chart of its own
        if page == "pages/explore.py":   # a model that translates gets the Translate view
            from gm.i18n import t
            assert t("explore.translate_heading", "en") in [h.value for h in at.subheader]
        if page == "pages/evaluate.py":  # and its translation figures, not sampling metrics
            assert not any("not available" in i.value for i in at.info)
    finally:
        from pages import _ui
        _ui.manager().shutdown(timeout=60)
        st.cache_resource.clear()

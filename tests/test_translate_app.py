"""The app on a translation model (tests/toy_models.py's two-domain translator standing in for
CycleGAN and StarGAN): Explore's Translate view, Monitor's losses grouped by kind, Evaluate's
translation metrics with a per-pair breakdown, and the walkthrough's translation step in English and
Persian, with and without the shipped runs it reads."""

from __future__ import annotations

import json
import re
import shutil

import pytest
import streamlit as st
import torch

from gm import i18n
from gm import translate_views as tv
from gm import walkthrough as wt
from gm.config import with_overrides
from gm.registry import get_spec
from gm.runs.folder import RunFolder
from gm.runs.loop import new_session, train
from tests import toy_models
from tests.test_app import image_urls, open_page

PAIRS = {"square->ellipse": {"target_accuracy": 0.96, "content_error": 0.02, "gt_iou": 0.85, "gt_l1": 0.01,
                             "position_error_px": 0.6, "cycle_l1": 0.02, "parameters": 20},
         "ellipse->square": {"target_accuracy": 0.98, "content_error": 0.04, "gt_iou": 0.89, "gt_l1": 0.012,
                             "position_error_px": 0.4, "cycle_l1": 0.03, "parameters": 20}}


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_data):
    """One toy translator run of 6 steps on the 256-sprite archive, copied by each test."""
    with toy_models.registered() as spec:
        runs = tmp_path_factory.mktemp("translate-runs")
        config = with_overrides(spec.config_cls(), {"batch_size": 8, "log_every": 2, "sample_every": 3,
                                                    "checkpoint_every": 3}, model=spec.name)
        session = new_session(spec.name, config, runs_dir=runs, name="toy", device="cpu", steps=6,
                              data_dir=str(tiny_data))
        assert train(session) == "finished"
        yield session.run.path


@pytest.fixture
def run(trained, tmp_path, monkeypatch):
    runs = tmp_path / "runs"
    shutil.copytree(trained, runs / "toy")
    monkeypatch.setenv("GM_RUNS_DIR", str(runs))
    yield RunFolder(runs / "toy")
    from pages import _ui
    _ui.manager().shutdown(timeout=60)
    st.cache_resource.clear()


def _record_pairs(run: RunFolder, pairs: dict, *, step: int = 6, n: int = 100) -> None:
    """eval.jsonl lines as `gm eval` writes a translation run's: overall figures, then one line per
    number of each pair."""
    time = "2025-01-01T00:00:00"
    for key in tv.METRIC_KEYS:
        values = [p[key] for p in pairs.values()]
        run.append_eval({"step": step, "metric": key, "value": sum(values) / len(values), "n": n,
                         "features": "translation", "time": time})
    for pair, values in pairs.items():
        for key, value in values.items():
            run.append_eval({"step": step, "metric": key, "value": value, "n": n, "features": "translation",
                             "pair": pair, "time": time})


# ---- Explore ----------------------------------------------------------------------------------------
def test_explore_translates_a_dataset_image_and_shows_the_cycle_and_the_truth(run):
    at = open_page("pages/explore.py", run.path)
    assert not at.error, [e.value for e in at.error]
    assert not any("not available" in i.value for i in at.info)
    assert any(h.value == i18n.t("explore.translate_heading", "en") for h in at.subheader)
    captions = [img.caption for el in at.get("image") for img in el.proto.imgs]
    assert "source · square" in captions and "translated → ellipse" in captions
    assert any(c.startswith("back → square (cycle L1") for c in captions)
    assert any(c.startswith("true ellipse (IoU") for c in captions), captions   # dSprites has ground truth
    before = image_urls(at)
    at.slider(key="exp.tidx.toy.square").set_value(5).run()
    assert not at.exception and image_urls(at) != before
    # The other direction: the target list follows model.pairs() for the chosen source.
    at.selectbox(key="exp.src.toy@en").set_value("ellipse").run()
    assert not at.exception
    assert at.multiselect(key="exp.to.toy.ellipse@en").value == ["square"]
    next(b for b in at.button if b.key == "exp.trand.toy").click().run()
    assert not at.exception and not at.error


def test_explore_shares_its_dataset_and_translations_with_the_next_visitor(run, monkeypatch):
    """One dataset per server process (the job manager's, which the warm-up loads), and a view a
    visitor has seen is not translated again for the next one: a first visit to Explore paid ~1 s."""
    from gm.runs import jobs
    loads, translations = [], []
    load, translate = jobs.load_dataset, tv.translate
    monkeypatch.setattr(jobs, "load_dataset", lambda *a, **k: loads.append(a) or load(*a, **k))
    monkeypatch.setattr(tv, "translate", lambda *a, **k: translations.append(a) or translate(*a, **k))
    first = open_page("pages/explore.py", run.path)
    assert not first.error and len(loads) == 1 and translations
    seen = len(translations)
    second = open_page("pages/explore.py", run.path)
    assert not second.error and len(loads) == 1 and len(translations) == seen
    assert image_urls(second) and len(image_urls(second)) == len(image_urls(first))
    second.slider(key="exp.tidx.toy.square").set_value(5).run()
    assert len(translations) == seen + 1 and len(loads) == 1   # a new image: translated once


def test_the_translate_view_helpers(trained):   # the module's fixture keeps the toy registered
    from gm.models.base import DataInfo
    spec = get_spec(toy_models.NAME)
    model = spec.build_model(spec.config_cls(), DataInfo("dsprites", (1, 64, 64), 1, 3,
                                                         domains=("square", "ellipse", "heart")))
    assert tv.targets_by_source(model) == {"square": ["ellipse"], "ellipse": ["square"]}
    images = torch.rand(3, 1, 64, 64)
    out = tv.translate(model, images, "square", ["ellipse"])
    assert out[0].translated.shape == images.shape and out[0].reconstructed.shape == images.shape
    from gm.errors import GMError
    with pytest.raises(GMError, match="does not translate 'square' into heart"):
        tv.translate(model, images, "square", ["heart"])
    grid = tv.batch_grid(images, out)
    assert grid.shape == (3 * 66 + 2, 3 * 66 + 2)   # sources, translations, cycles
    assert tv.iou(images > 2, images > 2) == 1.0 and tv.short_count(52.6e6) == "52.6M"
    assert tv.short_count(53.2e6, "fa") == "۵۳٫۲M"


# ---- Monitor -------------------------------------------------------------------------------------
def test_losses_group_by_kind_whatever_the_model():
    records = [{"step": s, "d_x": 0.2, "d_y": 0.3, "g_adv": 0.9, "cycle": 1.5, "idt": 0.4, "g_loss": 2.8,
                "d_loss": 0.5, "lr": 1e-4, "flag": True} for s in range(3)]
    groups = {g.kind: g.charts for g in tv.loss_groups(records)}
    assert list(groups) == ["adversarial", "cycle", "identity", "other"]
    assert groups["adversarial"] == [("discriminators", ("d_x", "d_y")), ("generator", ("g_adv",)),
                                     ("totals", ("d_loss", "g_loss"))]
    assert groups["other"] == [("lr", ("lr",))]   # a key the table does not name gets its own chart
    star = [{"step": 1, "d_adv": -3.0, "d_cls": 1.0, "gp": 0.1, "g_adv": 3.0, "g_cls": 0.8, "rec": 0.2,
             "cls_acc": 0.7}]
    kinds = {g.kind: g.charts for g in tv.loss_groups(star)}
    assert kinds["classification"] == [("class_losses", ("d_cls", "g_cls")), ("class_accuracy", ("cls_acc",))]
    assert kinds["cycle"] == [("cycle", ("rec",))] and kinds["gp"] == [("gp", ("gp",))]


def test_monitor_charts_a_translation_run_by_loss_kind(run):
    run.append_metrics([{"step": 7 + i, "epoch": 0.1, "time": 1.0 + i, "d_x": 0.25, "d_y": 0.24, "g_adv": 0.8,
                         "cycle": 1.2, "idt": 0.3, "d_loss": 0.5, "g_loss": 2.3} for i in range(3)])
    at = open_page("pages/monitor.py", run.path)
    assert not at.error, [e.value for e in at.error]
    titles = [json.loads(c.proto.spec)["layout"]["title"]["text"] for c in at.get("plotly_chart")]
    for chart in ("discriminators", "generator", "totals", "cycle", "identity"):
        assert i18n.t(f"monitor.chart_{chart}", "en") in titles, (chart, titles)
    assert "cycle_l1" in titles and "domain_gap" in titles    # the toy's own metrics, under "other"
    shown = " ".join(m.value for m in at.markdown)
    for kind in ("adversarial", "cycle", "identity", "other"):
        assert i18n.t(f"monitor.kind_{kind}", "en") in shown


# ---- Evaluate ------------------------------------------------------------------------------------
def test_evaluate_shows_the_recorded_translation_metrics_per_pair(run):
    at = open_page("pages/evaluate.py", run.path)
    assert not at.error and not any("not available" in i.value for i in at.info)
    assert i18n.t("evaluate.translation_none", "en") in [c.value for c in at.caption]
    _record_pairs(run, PAIRS)
    at.run()
    assert not at.exception and not at.error
    shown = {m.label: m.value for m in at.metric}
    assert shown["Target accuracy"] == "97.0%" and shown["IoU with the truth"] == "0.870"
    assert shown["Parameters"] == "20"
    table = next(d for d in at.dataframe if "pair" in d.value.columns).value.to_dict("records")
    assert [r["pair"] for r in table] == ["every pair", "ellipse → square", "square → ellipse"]
    assert table[2]["Target accuracy"] == "96.0%" and table[1]["Position error (px)"] == "0.40"
    assert not any("ev.hist" in c.proto.id for c in at.get("plotly_chart"))   # no sample-metric widgets


def test_translation_scores_come_from_eval_lines_or_the_shipped_summary(run):
    assert not tv.scores_of(run)
    (run.path / "metrics.json").write_text(json.dumps({"steps": 6, "eval_n": 50, "target_accuracy": 0.9,
                                                       "pairs": PAIRS}))
    shipped = tv.scores_of(run)
    assert shipped.origin == "metrics.json" and shipped.value("target_accuracy") == 0.9 and shipped.n == 50
    _record_pairs(run, {"square->ellipse": PAIRS["square->ellipse"]}, step=9)
    recorded = tv.scores_of(run)
    assert recorded.origin == "eval.jsonl" and recorded.step == 9 and list(recorded.pairs) == ["square->ellipse"]
    assert tv.scores_from_result({"n": 10, "target_accuracy": 0.5, "pairs": PAIRS}).pairs == PAIRS


def _evaluate_knows_translation() -> bool:
    import inspect

    from gm.metrics import evaluate
    return "target_accuracy" in inspect.getsource(evaluate)


def test_evaluate_button_measures_a_translation_run(run):
    if not _evaluate_knows_translation():
        pytest.skip("gm.metrics.evaluate has no translation metrics yet")
    import time
    at = open_page("pages/evaluate.py", run.path)
    at.select_slider(key="ev.tn").set_value(100)
    next(b for b in at.button if b.key == "ev.go").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    from pages import _ui
    task = _ui.tasks().get(str(run.path))
    deadline = time.monotonic() + 300
    while task.active and time.monotonic() < deadline:
        time.sleep(0.2)
    assert task.status == "done", task.error
    at.run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert "Target accuracy" in {m.label for m in at.metric}
    assert tv.scores_of(run).value("target_accuracy") is not None


# ---- walkthrough ------------------------------------------------------------------------------------
@pytest.mark.parametrize("lang", list(i18n.LANGUAGES))
def test_the_translation_step_renders_without_shipped_runs(lang, tmp_path, monkeypatch):
    from streamlit.testing.v1 import AppTest

    from tests.conftest import REPO
    monkeypatch.setenv("GM_RUNS_DIR", str(tmp_path / "runs"))
    try:
        at = AppTest.from_file(str(REPO / "app.py"), default_timeout=120)
        at.session_state["lang"] = lang
        at.session_state["wt.step"] = "translation"
        at.run()
        at.switch_page("pages/walkthrough.py").run()
        assert not at.exception and not at.error, [e.value for e in at.exception]
        assert at.header[0].value == wt.step_title("translation", lang)
        notes = [w.value for w in at.warning]
        for role in wt.steps.TRANSLATION_ROLES:   # one "not shipped yet" note per missing run
            assert any(i18n.t(f"walkthrough.role.{role}", lang) in n for n in notes), role
        papers = at.dataframe[0].value.to_dict("records")
        error = i18n.t("walkthrough.translation.col_error", lang)
        assert papers[0][error] == ("۵٫۹۹٪" if lang == "fa" else "5.99 %")
        assert len(papers) == 4 and papers[2][error] == "—"
    finally:
        from pages import _ui
        _ui.manager().shutdown(timeout=60)
        st.cache_resource.clear()


def test_the_translation_step_reproduces_the_table_from_the_runs_it_shows(run, tmp_path):
    from gm import load_model
    from gm.data import load_dataset
    pair = RunFolder(shutil.copytree(run.path, tmp_path / "pair"))
    _record_pairs(pair, {k: {**v, "parameters": 1000} for k, v in PAIRS.items()})
    star = run
    star_pairs = {"square->ellipse": {**PAIRS["square->ellipse"], "target_accuracy": 0.99},
                  "ellipse->square": {**PAIRS["ellipse->square"], "target_accuracy": 0.99}}
    (star.path / "metrics.json").write_text(json.dumps({"steps": 6, "eval_n": 100, "target_accuracy": 0.99,
                                                        "gt_iou": 0.9, "parameters": 1500, "pairs": star_pairs}))
    for lang in ("en", "fa"):
        runs = {r: None for r in wt.ROLES} | {"cyclegan_square_ellipse": pair, "stargan": star}
        ctx = wt.Context(lang, runs, lambda r: load_model(r.path, "cpu"), lambda name: load_dataset(name))
        blocks = wt.build("translation", ctx)
        # every placeholder filled (a formula's braces, "$D_{src}$", are TeX's)
        assert all("{" not in re.sub(i18n.INLINE_MATH, "", b.text) for b in blocks if b.kind in ("markdown", "note"))
        table = next(b for b in blocks if b.key == "translation.table").rows
        col = {k: ctx.t(f"walkthrough.translation.col_{k}") for k in ("error", "params", "total", "iou")}
        if lang == "en":
            assert table[2][col["error"]] == "3.00 %" and table[2][col["params"]] == "1K × 3"
            assert table[2][col["total"]] == "3K" and table[3][col["total"]] == "1.5K"
            assert table[3][col["error"]] == "1.00 %" and table[3][col["iou"]] == "0.900"
            assert "(1 of 3 here)" in table[2][ctx.t("walkthrough.translation.col_model")]
            pairs = next(b for b in blocks if b.key == "translation.pairs").rows
            assert pairs[1] == {"pair": "square → ellipse", "CycleGAN error": "4.00 %", "StarGAN error": "1.00 %",
                                "CycleGAN IoU": "0.850", "StarGAN IoU": "0.850"}
            explain = next(b.text for b in blocks if b.kind == "markdown" and b.text.startswith("**On dSprites"))
            assert "3.00%" in explain and "2.0 times" in explain
        notes = [b.text for b in blocks if b.kind == "note"]
        assert len(notes) == 2   # the two CycleGAN pairs not shown
        assert any(b.key == "translation.stargan.grid_final" for b in blocks)


def test_explore_offers_both_label_sets_of_a_stargan_with_the_mask_vector(tmp_path, monkeypatch, tiny_data):
    """A real StarGAN (2 steps, tiny) with shapes and scales: Explore picks sources from either set and
    translates within it, with the true counterpart of each."""
    runs = tmp_path / "runs"
    config = with_overrides(get_spec("stargan").config_cls(),
                            {"mask_split": "scale", "batch_size": 2, "n_blocks": 1, "n_critic": 1,
                             "log_every": 1, "sample_every": 2, "checkpoint_every": 2}, model="stargan")
    session = new_session("stargan", config, runs_dir=runs, name="star", device="cpu", steps=2,
                          data_dir=str(tiny_data))
    assert train(session) == "finished"
    monkeypatch.setenv("GM_RUNS_DIR", str(runs))
    try:
        at = open_page("pages/explore.py", session.run.path)
        assert not at.error and not at.exception, [e.value for e in at.error]
        assert [x.value for x in at.title] == ["Explore the translations"]
        assert at.selectbox(key="exp.src.star@en").options == ["square", "ellipse", "heart", "small", "large"]
        at.selectbox(key="exp.src.star@en").set_value("small").run()
        assert not at.exception and not at.error
        assert at.multiselect(key="exp.to.star.small@en").value == ["large"]
        captions = [img.caption for el in at.get("image") for img in el.proto.imgs]
        assert "translated → large" in captions and any(c.startswith("true large (IoU") for c in captions)
    finally:
        from pages import _ui
        _ui.manager().shutdown(timeout=60)
        st.cache_resource.clear()

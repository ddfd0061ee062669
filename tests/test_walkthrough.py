"""The classroom walkthrough: every step in both languages with the shipped pretrained runs, each
deliverable of the assignment present, "train it yourself", and the offline HTML / ZIP exports."""

from __future__ import annotations

import functools
import io
import json
import re
import time
import zipfile

import pytest
import streamlit as st
from PIL import Image
from streamlit.testing.v1 import AppTest

from gm import export, i18n, load_model
from gm import walkthrough as wt
from gm.data import load_dataset
from tests.conftest import REPO

SHIPPED = REPO / "checkpoints" / "pretrained"
LANGS = list(i18n.LANGUAGES)

# What the assignment asks each step to show (SPEC.md), as deliverable keys of gm.walkthrough.
REQUIRED = {
    "data": {"data.samples", "data.factors", "data.encoder", "data.decoder"},
    "vae": {"vae.losses", "vae.grid", "vae.fid"},
    "controlvae": {"controlvae.kl", "controlvae.recon", "controlvae.grid_kl8", "controlvae.grid_kl14",
                   "controlvae.fid"},
    "gan": {"gan.pixelshuffle_demo", "gan.generator", "gan.discriminator", "gan.losses", "gan.grid_final",
            "gan.fid"},
    "wgan": {"wgan.losses", "wgan.w_dist", "wgan.grid_final", "wgan.fid"},
    "ssgan": {"ssgan.losses", "ssgan.rotation", "ssgan.grid_final", "ssgan.fid"},
    "compare": {"compare.table", "compare.fid_mnist"},
    "dcgan": {"dcgan.losses", "dcgan.d_acc"},
    "acgan": {"acgan.class", "acgan.accuracy"},
    "failures": {"failures.histogram_worst", "failures.histogram_best", "failures.coverage",
                 "failures.collapse_grid_final", "failures.collapse_table", "failures.convergence_losses",
                 "failures.convergence_outputs", "failures.convergence_grid_final",
                 "failures.playground_ns", "failures.playground_wgan_gp"},
    "cam": {"cam.heatmaps"},
    "translation": {"translation.table", "translation.pairs", "translation.stargan.grid_final",
                    "translation.cyclegan_square_ellipse.grid_final"},
}


@pytest.fixture
def shipped(tmp_path, monkeypatch, mnist_dir):
    if not (SHIPPED / "controlvae-kl14" / "config.json").is_file():
        pytest.skip("the shipped pretrained runs are not in this checkout")
    monkeypatch.setenv("GM_PRETRAINED_DIR", str(SHIPPED))
    monkeypatch.setenv("GM_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv("GM_DATA_DIR", str(mnist_dir))
    yield
    from pages import _ui
    _ui.manager().shutdown(timeout=120)
    st.cache_resource.clear()


@functools.cache
def _trainer(path: str):
    return load_model(path, "cpu")


_COVERAGE: dict = {}   # mode-coverage histograms and the playground pair, shared by every context here


def _context(lang: str) -> wt.Context:
    return wt.Context(lang, wt.default_runs(), lambda run: _trainer(str(run.path)),
                      functools.cache(lambda name: load_dataset(name)), cache=_COVERAGE)


@functools.cache
def _built(lang: str) -> list:
    """Every step's blocks with the shipped runs, built once per language for this module's tests."""
    ctx = _context(lang)
    return [(step, wt.build(step, ctx)) for step in wt.steps_in_order()]


def _stage_keys(step: str) -> set[str]:
    """The early / middle grids are required where the shown run saved three stages."""
    out = set()
    for role in wt.STEP_BY_KEY[step].roles if step in ("gan", "wgan", "ssgan") else ():
        run = wt.default_runs()[role]
        if run is not None and len(run.sample_grids()) >= 3:
            out |= {f"{role}.grid_early", f"{role}.grid_middle"}
    return out


def test_the_pretrained_runs_cover_every_role(shipped):
    runs = wt.default_runs()
    assert all(runs[r] is not None for r in wt.ROLES if wt.ROLES[r].pretrained), runs
    assert runs["dcgan_tricks"] is None   # no shipped run: the step offers to train it


@pytest.mark.parametrize("lang", LANGS)
def test_every_step_builds_its_deliverables(shipped, lang):
    ctx = _context(lang)
    for step, blocks in _built(lang):
        keys = {b.key for b in blocks if b.deliverable}
        missing = (REQUIRED[step] | _stage_keys(step)) - keys
        assert not missing, (step, lang, missing)
        for b in blocks:
            if b.kind == "markdown":
                # every placeholder filled (a formula's braces are TeX's)
                assert "{" not in re.sub(i18n.INLINE_MATH, "", b.text), (step, b.text[:80])
            if b.kind == "metrics":
                assert all(m.value for m in b.metrics)
        fids = [m for b in blocks if b.kind == "metrics" for m in b.metrics if m.raw is not None]
        if step in ("vae", "controlvae", "gan", "wgan", "ssgan"):
            assert fids and all(m.raw > 0 for m in fids), step
    # The two set points share their charts: one curve per ControlVAE run.
    kl = next(b for b in wt.build("controlvae", ctx) if b.key == "controlvae.kl")
    names = {tr.name for tr in kl.figure.data if tr.showlegend is not False}
    assert {ctx.label("controlvae_kl8"), ctx.label("controlvae_kl14")} <= names


def _page(lang: str, step: str) -> AppTest:
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=300)
    at.session_state["lang"] = lang
    at.session_state["wt.step"] = step
    at.run()
    at.switch_page("pages/walkthrough.py").run()
    assert not at.exception, (lang, step, [e.value for e in at.exception])
    assert not at.error, (lang, step, [e.value for e in at.error])
    return at


def _chart_keys(at: AppTest) -> set[str]:
    return {el.proto.id.split("-wt.", 1)[1] for el in at.get("plotly_chart") if "-wt." in el.proto.id}


@pytest.mark.parametrize("lang", LANGS)
def test_the_app_walks_every_step(shipped, lang):
    for step, blocks in _built(lang):
        at = _page(lang, step)
        assert at.header[0].value == wt.step_title(step, lang)
        charts = {b.key for b in blocks if b.kind in ("chart", "demo")}
        assert charts <= _chart_keys(at), (step, charts - _chart_keys(at))
        captions = [img.caption for el in at.get("image") for img in el.proto.imgs]
        for b in blocks:
            if b.kind == "image":
                assert b.caption in captions, (step, b.caption)
        shown = {(m.label, m.value) for m in at.metric}
        for b in blocks:
            if b.kind == "metrics":
                assert {(m.label, m.value) for m in b.metrics} <= shown, step
        if lang == "fa":   # the page is laid out right to left, with the Persian font
            css = "".join(el.proto.body for el in at.get("html"))
            assert "direction: rtl" in css and "Vazirmatn" in css
            assert re.search("[\u0600-\u06FF]", at.header[0].value)


def test_next_and_previous_move_between_steps(shipped):
    at = _page("en", "data")
    next(b for b in at.button if b.key == "wt.next").click().run()
    assert at.session_state["wt.step"] == "vae"
    next(b for b in at.button if b.key == "wt.prev").click().run()
    assert at.session_state["wt.step"] == "data"


def test_train_it_yourself_starts_the_assignment_settings(shipped):
    at = _page("en", "controlvae")
    at.number_input(key="wt.steps.controlvae_kl14").set_value(3)
    next(b for b in at.button if b.key == "wt.train.controlvae_kl14").click().run()
    assert not at.exception, [e.value for e in at.exception]
    from pages import _ui
    jobs = _ui.manager().jobs()
    assert len(jobs) == 1 and jobs[0].model == "controlvae"
    done = _ui.manager().wait(jobs[0].key, timeout=300)
    assert done.status == "finished", done.error
    from gm.runs.folder import RunFolder
    cfg = RunFolder(jobs[0].key).read_config()
    assert cfg["config"]["kl_target"] == 14.0 and wt.ROLES["controlvae_kl14"].matches(cfg)
    # The new run can now play the role, next to the pretrained one.
    assert [r.path for r in wt.candidates("controlvae_kl14")][-1] == RunFolder(jobs[0].key).path


def _offline(html: str) -> None:
    """Nothing fetched from the network: no external scripts, styles, images or fonts."""
    assert not re.search(r'<(script|link|img|iframe)[^>]+(src|href)="(https?:)?//', html)
    assert not re.search(r"url\((['\"]?)https?:", html)


@pytest.mark.parametrize("lang", LANGS)
def test_walkthrough_exports_open_offline_and_hold_every_deliverable(shipped, lang):
    built = _built(lang)
    html = export.walkthrough_html(built, lang)
    _offline(html)
    assert f'lang="{lang}" dir="{"rtl" if lang == "fa" else "ltr"}"' in html
    assert "Plotly.newPlot" in html or "Plotly.react" in html   # plotly.js is inlined once
    for step, blocks in built:
        for b in blocks:
            if b.deliverable:
                assert f'data-key="{b.key}"' in html or f'id="chart-{b.key}"' in html, (step, b.key)
            if b.kind == "metrics":
                for m in b.metrics:
                    assert m.value in html
    static = export.walkthrough_html(built, lang, interactive=False)
    _offline(static)
    assert "Plotly" not in static and static.count("data:image/png;base64,") > 20
    bundle = zipfile.ZipFile(io.BytesIO(export.walkthrough_zip(built, lang)))
    names = bundle.namelist()
    assert "report.html" in names and "numbers.json" in names and "numbers.csv" in names
    figures = [n for n in names if n.startswith("figures/")]
    grids = [n for n in names if n.startswith("grids/")]
    assert len(figures) >= 15 and len(grids) >= 8
    Image.open(io.BytesIO(bundle.read(figures[0]))).verify()
    numbers = json.loads(bundle.read("numbers.json"))
    fid = [n for n in numbers["numbers"] if n["key"] == "gan.fid" and n["value"] is not None]
    assert fid and numbers["language"] == lang
    assert "compare--compare_table" in " ".join(numbers["tables"])


def test_run_export_and_its_command_line(tmp_path, runs_dir):
    from gm.cli import main
    from gm.runs.loop import new_session, train
    from tests.test_app import tiny_config
    session = new_session("vae", tiny_config("vae"), runs_dir=runs_dir, name="tiny", device="cpu", steps=10)
    assert train(session) == "finished"
    html = export.run_html(session.run, "fa")
    _offline(html)
    assert str(runs_dir) not in html and str(session.run.path) not in html   # no server paths in a handout
    assert 'dir="rtl"' in html and "data-key=\"grid_step_10\"" in html
    assert i18n.t("field.latent_dim", "fa") in html   # settings in words beside their config names
    assert "Latent" in export.run_html(session.run, "en", interactive=False)
    bundle = zipfile.ZipFile(io.BytesIO(export.run_zip(session.run, "en")))
    assert {"report.html", "metrics.csv", "eval.json", "numbers.json"} <= set(bundle.namelist())
    assert any(n.startswith("figures/curves--curve_kl") for n in bundle.namelist())
    out = tmp_path / "out"
    assert main(["export", str(session.run.path), "--out", str(out), "--lang", "fa"]) == 0
    assert (out / "tiny-fa.html").is_file() and (out / "tiny-fa.zip").is_file()
    assert main(["export", str(session.run.path), "--out", str(tmp_path / "r.html"), "--static"]) == 0
    assert "Plotly" not in (tmp_path / "r.html").read_text()


@pytest.mark.parametrize("argv", [["export", "--out", "x.html"], ["export", "RUN", "--walkthrough", "--out", "x.html"],
                                  ["export", "RUN", "--out", "x.html", "--lang", "de"]])
def test_export_user_errors_are_one_line(argv, tmp_path, capsys, runs_dir):
    from gm.cli import main
    argv = [a if a != "RUN" else str(runs_dir) for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:")


def test_persian_chart_labels_are_shaped_for_png():
    from gm.figures import display_text, figure_png
    from gm.plots import line_figure
    shaped = display_text("زیان کل")
    assert shaped != "زیان کل" and any("\ufe70" <= ch <= "\ufeff" for ch in shaped)   # presentation forms
    fig = line_figure([{"step": i, "loss": 1.0 / (i + 1)} for i in range(20)], ["loss"], title="زیان کل",
                      names=["زیان"])
    png = figure_png(fig)
    assert Image.open(io.BytesIO(png)).size[0] > 500


def test_every_equation_renders_without_a_tex_installation():
    import ast

    from gm.figures import equation_svg
    source = (REPO / "gm" / "walkthrough" / "steps.py").read_text()
    found = [ast.literal_eval(node.args[0]) for node in ast.walk(ast.parse(source))
             if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "equation"]
    assert len(found) >= 15
    for latex in found:
        svg = equation_svg(latex)
        assert svg.startswith("<svg") and "</svg>" in svg


def test_measure_fid_records_a_new_evaluation_that_the_step_then_shows(shipped, tmp_path, monkeypatch):
    import shutil
    copy = tmp_path / "pretrained"
    shutil.copytree(SHIPPED / "vae", copy / "vae")   # evaluating appends to the run's eval.jsonl
    monkeypatch.setenv("GM_PRETRAINED_DIR", str(copy))
    at = _page("en", "vae")
    at.select_slider(key="wt.n.vae").set_value(500)
    next(b for b in at.button if b.key == "wt.measure.vae").click().run()
    assert not at.exception, [e.value for e in at.exception]
    from pages import _ui
    task = _ui.tasks().get(str(copy / "vae"))
    deadline = time.monotonic() + 300
    while task.active and time.monotonic() < deadline:
        time.sleep(0.5)
    assert task.status == "done", task.error
    lines = [json.loads(x) for x in (copy / "vae" / "eval.jsonl").read_text().splitlines()]
    fid = next(x for x in lines if x["metric"] == "fid" and x["features"] == "classifier")
    assert fid["n"] == 500
    at.run()
    shown = {m.label: m.value for m in at.metric}
    assert shown[i18n.t("walkthrough.common.fid_classifier", "en", label="VAE")] == \
        wt.steps.fid_text(_context("en"), fid["value"])


def test_a_short_run_gets_a_note_instead_of_the_trained_models_reading(tmp_path, runs_dir):
    """A student's 10-step VAE draws grey noise: the step must not tell them to expect clean sprites
    (nor its curves to say the decoder learned to redraw them); a run trained long enough does."""
    from gm.runs.loop import new_session, train
    from gm.walkthrough import steps as wt_steps
    from tests.test_app import tiny_config
    session = new_session("vae", tiny_config("vae"), runs_dir=runs_dir, name="ten-steps", device="cpu", steps=10)
    assert train(session) == "finished"
    run = session.run
    for lang in LANGS:
        ctx = wt.Context(lang, {**{role: None for role in wt_steps.ROLES}, "vae": run}, lambda r: load_model(str(r.path), "cpu"),
                         functools.cache(lambda name: load_dataset(name)), cache={})
        texts = [blk.text for blk in wt.build("vae", ctx) if blk.kind in ("markdown", "note")]
        expect = i18n.t("walkthrough.vae.grid_explain", lang)
        assert expect not in texts
        note = next(text for text in texts if "ten-steps" in text)
        assert i18n.number(4000, lang, ",") in note and i18n.number(10, lang) in note

    state = run.read_state()
    run.write_state(step=wt_steps.ROLES["vae"].steps, total_steps=state["total_steps"])  # as if trained long
    texts = [blk.text for blk in wt.build("vae", ctx) if blk.kind in ("markdown", "note")]
    assert expect in texts and not any("ten-steps" in text for text in texts)


# The step, the roles it reads and the text that reads their curves as a trained model's.
READINGS = {"controlvae": (("controlvae_kl8", "controlvae_kl14"), "walkthrough.controlvae.explain"),
            "wgan": (("wgan", "wgan_gp"), "walkthrough.wgan.compare_explain"),
            "ssgan": (("ssgan",), "walkthrough.ssgan.rotation_explain")}


@pytest.mark.parametrize("step", list(READINGS))
def test_steps_comparing_trained_runs_leave_their_reading_out_for_a_short_run(step, tmp_path, shipped):
    """The shipped runs get the step's reading; the same runs cut to 10 steps (a student's first
    try) get the short-run note instead, in both languages."""
    import shutil

    from gm.runs.folder import RunFolder
    roles, reading = READINGS[step]
    shown = wt.default_runs()
    short = {}
    for role in roles:
        copy = tmp_path / role
        shutil.copytree(shown[role].path, copy)
        short[role] = RunFolder(copy)
        short[role].write_state(step=10)
    for lang in LANGS:
        for runs, is_short in ((shown, False), ({**shown, **short}, True)):
            ctx = wt.Context(lang, runs, lambda run: _trainer(str(run.path)),
                             functools.cache(lambda name: load_dataset(name)), cache={})
            texts = [blk.text for blk in wt.build(step, ctx) if blk.kind in ("markdown", "note")]
            notes = [role for role in roles for text in texts if re.search(rf"\b{role}\b", text)
                     and i18n.number(10, lang) in text
                     and i18n.number(wt.steps.ROLES[role].steps, lang, ",") in text]
            said = any(text.startswith(i18n.t(reading, lang).split("{")[0][:40]) for text in texts)
            if is_short:
                assert len(notes) == len(roles) and not said, (lang, texts)
            else:
                assert said and not notes, (lang, texts)


@pytest.mark.parametrize("lang", LANGS)
def test_the_failures_step_shows_the_playgrounds_collapse_and_its_cure(lang):
    """On the ring of 8 Gaussians, the non-saturating GAN's collapse and WGAN-GP's cure, counted."""
    ctx = wt.Context(lang, {}, lambda run: None, lambda name: None, cache=_COVERAGE)
    from gm.walkthrough.steps import _playground_collapse
    blocks = _playground_collapse(ctx)
    (ns, ns_cov), (gp, gp_cov) = (_COVERAGE["playground_pair"][k] for k in ("ns", "wgan_gp"))
    assert ns_cov.modes_covered <= 2 and gp_cov.modes_covered >= 7
    images = [blk for blk in blocks if blk.kind == "image"]
    assert [blk.key for blk in images] == ["failures.playground_ns", "failures.playground_wgan_gp"]
    assert ns.shape == gp.shape == (360, 360, 3) and not (ns == gp).all()
    text = blocks[-1].text
    assert i18n.number(gp_cov.modes_covered, lang) in text and "{" not in text


"""Exported reports show their charts whole: every tick label, axis title, chart title and legend
inside its chart's box, the x axis over every logged step, the legend clear of the axis title, one
tick-label format per axis (log axes included), at desktop, tablet and phone widths, left to right
and right to left; and the PNG charts (ZIP bundles, --static reports) cut no text either.

The browser half runs when Debian's chromium and Playwright are installed (as tests/test_browser.py)
and leaves screenshots in test-artifacts/export-layout/.
"""

from __future__ import annotations

import math
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from gm import export, i18n, plots, report
from gm.runs.folder import RunFolder
from gm.walkthrough import blocks as b
from tests.conftest import REPO, SHARED_DATA

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]
ARTIFACTS = REPO / "test-artifacts" / "export-layout"
SHIPPED = REPO / "checkpoints" / "pretrained"
WIDTHS = (1280, 800, 420)
LANGS = ("en", "fa")
VAE_STEPS, GAN_STEPS = 4000, 15000

# ---- tick labels in one format ---------------------------------------------------------------------------
_TO_SUPER = str.maketrans("-\u22120123456789", "⁻⁻⁰¹²³⁴⁵⁶⁷⁸⁹")
_FROM_SUPER = str.maketrans("⁻⁰¹²³⁴⁵⁶⁷⁸⁹", "-0123456789")
KINDS = [("separated", re.compile(r"^-?\d{1,3}(,\d{3})+(\.\d+)?$")),   # 1,500  12,000.5
         ("unseparated", re.compile(r"^-?\d{4,}(\.\d+)?$")),          # 1500   12000
         ("short", re.compile(r"^-?\d{1,3}(\.\d+)?$")),               # 0.25   500   (goes with either)
         ("power", re.compile(r"^(?:(-?\d+(?:\.\d+)?)×)?10([⁻]?[⁰¹²³⁴⁵⁶⁷⁸⁹]+)$"))]   # 10⁻⁶  2×10⁻⁷


def parse_tick(text: str) -> tuple[str, float]:
    """(kind, value) of a tick label (plotly's "<sup>" exponents read as superscripts); "other" for
    anything else, such as SI suffixes ("2k", "5μ")."""
    text = re.sub(r"<sup>(.*?)</sup>", lambda m: m.group(1).translate(_TO_SUPER), text)
    text = re.sub(r"[\s\u200e\u200f\u202a-\u202e\u2066-\u2069]", "", text).replace("\u2212", "-")
    for kind, pattern in KINDS:
        m = pattern.match(text)
        if m and kind == "power":
            return kind, float(m.group(1) or 1) * 10.0 ** int(m.group(2).translate(_FROM_SUPER))
        if m:
            value = float(text.replace(",", ""))
            return ("zero" if value == 0 else kind), value
    return "other", math.nan


def check_tick_texts(texts: list[str], where: str) -> list[float]:
    """All labels of one axis in one format ("0" goes with any), increasing: returns their values."""
    parsed = [parse_tick(t) for t in texts]
    kinds = {k for k, _ in parsed} - {"zero"}
    if kinds & {"separated", "unseparated"}:
        kinds.discard("short")
    assert "other" not in kinds and len(kinds) <= 1, f"{where}: tick labels in mixed formats {texts}"
    values = [v for _, v in parsed]
    assert all(a < b for a, b in zip(values, values[1:])), f"{where}: tick labels out of order {texts}"
    return values


# ---- runs and reports --------------------------------------------------------------------------------------
def _fake_run(runs: Path, name: str, model: str, dataset: str, rows: list[dict]) -> RunFolder:
    """A finished run as the trainer leaves it (config, state, metrics), without training it: the layout
    is the point here, and a real history of thousands of steps is what the charts were cut on."""
    cfg = {"batch_size": 64, "lr": 1e-4, "latent_dim": 10, "log_every": 10}
    run = RunFolder.create(runs, name, {"model": model, "dataset": dataset, "config": cfg,
                                        "created": "2026-01-01T00:00:00"})
    run.append_metrics(rows)
    run.write_state(status="finished", step=rows[-1]["step"], epoch=1.0, total_steps=rows[-1]["step"])
    return run


def vae_rows(steps: int = VAE_STEPS) -> list[dict]:
    rng = np.random.default_rng(0)
    rows = []
    for i, step in enumerate(range(10, steps + 1, 10)):
        f = step / steps
        kl = 8 + 10 * math.exp(-((f - 0.06) / 0.04) ** 2) + 4 * math.exp(-3 * f) + rng.normal(0, 0.3)
        rows.append({"step": step, "epoch": f * 14, "time": f * 30.0, "kl": kl, "kl_target": 8.0,
                     "beta": 1 + 10 * (1 - math.exp(-4 * f)), "p_term": 0.01, "i_term": 10 * (1 - math.exp(-4 * f)),
                     "recon": 15000 * math.exp(-30 * f) + 95 + rng.normal(0, 2),
                     "loss": 15000 * math.exp(-30 * f) + 190 + rng.normal(0, 2),
                     **({"kl_dims": [1.7, 1.4, 1.6, 0.03, 0.03, 0.04, 1.3, 0.19, 0.63, 1.8]} if i % 20 == 0 else {})})
    return rows


def gan_rows(steps: int = GAN_STEPS) -> list[dict]:
    rng = np.random.default_rng(1)
    return [{"step": s, "epoch": s / 900, "time": s / 50, "d_loss": 1.2 + rng.normal(0, 0.1),
             "g_loss": 1.0 + rng.normal(0, 0.1), "d_real": 0.6 + rng.normal(0, 0.02),
             "d_fake": 0.4 + rng.normal(0, 0.02), "d_acc": 0.7 + rng.normal(0, 0.03)}
            for s in range(10, steps + 1, 10)]


def log_report(lang: str) -> str:
    """Compare's log-y charts (overlay_figure, log_y) and Monitor's (line_figure, log_y) over the
    ranges that made plotly mix formats ("2", "5", "10" ... "2k"; "1μ" beside "0.01")."""
    steps = np.arange(10, 2001, 10)
    blocks = []
    for i, (lo, hi) in enumerate([(50, 5000), (1e-3, 0.2), (1, 1e5), (2, 8), (800, 12000), (1e-7, 1e-2)]):
        rows = [{"step": int(s), "fid": float(v)} for s, v in zip(steps, np.geomspace(hi, lo, len(steps)))]
        other = [{"step": int(s), "fid": float(v) * 1.3} for s, v in zip(steps, np.geomspace(hi, lo, len(steps)))]
        blocks.append(b.chart(f"log{i}", plots.overlay_figure([("a", rows), ("b", other)], "fid", log_y=True,
                                                              title=f"FID {lo:g} to {hi:g}", smoothing=0.0)))
    blocks.append(b.chart("loglines", plots.line_figure(vae_rows(), ["recon", "kl"], log_y=True, title="log")))
    # Linear axes of very small and very large numbers: one format too (m×10ⁿ), no "5μ" or "20M".
    for key, scale in (("tiny", 1e-6), ("huge", 3e7)):
        rows = [{"step": int(s), key: scale * (1.5 + math.sin(s / 300))} for s in steps]
        blocks.append(b.chart(key, plots.line_figure(rows, [key], title=key, smoothing=0.0)))
    return report.document("log axes", [("logs", "Log axes", blocks)], lang)


WALKTHROUGH_STEPS = ("vae", "controlvae", "gan", "wgan", "compare")


def _walkthrough(folder: Path) -> dict[str, str]:
    """The walkthrough export (gm.export.walkthrough_html) of the steps with charts: a log axis, the KL
    overlay with its set points, GAN and WGAN curves, a bar chart. The other steps add minutes of model
    work and no chart of a new kind. Both languages share the loaded models (build_walkthrough does the
    same for one)."""
    import functools

    from gm import walkthrough as wt
    from gm.data import load_dataset
    from gm.models.loading import load_model
    runs = wt.default_runs(runs_dir=folder / "none", pretrained_dir=SHIPPED)
    model = functools.cache(lambda path: load_model(path, "cpu"))
    dataset = functools.cache(load_dataset)
    out = {}
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GM_DATA_DIR", str(SHARED_DATA))
        for lang in LANGS:
            ctx = wt.Context(lang, runs, lambda run: model(str(run.path)), dataset)
            out[lang] = export.walkthrough_html([(step, wt.build(step, ctx)) for step in WALKTHROUGH_STEPS], lang)
    return out


@pytest.fixture(scope="module")
def reports(tmp_path_factory) -> dict[str, Path]:
    """The exported HTML reports, by name and language: a ControlVAE run (KL chart with its set point),
    a GAN run, charts with log axes and, with the shipped runs, the walkthrough's chart steps."""
    folder = tmp_path_factory.mktemp("export-layout")
    runs = folder / "runs"
    vae = _fake_run(runs, "kl-run", "controlvae", "dsprites", vae_rows())
    gan = _fake_run(runs, "gan-run", "gan", "mnist", gan_rows())
    texts = {f"{name}-{lang}": export.run_html(run, lang) for name, run in (("vae", vae), ("gan", gan))
             for lang in LANGS}
    texts["log-fa"] = log_report("fa")
    if (SHIPPED / "controlvae-kl14" / "config.json").is_file() and \
            (SHARED_DATA / "MNIST" / "raw" / "train-images-idx3-ubyte").is_file():
        texts.update({f"walkthrough-{lang}": html for lang, html in _walkthrough(folder).items()})
    out = {}
    for name, text in texts.items():
        out[name] = folder / f"{name}.html"
        out[name].write_text(text, encoding="utf-8")
    return out


# ---- in the browser ----------------------------------------------------------------------------------------
# Per chart: what lies outside its box, what overlaps, its axes' ranges and tick labels, its title.
MEASURE = """() => [...document.querySelectorAll('.js-plotly-plot')].map(gd => {
  const box = gd.getBoundingClientRect();
  const seen = e => { const r = e.getBoundingClientRect(); const s = getComputedStyle(e);
    return r.width > 0 && r.height > 0 && s.visibility !== 'hidden' && s.display !== 'none' ? r : null; };
  const outside = [];
  const rects = {};
  for (const sel of ['.xtick text', '.ytick text', '.g-xtitle', '.g-ytitle', '.gtitle', '.legend']) {
    rects[sel] = [];
    for (const e of gd.querySelectorAll(sel)) {
      const r = seen(e);
      if (!r) continue;
      rects[sel].push([r.left, r.top, r.right, r.bottom]);
      if (r.left < box.left - 1 || r.right > box.right + 1 || r.top < box.top - 1 || r.bottom > box.bottom + 1)
        outside.push(sel + ' "' + e.textContent.slice(0, 30) + '" by ' +
          [box.left - r.left, r.right - box.right, box.top - r.top, r.bottom - box.bottom].map(Math.round));
    }
  }
  const plot = gd.querySelector('.nsewdrag');
  const area = plot ? plot.getBoundingClientRect() : null;
  if (area && (area.left < box.left - 1 || area.right > box.right + 1)) outside.push('plot area');
  const svg = gd.querySelector('.main-svg').getBoundingClientRect();
  if (svg.width > box.width + 1) outside.push('figure ' + Math.round(svg.width) + ' px in a ' + Math.round(box.width) + ' px box');
  const axes = {};
  for (const [name, ax] of Object.entries(gd._fullLayout)) {
    if (!/^[xy]axis\\d*$/.test(name) || !ax.visible) continue;
    const letter = name[0];
    const ticks = [...gd.querySelectorAll('.' + ax._id + 'tick text')].filter(seen)
      .map(e => { const d = e.__data__ || e.parentNode.__data__, r = e.getBoundingClientRect();
                  return {text: d && typeof d.text === 'string' ? d.text : e.textContent, x: d ? d.x : null, pos: letter === 'x' ? r.left + r.width / 2 : -(r.top + r.height / 2)}; })
      .sort((a, b) => a.pos - b.pos);
    axes[name] = {type: ax.type, range: ax.range.slice(), ticks};
  }
  const lastX = Math.max(-Infinity, ...gd._fullData.filter(t => t.x && t.x.length && t.type === 'scatter')
                                     .map(t => Number(t.x[t.x.length - 1])));
  const firstX = Math.min(Infinity, ...gd._fullData.filter(t => t.x && t.x.length && t.type === 'scatter')
                                     .map(t => Number(t.x[0])));
  const title = gd.querySelector('.gtitle');
  return {id: gd.id, width: Math.round(box.width), outside, rects, axes, lastX, firstX,
          title: title ? title.textContent.replace(/[\\u200e\\u200f\\u202a-\\u202e\\u2066-\\u2069]/g, '') : ''};
})"""

SETTLED = """() => !document.querySelector('[data-fitting]') && [...document.querySelectorAll('.js-plotly-plot')]
  .every(gd => gd._fullLayout && gd.querySelector('.main-svg') && Math.abs(gd._fullLayout.width - gd.clientWidth) <= 1)"""


def _bare(text: str) -> str:
    """Text without bidi controls or spaces (a wrapped title's lines are joined without one)."""
    return re.sub(r"[\s\u200e\u200f\u202a-\u202e\u2066-\u2069]", "", text)


def _overlap(a: list[float], b: list[float]) -> float:
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    return w * h if w > 1 and h > 1 else 0.0


def check_charts(charts: list[dict], where: str, *, last_step: int | None = None) -> list[str]:
    problems = []
    for c in charts:
        at = f"{where} {c['id']} ({c['width']} px)"
        problems += [f"{at}: {o}" for o in c["outside"]]
        legend, xtitle, title = c["rects"][".legend"], c["rects"][".g-xtitle"], c["rects"][".gtitle"]
        ticks = c["rects"][".xtick text"] + c["rects"][".ytick text"]
        for name, group in (("x-axis title", xtitle), ("tick label", ticks)):
            if any(_overlap(lg, r) for lg in legend for r in group):
                problems.append(f"{at}: the legend overlaps a {name}")
        if any(_overlap(t, r) for t in title for r in legend + ticks + xtitle):
            problems.append(f"{at}: the title overlaps the legend, a tick label or the axis title")
        for name, ax in c["axes"].items():
            if ax["type"] not in ("linear", "log"):
                continue   # categories ("z0", "model a") are names, not numbers
            texts = [t["text"] for t in ax["ticks"]]
            try:
                values = check_tick_texts(texts, f"{at} {name}")
            except AssertionError as exc:
                problems.append(str(exc))
                continue
            if ax["type"] == "log":
                for t, v in zip(ax["ticks"], values):
                    if t["x"] is not None and v > 0 and abs(math.log10(v) - t["x"]) > 1e-6:
                        problems.append(f"{at} {name}: the label {t['text']!r} sits at 10^{t['x']:.3g}")
        xr = c["axes"].get("xaxis", {}).get("range")
        if xr and math.isfinite(c["lastX"]):
            if not (xr[0] <= c["firstX"] + 1e-9 and xr[1] >= c["lastX"] - 1e-9):
                problems.append(f"{at}: x range {xr} leaves out steps {c['firstX']}..{c['lastX']}")
            if last_step is not None and c["id"].startswith("chart-curve_") and c["lastX"] != last_step:
                problems.append(f"{at}: the data end at step {c['lastX']}, the run at {last_step}")
    return problems


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.skip("browser test: Debian's chromium is not installed (apt-get install chromium)")
    pytest.importorskip("playwright.sync_api", reason="browser test: playwright is not installed")
    from playwright.sync_api import sync_playwright
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield chromium
        chromium.close()


def _measure_at_widths(browser, path: Path, shot: str, full_page: bool = True) -> dict[int, list[dict]]:
    """Load the report at the widest viewport (charts are drawn on load), then narrow it (charts must
    follow their boxes): the charts' measures at each width."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
    page = browser.new_page(viewport={"width": WIDTHS[0], "height": 1000})
    page.set_default_timeout(30_000)
    fetched = []
    page.route("http*://**", lambda route: (fetched.append(route.request.url), route.abort()))
    page.goto(path.as_uri())
    out = {}
    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": 1000})
        page.wait_for_timeout(50)   # the resize observers' turn
        try:
            page.wait_for_function(SETTLED, timeout=15_000)
        except PlaywrightTimeout:
            pass   # charts that never fit their boxes: measured as they are, and reported below
        out[width] = page.evaluate(MEASURE)
        if not full_page:   # a long page: its ControlVAE charts, not all of it
            page.evaluate("document.getElementById('chart-controlvae.kl').scrollIntoView()")
        page.screenshot(path=str(ARTIFACTS / f"{shot}-{width}.png"), full_page=full_page)
        assert page.evaluate("document.documentElement.scrollWidth") <= width + 1, \
            f"{shot}: the page is wider than a {width} px screen"
    assert not fetched, fetched[:3]
    page.close()
    return out


@pytest.mark.browser
# One language per run kind in the default suite (Persian where the ticks were cut), the rest on demand.
@pytest.mark.parametrize("name", [pytest.param("vae-en", marks=pytest.mark.slow), "vae-fa", "gan-en",
                                  pytest.param("gan-fa", marks=pytest.mark.slow)])
def test_exported_run_reports_show_every_chart_whole(reports, browser, name):
    last = VAE_STEPS if name.startswith("vae") else GAN_STEPS
    lang = name.split("-")[1]
    problems = []
    for charts in _measure_at_widths(browser, reports[name], name).values():
        problems += check_charts(charts, name, last_step=last)
        ids = {c["id"] for c in charts}
        if name.startswith("vae"):
            assert {"chart-curve_kl", "chart-curve_beta", "chart-curve_recon", "chart-kl_dims"} <= ids, ids
            kl = next(c for c in charts if c["id"] == "chart-curve_kl")
            assert _bare(kl["title"]) == _bare(i18n.t("chart.kl", lang)), kl["title"]
            assert kl["rects"][".legend"] and kl["rects"][".g-xtitle"]
        else:
            assert {"chart-curve_d_loss", "chart-curve_d_real", "chart-curve_d_acc"} <= ids, ids
    assert not problems, "\n".join(problems[:25])


@pytest.mark.browser
def test_log_axes_of_a_report_label_their_ticks_one_way(reports, browser):
    problems, logs = [], 0
    for charts in _measure_at_widths(browser, reports["log-fa"], "log-fa").values():
        problems += check_charts(charts, "log-fa")
        logs += sum(ax["type"] == "log" and len(ax["ticks"]) >= 2 for c in charts for ax in c["axes"].values())
    assert logs >= 3 * 7, logs
    assert not problems, "\n".join(problems[:25])


@pytest.mark.browser
@pytest.mark.parametrize("lang", [pytest.param("en", marks=pytest.mark.slow), "fa"])
def test_the_walkthrough_export_shows_every_chart_whole(reports, browser, lang):
    if f"walkthrough-{lang}" not in reports:
        pytest.skip("the walkthrough export needs the shipped pretrained runs and the offline MNIST digits")
    problems = []
    for charts in _measure_at_widths(browser, reports[f"walkthrough-{lang}"], f"walkthrough-{lang}",
                                     full_page=False).values():
        problems += check_charts(charts, f"walkthrough-{lang}")
        by_id = {c["id"]: c for c in charts}
        assert by_id["chart-controlvae.kl"]["title"], "the KL chart has no title"
        assert by_id["chart-vae.losses"]["axes"]["yaxis"]["type"] == "log"
    assert not problems, "\n".join(problems[:25])


# ---- figure layouts (no browser) ---------------------------------------------------------------------------
def test_linear_and_log_axes_ask_for_one_tick_format():
    rows = vae_rows()
    fig = plots.line_figure(rows, ["recon"], title="recon")
    for axis in (fig.layout.xaxis, fig.layout.yaxis):
        assert axis.exponentformat == "none" and axis.separatethousands and axis.automargin
    assert plots.line_figure([{"step": 1, "gp": 2e-6}, {"step": 2, "gp": 5e-6}], ["gp"]).layout.yaxis.exponentformat == "power"
    for lo, hi in [(50, 5000), (1e-3, 0.2), (1, 1e5), (2, 8), (800, 12000), (1e-7, 1e-2), (12.6, 25.1), (0.5, 0.9)]:
        runs = [("a", [{"step": s, "fid": float(v)} for s, v in zip(range(40), np.geomspace(hi, lo, 40))])]
        for fig in (plots.overlay_figure(runs, "fid", log_y=True, smoothing=0.0),
                    plots.line_figure(runs[0][1], ["fid"], log_y=True, smoothing=0.0)):
            ya = fig.layout.yaxis
            assert ya.type == "log" and ya.tickmode == "array", (lo, hi)
            values = check_tick_texts(list(ya.ticktext), f"log axis {lo}..{hi}")
            assert 3 <= len(values) <= 8 or math.log10(hi / lo) >= 2.5, (lo, hi, ya.ticktext)
            assert np.allclose(values, ya.tickvals, rtol=1e-9)
            assert all(ya.range[0] - 1e-9 <= math.log10(v) <= ya.range[1] + 1e-9 for v in ya.tickvals)


def test_titles_and_legends_take_their_own_room():
    fig = plots.line_figure(vae_rows(), ["kl"], title="KL", reference="kl_target")
    assert fig.layout.title.automargin and fig.layout.title.text == "KL"
    # The legend sits in the figure's bottom margin (not at a fraction of the plot height, where a
    # short chart put it on the x-axis title); the axes make room for their labels.
    assert fig.layout.legend.yref == "container" and fig.layout.legend.yanchor == "bottom"
    assert fig.layout.xaxis.automargin and fig.layout.yaxis.automargin


def test_charts_are_drawn_after_the_page_is_laid_out():
    """A chart drawn while the page was parsed took a half-built row's width and kept it (the KL chart
    showed 1,300 of 4,000 steps); charts are now drawn from JSON once the page is laid out, and redrawn
    when their box changes; plotly's text measurer stays left to right on a right-to-left page."""
    fig = plots.line_figure(vae_rows(), ["kl"], title="KL")
    html = report.document("t", [("s", "S", [b.chart("kl", fig), b.chart("kl2", fig)])], "fa")
    body = html[html.index("<body"):]
    assert 'id="chart-kl"' in body and 'data-plotly-for="chart-kl"' in body
    assert body.index("ResizeObserver") > body.rindex('data-plotly-for="chart-kl2"')   # drawn after both
    assert "#js-plotly-tester { direction: ltr; }" in html


# ---- PNG charts --------------------------------------------------------------------------------------------
def _drawn(fig, monkeypatch) -> object:
    """The matplotlib figure figure_png draws for `fig` (whatever its internals), after drawing it."""
    from matplotlib.figure import Figure

    from gm.figures import figure_png
    seen = []
    original = Figure.savefig

    def keep(self, *args, **kwargs):
        seen.append(self)
        return original(self, *args, **kwargs)
    monkeypatch.setattr(Figure, "savefig", keep)
    assert figure_png(fig)[:8] == b"\x89PNG\r\n\x1a\n"
    monkeypatch.undo()
    return seen[-1]


def _png_cases(lang: str) -> list[tuple[str, object]]:
    from gm.walkthrough.demos import pixel_shuffle_figure

    def t(key: str) -> str:
        return i18n.t(key, lang)
    rows = vae_rows()
    long_title = t("walkthrough.controlvae.kl_title") + " — " + t("chart.kl_dims") + " " + t("chart.recon")
    return [
        ("kl", plots.line_figure(rows, ["kl"], title=t("chart.kl"), reference="kl_target",
                                 names=[t("metric.kl")], reference_name=t("metric.set_point"),
                                 x_title=t("monitor.axis_step"))),
        ("recon", plots.line_figure(rows, ["recon", "loss"], title=long_title, x_title=t("monitor.axis_step"))),
        ("log", plots.line_figure(rows, ["recon", "kl"], log_y=True, title=t("chart.recon"))),
        ("gan", plots.overlay_figure([("a", gan_rows()), ("b", gan_rows()[:700])], "d_loss", title=t("chart.losses"),
                                     references=[("1.2", 1.2)], x_title=t("monitor.axis_step"))),
        ("tiny", plots.line_figure([{"step": s, "gp": 1e-6 * (1 + s % 7)} for s in range(0, 30000, 100)], ["gp"],
                                   title="gp")),
        ("kl_dims", plots.kl_dims_figure([1.7, 1.4, 0.03, 1.8, 0.6] * 4, lang=lang)),
        ("bar", plots.bar_figure([f"model {i}" for i in range(6)], [12000, 40, 5, 0.5, 3000, 77], long_title)),
        ("demo", pixel_shuffle_figure(2, 1, 2, input_title=t("walkthrough.gan.demo_input"),
                                      output_title=t("walkthrough.gan.demo_output"))),
    ]


@pytest.mark.parametrize("lang", LANGS)
def test_png_charts_cut_no_text(lang, monkeypatch):
    from matplotlib.text import Text
    problems = []
    for name, fig in _png_cases(lang):
        canvas = _drawn(fig, monkeypatch)
        if not hasattr(canvas.canvas, "get_renderer"):
            from matplotlib.backends.backend_agg import FigureCanvasAgg
            FigureCanvasAgg(canvas)
        renderer = canvas.canvas.get_renderer()
        bounds = canvas.bbox
        # Tick labels past the view limits exist but are not drawn.
        undrawn = {id(label) for ax in canvas.axes for axis in (ax.xaxis, ax.yaxis)
                   for tick in axis.get_major_ticks() + axis.get_minor_ticks()
                   if not min(axis.get_view_interval()) - 1e-9 <= tick.get_loc() <= max(axis.get_view_interval()) + 1e-9
                   for label in (tick.label1, tick.label2)}
        texts = [a for a in canvas.findobj(Text) if a.get_visible() and a.get_text().strip() and id(a) not in undrawn]
        assert texts, name
        for text in texts:
            box = text.get_window_extent(renderer)
            if box.x0 < bounds.x0 - 0.5 or box.x1 > bounds.x1 + 0.5 or box.y0 < bounds.y0 - 0.5 or box.y1 > bounds.y1 + 0.5:
                problems.append(f"{lang} {name}: {text.get_text()[:30]!r} at {box.bounds} leaves {bounds.bounds}")
        title = fig.layout.title.text
        if title:   # the title is drawn above the plots, whole (wrapped to the picture's width when long)
            top = max(ax.get_window_extent(renderer).y1 for ax in canvas.axes)
            above = [t for t in canvas.texts if t.get_window_extent(renderer).y0 >= top]
            assert above, (name, title)
            if lang == "en":
                drawn = " ".join(t.get_text() for t in above).split()
                assert drawn == title.split(), (name, drawn)
        for ax in canvas.axes:
            lines = [ln for ln in ax.get_lines() if len(ln.get_xdata()) > 1]
            if lines and name in ("kl", "recon", "gan", "log"):
                last = max(float(np.max(ln.get_xdata())) for ln in lines)
                assert ax.get_xlim()[1] >= last and last in (VAE_STEPS, GAN_STEPS), (name, ax.get_xlim())
            labels = [t.get_text() for t in ax.get_yticklabels() if t.get_visible() and t.get_text()]
            lo, hi = sorted(ax.get_ylim())
            shown = [t.get_text() for t, v in zip(ax.get_yticklabels(), ax.get_yticks()) if lo <= v <= hi and t.get_text()]
            if labels and ax.get_yscale() == "log" or name in ("tiny", "recon", "bar"):
                check_tick_texts(shown, f"{lang} {name} png y axis")
    assert not problems, "\n".join(problems)

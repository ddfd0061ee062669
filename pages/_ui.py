"""Streamlit helpers shared by the pages: the job manager, the run picker, images, errors.

The library (gm/) never imports Streamlit; everything UI-specific lives here and in the page scripts.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import streamlit as st

import gm
from gm import i18n
from gm.demo import DemoLimits, DemoPolicy, demo_enabled
from gm.errors import GMError
from gm.images import to_png_bytes
from gm.runs.folder import RunFolder, default_runs_dir, list_runs
from gm.runs.jobs import JobManager

POLL_SECONDS = 1.5


PAGES = [
    ("pages/home.py", "home", ":material/home:"),
    ("pages/walkthrough.py", "walkthrough", ":material/school:"),
    ("pages/train.py", "train", ":material/model_training:"),
    ("pages/monitor.py", "monitor", ":material/monitoring:"),
    ("pages/explore.py", "explore", ":material/tune:"),
    ("pages/evaluate.py", "evaluate", ":material/analytics:"),
    ("pages/compare.py", "compare", ":material/compare_arrows:"),
    ("pages/playground.py", "playground", ":material/scatter_plot:"),
]


# ---- language -------------------------------------------------------------------------------------
def lang() -> str:
    """The interface language: the sidebar switch (session state), else ?lang= in the URL, else English."""
    chosen = st.session_state.get("lang") or st.query_params.get("lang") or i18n.DEFAULT_LANGUAGE
    return i18n.check_language(chosen)


def t(key: str, **values: Any) -> str:
    """A catalog string (gm/i18n/<lang>.toml) in the current language, placeholders filled."""
    return i18n.t(key, lang(), **values)


def translator() -> Callable[..., str]:
    """`t` bound to this script run's language. Pages use it: widget format_funcs may be called
    after the run (AppTest does), when session state is out of reach."""
    language = lang()

    def bound(key: str, **values: Any) -> str:
        return i18n.t(key, language, **values)
    return bound


def domain_namer() -> Callable[[str], str]:
    """A function naming a translation domain ("square") in this script run's language (the
    catalogs' [domain] table), or as the dataset names it when the catalog has no entry."""
    language = lang()

    from gm.translate_views import domain_name

    def name(domain: str) -> str:
        return domain_name(domain, language)
    return name


def n(value: float | int, spec: str = "") -> str:
    """A number in the current language's digits (۱۲٫۵ in Persian)."""
    return i18n.number(value, lang(), spec)


# Right to left for Persian text; maths, code, charts, tables and sliders stay left to right.
_RTL_CSS = """
[data-testid="stMain"] .stMarkdown, [data-testid="stMain"] [data-testid="stHeading"],
[data-testid="stMain"] [data-testid="stCaptionContainer"], [data-testid="stAlert"],
[data-testid="stWidgetLabel"], [data-testid="stExpander"] summary, [data-testid="stMetricLabel"],
[data-testid="stSidebar"] .stMarkdown, [data-testid="stSidebarNav"], [data-testid="stSidebarNavItems"],
[data-testid="stImageCaption"], [data-testid="stCaption"], .stTabs [role="tab"], [data-testid="stToast"],
[data-testid="stMarkdownContainer"] {
  direction: rtl; text-align: right; font-family: 'Vazirmatn', Tahoma, 'Noto Naskh Arabic', sans-serif;
}
.katex, .katex-display, code, pre, [data-testid="stCode"], .js-plotly-plot, [data-testid="stDataFrame"],
[data-testid="stSlider"], [data-testid="stLatex"] {
  direction: ltr; unicode-bidi: isolate;
}
[data-testid="stMarkdownContainer"] li { text-align: right; }
[data-baseweb="select"], [data-baseweb="popover"] li { direction: rtl; text-align: right; }
[data-testid="stSelectbox"] input, [data-testid="stMultiSelect"] input, [role="listbox"] [role="option"],
[data-testid="stPageLink-NavLink"] {
  direction: rtl; text-align: right;
}
/* An alert or a toast may hold an English message (a library error, a path): each of its paragraphs
   takes its direction from its first strong letter. Persian strings that begin with a Latin word
   carry a right-to-left mark for this (gm.i18n.t), and Latin values inside them are isolated. */
[data-testid="stAlert"] [data-testid="stMarkdownContainer"] :is(p, li, h1, h2, h3, h4),
[data-testid="stToast"] [data-testid="stMarkdownContainer"] :is(p, li) {
  unicode-bidi: plaintext; text-align: start;
}
/* Lists are numbered "1." in the catalogs (Markdown's syntax) and drawn with Persian digits, their
   markers on the right. */
[data-testid="stMarkdownContainer"] ol { list-style-type: persian; }
[data-testid="stMarkdownContainer"] :is(ol, ul) { padding-left: 0; padding-right: 0; margin-left: 0;
  margin-right: 0; padding-inline-start: 1.6em; }
/* plotly measures tick labels in a hidden SVG under <body>: right to left, it measured them
   mirrored and cut the first digits ("15" drawn as ".5") */
#js-plotly-tester { direction: ltr; }
"""


def localized(widget: Callable[..., Any], label: str, options: list[Any], *, key: str, where: Any = None,
              on_change: Callable[[], None] | None = None, **kwargs: Any) -> Any:
    """A choice widget (selectbox, radio, ...) whose option labels are translated, keeping its value
    in session_state[key] across language switches.

    Streamlit keeps a keyed widget's displayed labels when only format_func changes, so a language
    switch would leave the old language on screen. The widget is therefore keyed per language and
    mirrors the language-independent value held in `key`. `on_change` runs after `key` is updated.
    """
    wkey = f"{key}@{lang()}"
    if key in st.session_state and st.session_state[key] in options:
        st.session_state[wkey] = st.session_state[key]
    elif st.session_state.get(wkey) not in options:
        st.session_state.pop(wkey, None)

    def remember() -> None:
        st.session_state[key] = st.session_state[wkey]
        if on_change is not None:   # the caller's callback sees the new value under `key`
            on_change()
    value = getattr(where or st, widget.__name__)(label, options, key=wkey, on_change=remember, **kwargs)
    st.session_state[key] = value
    return value


def table_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows for st.dataframe: in a right-to-left language the first column goes on the right (the
    grid itself always lays columns out left to right)."""
    if not i18n.is_rtl(lang()):
        return rows
    return [dict(reversed(list(row.items()))) for row in rows]


_CSS_COMMENT = re.compile(r"/\*.*?\*/", re.S)


def apply_language_style() -> None:
    """Pixel-crisp images always; for a right-to-left language also its direction and font."""
    # Sample grids are tiny (28x28, 64x64 per image): scale them up with hard pixel edges, never blur.
    css = "img { image-rendering: pixelated; }"
    if i18n.is_rtl(lang()):
        css = i18n.font_face_css(lang()) + _RTL_CSS + css
    # st.html drops a <style> whose CSS holds comments (the whole sheet is lost): they stay here only.
    st.html(f"<style>{_CSS_COMMENT.sub('', css)}</style>")


def language_switch() -> None:
    options = list(i18n.LANGUAGES)
    if st.session_state.get("lang") not in options:
        st.session_state["lang"] = lang()
    st.segmented_control("Language · زبان", options, key="lang", format_func=i18n.LANGUAGES.get,
                         selection_mode="single", on_change=_remember_language)


def _remember_language() -> None:
    # Keep the choice in the URL too, so a shared or reloaded link opens in the same language.
    if st.session_state.get("lang"):
        st.query_params["lang"] = st.session_state["lang"]
    else:  # a second click on the selected option clears a segmented control: keep the language
        st.session_state["lang"] = st.query_params.get("lang") or i18n.DEFAULT_LANGUAGE


def run_app() -> None:
    """The whole app: page config, navigation over pages/, the shared sidebar, the chosen page."""
    st.set_page_config(page_title="gm — generative models lab", page_icon="🧪", layout="wide")
    apply_language_style()
    try:
        visit()
    except GMError as exc:  # e.g. a malformed GM_DEMO_* variable: the operator's one sentence
        st.error(str(exc))
        st.stop()
    pages = [st.Page(path, title=t(f"nav.{name}"), icon=icon, default=i == 0, url_path=name if i else None)
             for i, (path, name, icon) in enumerate(PAGES)]
    # The menu is drawn by page_menu(), not by st.navigation: Streamlit's own menu is switched off
    # (client.showSidebarNavigation in .streamlit/config.toml), because before the first
    # st.navigation call of a server it listed the raw files of pages/ (_forms, _ui, ...) for a
    # moment on the first load.
    navigation = st.navigation(pages, position="hidden")
    page_menu(pages)
    sidebar()
    navigation.run()


def page_menu(pages: list) -> None:
    """The app's pages as links at the top of the sidebar (the current one highlighted)."""
    with st.sidebar.container(key="page_menu"):
        for page in pages:
            st.page_link(page, label=page.title, icon=page.icon)
        st.divider()


def entered_through_app() -> None:
    """Make a page opened by URL (e.g. /monitor as a first visit) run inside app.py's navigation.

    Streamlit treats a `pages/` folder beside the entry script as a legacy multipage app until some
    session calls st.navigation, and runs pages/monitor.py alone for a first visit to /monitor. The
    top level (pages/) is fixed, so each page calls this first: in that case it runs the app's
    navigation in this same script run (keeping widget events) and stops the stray page.
    """
    try:
        from streamlit.runtime.pages_manager import PagesManager
    except ImportError:  # a future Streamlit without the legacy mode
        return
    if PagesManager.uses_pages_directory:
        run_app()  # st.navigation switches the process out of legacy mode and runs this page
        st.stop()


@st.cache_resource(show_spinner=False)
def manager() -> JobManager:
    """One job manager per server process, shared by every browser tab (thread-safe). In the hosted
    demo it trains GM_DEMO_MAX_RUNNING jobs at once; pages reach it through policy()."""
    limits = demo_limits()
    jobs = JobManager(max_per_device=limits.max_running if limits else 1)
    if os.environ.get("GM_WARM_UP", "1") != "0":   # the test suite turns it off (tests/conftest.py)
        import threading

        def warm() -> None:
            try:   # a first page visit paid these once per process: plotly builds its validators on
                # its first figure (~1.5 s), tables import pandas (~0.7 s), smoothing scipy.signal (~0.6 s)
                import pandas  # noqa: F401
                import scipy.signal  # noqa: F401

                from gm import plots
                plots.line_figure([{"step": 1, "loss": 1.0}, {"step": 2, "loss": 0.5}], ("loss",),
                                  smoothing=0.5).to_json()
            except Exception:
                pass
            try:
                jobs.warm_up()
            except Exception:  # e.g. no data folder: the first Start then says so itself
                pass
        threading.Thread(target=warm, name="gm-warm-up", daemon=True).start()
    return jobs


def _session_connected(session_id: str) -> bool:
    """Whether a browser session is still connected to this server (thread-safe in Streamlit)."""
    from streamlit.runtime import Runtime
    return Runtime.exists() and Runtime.instance().is_active_session(session_id)


def this_session_connected() -> Callable[[], bool]:
    """A check, callable from any thread, of whether the browser session running this script is
    still connected; always True where there is no server (AppTest, bare mode)."""
    from streamlit.runtime import Runtime
    from streamlit.runtime.scriptrunner import get_script_run_ctx
    ctx = get_script_run_ctx()
    if ctx is None or not Runtime.exists():
        return lambda: True
    session_id = ctx.session_id
    return lambda: _session_connected(session_id)


@st.cache_resource(show_spinner=False)
def policy() -> DemoPolicy:
    """Who owns which job and what a visitor may start (gm.demo): one per server process. Outside
    the hosted demo it passes everything through (every tab sees and drives every job)."""
    rules = DemoPolicy(manager(), demo_limits(), connected=_session_connected)
    rules.start_reaper()
    return rules


def owner() -> str:
    """This browser session's visitor token: random, kept in its session state, never shown."""
    token = st.session_state.get("demo.owner")
    if not token:
        token = st.session_state["demo.owner"] = DemoPolicy.new_owner()
    return token


def visit() -> None:
    """Mark this visitor as present and stop the jobs of visitors gone too long (every page run
    and every poll calls this; the policy's reaper thread does the same when nobody visits)."""
    from streamlit.runtime.scriptrunner import get_script_run_ctx
    ctx = get_script_run_ctx()
    rules = policy()
    rules.touch(owner(), ctx.session_id if ctx is not None else None)
    rules.reap()


def jobs() -> list:
    """The jobs this session may see: every job, or in the hosted demo only its own."""
    return policy().jobs(owner())


def find_job(run: RunFolder):
    return policy().find(owner(), run.path)


@st.cache_resource(show_spinner=False)
def tasks():
    """Background evaluations (progress, cancel), shared by every tab like the job manager."""
    from gm.tasks import TaskRunner
    return TaskRunner()


def runs_dir() -> Path:
    return default_runs_dir()


DEMO_MAX_FID_N = DemoLimits().max_fid_n


def demo_mode() -> bool:
    """GM_DEMO=1 (the hosted demo's Docker image): visitors own their jobs, caps, no Hub push."""
    return demo_enabled()


def demo_limits() -> DemoLimits | None:
    """The hosted demo's caps (GM_DEMO_* variables), or None outside demo mode."""
    return DemoLimits.from_env() if demo_enabled() else None


def fid_sizes() -> list[int]:
    sizes = [500, 1000, 2000, 5000, 10000]
    limits = demo_limits()
    return [n for n in sizes if n <= limits.max_fid_n] if limits else sizes


def pretrained_runs() -> list[RunFolder]:
    from gm.pretrained import pretrained_runs as shipped
    return shipped()


def is_pretrained(run: RunFolder) -> bool:
    from gm.pretrained import default_dir
    try:
        return run.path.resolve().parent == default_dir().resolve()
    except OSError:
        return False


def visible(run: RunFolder) -> bool:
    """Pretrained runs always; local runs outside the hosted demo, or there this visitor's own."""
    return is_pretrained(run) or policy().may_see(owner(), run.path)


def local_runs() -> list[RunFolder]:
    """The runs folder's runs this session may see, oldest first."""
    rules, me = policy(), owner()
    return [r for r in list_runs(runs_dir()) if rules.may_see(me, r.path)]


def all_runs() -> list[RunFolder]:
    """The shipped pretrained runs first, then the local runs (so the newest local run is the default)."""
    return pretrained_runs() + local_runs()


def task_key(run: RunFolder) -> str:
    """The background-evaluation key of a run: its folder, or in the hosted demo the visitor's
    token too, so a visitor never sees (or cancels) another one's evaluation."""
    return f"{owner()}|{run.path}" if demo_mode() else str(run.path)


def start_tasks(batch: list[tuple[str, str, Callable]]) -> None:
    """Start background evaluations, each (key, label, fn). In the hosted demo a visitor runs one
    batch at a time (the box is shared): while an earlier one is still going, a new one is refused."""
    runner = tasks()
    if demo_mode():
        keys = [key for key, _, _ in batch]
        mine = [k for k in st.session_state.get("demo.tasks", []) if runner.get(k) and runner.get(k).active]
        if any(k not in keys for k in mine):
            raise GMError(t("demo.one_evaluation"))
        st.session_state["demo.tasks"] = keys
    for key, label, fn in batch:
        runner.start(key, label, fn)


def records_evaluations(run: RunFolder) -> bool:
    """Whether an evaluation is appended to the run's eval.jsonl: not for the shipped pretrained
    runs in the hosted demo (they are shared and read-only there)."""
    return not (demo_mode() and is_pretrained(run))


def run_status_label(run: RunFolder) -> str:
    """The run's status in words, or "damaged: <file> <what>" when its config.json or state.json is
    damaged (gm.runs.schema): listings show that run so and keep working for the others."""
    damage = run.damage()
    if damage is not None:
        return f"{t('app.damaged')}: {damage.reason}"
    return t(f"status.{run.read_state()['status']}")


def run_label(run: RunFolder) -> str:
    status = run_status_label(run)
    if run.damage() is not None:
        return f"{run.name} · {status}"
    if is_pretrained(run):
        return f"{t('app.pretrained')} · {run.name}"
    return f"{run.name} · {run.read_config()['model']} · {status}"


def sidebar() -> None:
    """The language switch and the run picker, shared by every page (key `run` holds the chosen run
    folder's path, key `lang` the language)."""
    runs = all_runs()
    with st.sidebar:
        language_switch()
        st.markdown(f"### {t('app.run')}")
        if not runs:
            st.caption(t("app.no_runs"))
            st.session_state.pop("run", None)
            return
        paths = [str(r.path) for r in runs]
        pending = st.session_state.pop("run_pending", None)  # set before a rerun (e.g. a Hub pull)
        if pending in paths:
            st.session_state["run"] = pending
        damage = {str(r.path): r.damage() for r in runs}
        if st.session_state.get("run") not in paths:  # the newest run that is neither damaged nor a failure example
            from gm.pretrained import is_failure_example
            fine = [p for p, r in zip(paths, runs) if damage[p] is None and not is_failure_example(r)]
            st.session_state["run"] = fine[-1] if fine else paths[-1]
        labels = {str(r.path): run_label(r) for r in runs}
        chosen = localized(st.selectbox, t("app.current_run"), paths, key="run",
                           format_func=lambda p: labels.get(p, p), label_visibility="collapsed")
        if damage.get(chosen) is not None:  # pages then show no run (current_run() is None)
            st.warning(str(damage[chosen]))


def current_run() -> RunFolder | None:
    path = st.session_state.get("run")
    if not path or not (Path(path) / "config.json").is_file():
        return None
    run = RunFolder(path)
    if run.damage() is not None:  # the sidebar says why; every page then shows its "no run" state
        return None
    return run if visible(run) else None


def select_run(path: str | Path) -> None:
    """Make `path` the current run from the next script run on (callers rerun or switch page): the
    sidebar's picker owns the key `run` once drawn, so the choice waits in `run_pending`."""
    st.session_state["run_pending"] = str(path)


def weights_only(run: RunFolder) -> bool:
    """Pretrained and Hub-pulled runs: weights without optimizer state, so they cannot be resumed.
    A damaged run (gm.runs.schema) cannot be resumed either and counts as such, so lists of
    resumable runs never read its state."""
    if run.damage() is not None:
        return True
    return bool(run.read_config().get("weights_only"))


def is_active(run: RunFolder) -> bool:
    job = find_job(run)
    return job is not None and job.active


def show_image(arr: np.ndarray, caption: str | None = None, scale: int = 4, width: Any = None) -> None:
    """Crisp pixels: upscale with nearest neighbour ourselves, never let the browser blur them."""
    st.image(to_png_bytes(arr, scale), caption=caption, width=width or "content", output_format="PNG")


@contextlib.contextmanager
def user_errors():
    """Show a GMError as st.error (what to do), never a traceback."""
    try:
        yield
    except GMError as exc:
        st.error(str(exc))


def dataset(name: str, data_dir: str | None = None):
    """A dataset, loaded once per server process and shared with the jobs (JobManager.dataset):
    Explore, the walkthrough and training read the same copy, which the server's warm-up loads at
    start (dSprites renders for ~0.7 s and holds 75 MB)."""
    return manager().dataset(name, data_dir)


@st.cache_resource(show_spinner=False, max_entries=4)
def domain_datasets(name: str, data_dir: str | None, split: str) -> dict:
    """One dataset per domain of `split` (gm.data.split_domains), cut from the shared dataset."""
    from gm.data import split_domains
    return split_domains(dataset(name, data_dir), split)


@st.cache_resource(show_spinner=False, max_entries=8)
def _inference(path: str, checkpoint: str, device: str):
    return gm.load_model(path, device, checkpoint=Path(path) / "checkpoints" / checkpoint)


def capabilities(cfg: dict[str, Any]) -> frozenset[str]:
    """What the run's model declares it can do ("samples", "conditional", "encodes", "translates");
    empty for a model this gm does not know, so every view says "not available" instead of failing."""
    from gm.registry import MODELS
    spec = MODELS.get(str(cfg.get("model")))
    return spec.capabilities if spec is not None else frozenset()


def checkpoint_name(run: RunFolder) -> str | None:
    """The name of the run's latest checkpoint (what a cached view of its model is keyed by)."""
    from gm.runs.checkpoint import latest_checkpoint
    found = latest_checkpoint(run.checkpoints_dir)
    return found[1].name if found is not None else None


def inference_model(run: RunFolder):
    """The run's model with its latest checkpoint, on the CPU (cached per checkpoint)."""
    from gm.runs.checkpoint import latest_checkpoint
    found = latest_checkpoint(run.checkpoints_dir)
    if found is None:
        raise GMError(f"Run '{run.name}' has no checkpoint yet; wait for the first one or train it.")
    return _inference(str(run.path), found[1].name, "cpu")


def job_buttons(job, pause_col, stop_col, where: str, step_col: Any = None) -> None:
    """Pause / Continue and Stop for a job the visitor may control (Train's job list and Monitor),
    through the policy: in the hosted demo another visitor's job gets none. `where` keeps the
    buttons' keys apart between pages. With `step_col`, a paused one-process job also gets Step
    (one training step, then paused again: GAN Lab's step mode)."""
    t = translator()
    rules, me = policy(), owner()
    if not rules.may_control(me, job.key):
        return
    with user_errors():
        if job.status == "running" and pause_col.button(t("train.pause"), key=f"{where}-pause-{job.key}"):
            rules.pause(me, job.key)
        if job.status == "paused" and pause_col.button(t("train.continue"), key=f"{where}-cont-{job.key}"):
            rules.unpause(me, job.key)
        if (step_col is not None and job.status == "paused" and job.processes == 1
                and step_col.button(t("monitor.step"), key=f"{where}-step-{job.key}", help=t("monitor.step_help"))):
            before = job.step
            rules.step(me, job.key)
            # Show the step's result in the rerun this click causes: its preview is drawn after it.
            _wait_briefly(lambda: (p := rules.preview(me, job.key)) is not None and p.step > before)
        if job.active and stop_col.button(t("train.stop"), key=f"{where}-stop-{job.key}"):
            rules.stop(me, job.key)


def _wait_briefly(done: Callable[[], bool], seconds: float = 2.0) -> None:
    """Wait (at most `seconds`) for something a click set off, so the rerun it causes shows it."""
    import time
    deadline = time.monotonic() + seconds
    while not done() and time.monotonic() < deadline:
        time.sleep(0.02)


def metric_name(key: str) -> str:
    """A logged metric's name in the catalogs ([metric]), else the key as logged."""
    text = translator()(f"metric.{key}")
    return key if text == f"metric.{key}" else text

"""Streamlit helpers shared by the pages: the job manager, the run picker, images, errors.

The library (gm/) never imports Streamlit; everything UI-specific lives here and in the page scripts.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import streamlit as st

import gm
from gm import i18n
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
"""


def localized(widget: Callable[..., Any], label: str, options: list[Any], *, key: str, where: Any = None,
              **kwargs: Any) -> Any:
    """A choice widget (selectbox, radio, ...) whose option labels are translated, keeping its value
    in session_state[key] across language switches.

    Streamlit keeps a keyed widget's displayed labels when only format_func changes, so a language
    switch would leave the old language on screen. The widget is therefore keyed per language and
    mirrors the language-independent value held in `key`.
    """
    wkey = f"{key}@{lang()}"
    if key in st.session_state and st.session_state[key] in options:
        st.session_state[wkey] = st.session_state[key]
    elif st.session_state.get(wkey) not in options:
        st.session_state.pop(wkey, None)

    def remember() -> None:
        st.session_state[key] = st.session_state[wkey]
    value = getattr(where or st, widget.__name__)(label, options, key=wkey, on_change=remember, **kwargs)
    st.session_state[key] = value
    return value


def table_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows for st.dataframe: in a right-to-left language the first column goes on the right (the
    grid itself always lays columns out left to right)."""
    if not i18n.is_rtl(lang()):
        return rows
    return [dict(reversed(list(row.items()))) for row in rows]


def apply_language_style() -> None:
    """Pixel-crisp images always; for a right-to-left language also its direction and font."""
    # Sample grids are tiny (28x28, 64x64 per image): scale them up with hard pixel edges, never blur.
    css = "img { image-rendering: pixelated; }"
    if i18n.is_rtl(lang()):
        css = i18n.font_face_css(lang()) + _RTL_CSS + css
    st.html(f"<style>{css}</style>")


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
    navigation = st.navigation([st.Page(path, title=t(f"nav.{name}"), icon=icon, default=i == 0,
                                        url_path=name if i else None)
                                for i, (path, name, icon) in enumerate(PAGES)])
    sidebar()
    navigation.run()


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
    """One job manager per server process, shared by every browser tab (thread-safe)."""
    return JobManager(max_per_device=1)


@st.cache_resource(show_spinner=False)
def tasks():
    """Background evaluations (progress, cancel), shared by every tab like the job manager."""
    from gm.tasks import TaskRunner
    return TaskRunner()


def runs_dir() -> Path:
    return default_runs_dir()


DEMO_MAX_FID_N = 2000


def demo_mode() -> bool:
    """GM_DEMO=1 (the hosted demo's Docker image): CPU-safe limits."""
    import os
    return os.environ.get("GM_DEMO", "").strip().lower() in ("1", "true", "yes", "on")


def fid_sizes() -> list[int]:
    sizes = [500, 1000, 2000, 5000, 10000]
    return [n for n in sizes if n <= DEMO_MAX_FID_N] if demo_mode() else sizes


def pretrained_runs() -> list[RunFolder]:
    from gm.pretrained import pretrained_runs as shipped
    return shipped()


def is_pretrained(run: RunFolder) -> bool:
    from gm.pretrained import default_dir
    try:
        return run.path.resolve().parent == default_dir().resolve()
    except OSError:
        return False


def all_runs() -> list[RunFolder]:
    """The shipped pretrained runs first, then the local runs (so the newest local run is the default)."""
    return pretrained_runs() + list_runs(runs_dir())


def run_label(run: RunFolder) -> str:
    try:
        cfg = run.read_config()
    except GMError:
        return f"{run.name} ({t('app.damaged')})"
    state = run.read_state()
    if is_pretrained(run):
        return f"{t('app.pretrained')} · {run.name}"
    return f"{run.name} · {cfg.get('model', '?')} · {t('status.' + str(state.get('status', '?')))}"


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
        if st.session_state.get("run") not in paths:
            st.session_state["run"] = paths[-1]
        labels = {str(r.path): run_label(r) for r in runs}
        localized(st.selectbox, t("app.current_run"), paths, key="run", format_func=lambda p: labels.get(p, p),
                  label_visibility="collapsed")


def current_run() -> RunFolder | None:
    path = st.session_state.get("run")
    if not path or not (Path(path) / "config.json").is_file():
        return None
    return RunFolder(path)


def select_run(path: str | Path) -> None:
    """Make `path` the current run from the next script run on (callers rerun or switch page): the
    sidebar's picker owns the key `run` once drawn, so the choice waits in `run_pending`."""
    st.session_state["run_pending"] = str(path)


def weights_only(run: RunFolder) -> bool:
    """Pretrained and Hub-pulled runs: weights without optimizer state, so they cannot be resumed."""
    try:
        return bool(run.read_config().get("weights_only"))
    except GMError:
        return False


def is_active(run: RunFolder) -> bool:
    job = manager().find(run.path)
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


@st.cache_resource(show_spinner=False, max_entries=8)
def _inference(path: str, checkpoint: str, device: str):
    return gm.load_model(path, device, checkpoint=Path(path) / "checkpoints" / checkpoint)


def capabilities(cfg: dict[str, Any]) -> frozenset[str]:
    """What the run's model declares it can do ("samples", "conditional", "encodes", "translates");
    empty for a model this gm does not know, so every view says "not available" instead of failing."""
    from gm.registry import MODELS
    spec = MODELS.get(str(cfg.get("model")))
    return spec.capabilities if spec is not None else frozenset()


def inference_model(run: RunFolder):
    """The run's model with its latest checkpoint, on the CPU (cached per checkpoint)."""
    from gm.runs.checkpoint import latest_checkpoint
    found = latest_checkpoint(run.checkpoints_dir)
    if found is None:
        raise GMError(f"Run '{run.name}' has no checkpoint yet; wait for the first one or train it.")
    return _inference(str(run.path), found[1].name, "cpu")

"""Streamlit helpers shared by the pages: the job manager, the run picker, images, errors.

The library (gm/) never imports Streamlit; everything UI-specific lives here and in the page scripts.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import numpy as np
import streamlit as st

from gm.errors import GMError
from gm.images import to_png_bytes
from gm.runs.folder import RunFolder, default_runs_dir, list_runs
from gm.runs.jobs import JobManager

POLL_SECONDS = 1.5


PAGES = [
    ("pages/home.py", "Home", ":material/home:"),
    ("pages/train.py", "Train", ":material/model_training:"),
    ("pages/monitor.py", "Monitor", ":material/monitoring:"),
    ("pages/explore.py", "Explore", ":material/tune:"),
    ("pages/evaluate.py", "Evaluate", ":material/analytics:"),
    ("pages/compare.py", "Compare", ":material/compare_arrows:"),
]


def run_app() -> None:
    """The whole app: page config, navigation over pages/, the shared sidebar, the chosen page."""
    st.set_page_config(page_title="gm — generative models lab", page_icon="🧪", layout="wide")
    # Sample grids are tiny (28x28, 64x64 per image): scale them up with hard pixel edges, never blur.
    st.html("<style>img { image-rendering: pixelated; }</style>")
    navigation = st.navigation([st.Page(path, title=title, icon=icon, default=i == 0)
                                for i, (path, title, icon) in enumerate(PAGES)])
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
        return f"{run.name} (damaged)"
    state = run.read_state()
    if is_pretrained(run):
        return f"pretrained · {cfg.get('model', '?')}"
    return f"{run.name} · {cfg.get('model', '?')} · {state.get('status', '?')}"


def sidebar() -> None:
    """The run picker, shared by every page (key `run` holds the chosen run folder's path)."""
    runs = all_runs()
    with st.sidebar:
        st.markdown("### Run")
        if not runs:
            st.caption("No runs yet: start one on the Train page.")
            st.session_state.pop("run", None)
            return
        paths = [str(r.path) for r in runs]
        pending = st.session_state.pop("run_pending", None)  # set before a rerun (e.g. a Hub pull)
        if pending in paths:
            st.session_state["run"] = pending
        if st.session_state.get("run") not in paths:
            st.session_state["run"] = paths[-1]
        labels = {str(r.path): run_label(r) for r in runs}
        st.selectbox("Current run", paths, key="run", format_func=lambda p: labels.get(p, p),
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
    from gm.runs.loop import load_for_inference
    trainer, _ = load_for_inference(path, device, checkpoint_path=Path(path) / "checkpoints" / checkpoint)
    return trainer


def inference_trainer(run: RunFolder):
    """The run's latest checkpoint loaded on the CPU for sampling (cached per checkpoint)."""
    from gm.runs.checkpoint import latest_checkpoint
    found = latest_checkpoint(run.checkpoints_dir)
    if found is None:
        raise GMError(f"Run '{run.name}' has no checkpoint yet; wait for the first one or train it.")
    return _inference(str(run.path), found[1].name, "cpu")

"""The 2-D playground: a GAN on toy data with the image GANs' losses, trained and drawn live.

The networks, losses and counts live in gm.playground; this page holds one Playground and its
Runner (a training thread) per browser session and draws snapshots of it.
"""

import time
from collections.abc import Callable

import streamlit as st

from gm.playground import DISTRIBUTIONS, PLAYGROUND_LOSSES, Playground, PlaygroundConfig, Runner
from gm.playground.picture import Layers, render
from pages import _ui as ui

ui.entered_through_app()
t = ui.translator()

SPEEDS = ["1", "5", "20", "100", "max"]       # steps per second
RATES = [1e-5, 3e-5, 1e-4, 3e-4, 5e-4, 1e-3, 3e-3, 1e-2]   # the learning-rate sliders' stops
RUN_LENGTH = 5000   # a Play runs at most this many steps, then pauses: a forgotten tab stops by itself
REFRESH_SECONDS = 0.4
IDLE_EXIT_SECONDS = 600   # a training thread paused this long ends (a visitor who left holds none)
# A closed tab, or another page opened, pauses the playground within UNSEEN_SECONDS (Runner's watch);
# its thread then ends after IDLE_EXIT_SECONDS.
UNSEEN_SECONDS = 3.0   # several missed redraws (a background tab's timers may run once a second)

st.title(t("playground.title"))
st.markdown(t("playground.intro"))


def watcher() -> Callable[[], bool]:
    """Whether anybody still looks at this playground, for its training thread: the browser tab is
    connected and this page drew the picture within the last UNSEEN_SECONDS (it does every
    REFRESH_SECONDS while training, through current()), so closing the tab or opening another page
    pauses it."""
    seen = st.session_state["pg.seen"]
    connected = ui.this_session_connected()
    return lambda: connected() and time.monotonic() - seen["at"] < UNSEEN_SECONDS


def current() -> tuple[Playground, Runner]:
    """This session's playground and its training thread, built on first use; marks the page seen."""
    st.session_state.setdefault("pg.seen", {})["at"] = time.monotonic()
    runner = st.session_state.get("pg.runner")
    if runner is None:
        config = PlaygroundConfig.for_loss(st.session_state.get("pg.loss", "ns"),
                                           distribution=st.session_state.get("pg.dist", "ring8"),
                                           seed=int(st.session_state.get("pg.seed", 0)))
        runner = Runner(Playground(config), steps_per_second=None, idle_exit=IDLE_EXIT_SECONDS, watch=watcher())
    elif not runner.alive:   # its thread ended after a long pause: a new one, same playground
        runner = Runner(runner.playground, steps_per_second=runner.steps_per_second, idle_exit=IDLE_EXIT_SECONDS,
                        watch=watcher())
    st.session_state["pg.runner"] = runner
    return runner.playground, runner


def nearest_rate(lr: float) -> float:
    return min(RATES, key=lambda v: abs(v - lr))


def rebuild() -> None:
    """A new distribution, loss or seed: the networks start again (the loss's reference recipe)."""
    playground, runner = current()
    runner.pause()
    config = PlaygroundConfig.for_loss(st.session_state["pg.loss"], distribution=st.session_state["pg.dist"],
                                       seed=int(st.session_state["pg.seed"]))
    playground.reset(config)
    for key in ("pg.lr_g", "pg.lr_d", "pg.d_steps"):
        st.session_state.pop(key, None)   # the new loss's recipe shows in the fields


@st.fragment
def playground_view() -> None:
    playground, runner = current()
    c1, c2, c3 = st.columns([2, 2, 1])
    ui.localized(st.selectbox, t("playground.distribution"), list(DISTRIBUTIONS), key="pg.dist", where=c1,
                 format_func=lambda d: t(f"playground.dist_{d}"), on_change=rebuild)
    ui.localized(st.selectbox, t("playground.loss"), list(PLAYGROUND_LOSSES), key="pg.loss", where=c2,
                 format_func=lambda name: t(f"playground.loss_{name}"), on_change=rebuild)
    c3.number_input(t("playground.seed"), min_value=0, max_value=2**31 - 1, value=0, step=1, key="pg.seed",
                    on_change=rebuild)
    st.caption(t(f"playground.about_{playground.config.loss}"))

    config = playground.config
    l1, l2, l3, l4 = st.columns(4)
    lr_g = l1.select_slider(t("playground.lr_g"), RATES, value=nearest_rate(config.lr_g), key="pg.lr_g",
                            format_func=str)
    lr_d = l2.select_slider(t("playground.lr_d"), RATES, value=nearest_rate(config.lr_d), key="pg.lr_d",
                            format_func=str)
    d_steps = l3.select_slider(t("playground.d_steps"), [1, 2, 3, 5, 10], value=config.d_steps if config.d_steps in
                               (1, 2, 3, 5, 10) else 1, key="pg.d_steps")
    speed = l4.select_slider(t("playground.speed"), SPEEDS, value="max", key="pg.speed",
                             format_func=lambda s: t("playground.speed_max") if s == "max" else t("playground.per_second", n=s))
    if (lr_g, lr_d, d_steps) != (config.lr_g, config.lr_d, config.d_steps):
        playground.update(lr_g=lr_g, lr_d=lr_d, d_steps=d_steps)
    runner.set_speed(None if speed == "max" else float(speed))

    b1, b2, b3, b4 = st.columns([1, 1, 1, 3], vertical_alignment="center")
    if runner.paused:
        if b1.button(t("playground.play"), icon=":material/play_arrow:", type="primary", key="pg.play"):
            runner.max_steps = playground.steps + RUN_LENGTH
            runner.resume()
            st.rerun(scope="fragment")    # draw Pause instead, and start the live picture
    elif b1.button(t("playground.pause"), icon=":material/pause:", key="pg.pause"):
        runner.pause()
        st.rerun(scope="fragment")
    if b2.button(t("playground.step"), icon=":material/skip_next:", key="pg.step", help=t("playground.step_help")):
        runner.step_once()
        st.rerun(scope="fragment")
    if b3.button(t("playground.reset"), icon=":material/restart_alt:", key="pg.reset"):
        runner.pause()
        playground.reset()
        runner.error = None
        st.rerun(scope="fragment")
    shown = b4.pills(t("playground.layers"), ["surface", "real", "fake", "gradients"],
                     default=["surface", "real", "fake", "gradients"], selection_mode="multi", key="pg.layers",
                     format_func=lambda layer: t(f"playground.layer_{layer}"))
    layers = Layers(**{name: name in (shown or []) for name in ("surface", "real", "fake", "gradients")})
    if runner.error is not None:   # a step failed (e.g. out of memory): the runner paused itself
        st.error(t("playground.failed", error=str(runner.error)))
    live(layers, running=not runner.paused)


def thinned(columns: dict[str, list[float]], most: int = 400) -> dict[str, list[float]]:
    """At most `most` rows (every k-th, the last kept): a chart redrawn several times a second."""
    n = len(next(iter(columns.values())))
    if n <= most:
        return columns
    keep = list(range(0, n, -(-n // most)))
    if keep[-1] != n - 1:
        keep.append(n - 1)
    return {name: [values[i] for i in keep] for name, values in columns.items()}


def live(layers: Layers, running: bool) -> None:
    @st.fragment(run_every=REFRESH_SECONDS if running else None)
    def picture() -> None:
        playground, runner = current()
        view = playground.snapshot()
        if running and runner.paused:   # it reached its run length: redraw the buttons, stop polling
            st.rerun()
        left, right = st.columns([3, 2])
        left.image(render(view, 480, layers), output_format="PNG",
                   caption=t("playground.picture_caption"), width="content")
        with right:
            cov = view.coverage
            m1, m2, m3 = st.columns(3)
            m1.metric(t("playground.step_count"), ui.n(view.step))
            if cov is not None and cov.modes_covered is not None:
                m2.metric(t("playground.modes"), f"{ui.n(cov.modes_covered)} / {ui.n(cov.n_modes)}",
                          help=t("playground.modes_help"))
            if cov is not None:
                m3.metric(t("playground.quality"), ui.n(cov.high_quality, ".0%"), help=t("playground.quality_help"))
            history = view.history
            if history.get("step"):
                st.caption(t("playground.losses"))
                st.line_chart(thinned({"step": history["step"], t("playground.d_loss"): history["d_loss"],
                                       t("playground.g_loss"): history["g_loss"]}), x="step", height=170)
            evals = view.evals
            if len(evals.get("step", [])) > 1:   # modes (0..8) and a share (0..100 %): one chart each
                st.caption(t("playground.coverage_chart"))
                cols = st.columns(2 if view.n_modes else 1)
                if view.n_modes:
                    cols[0].line_chart(thinned({"step": evals["step"], t("playground.modes"): evals["modes_covered"]}),
                                       x="step", height=150)
                cols[-1].line_chart(thinned({"step": evals["step"],
                                             t("playground.quality_pct"): [100 * q for q in evals["high_quality"]]}),
                                    x="step", height=150, color="#1b9e77")
    picture()


playground_view()
st.markdown(t("playground.reading"))

import streamlit as st

from gm import plots
from gm.runs.reader import MetricsHistory
from pages import _ui as ui

ui.entered_through_app()

st.title("Monitor")
run = ui.current_run()
if run is None:
    st.info("No run selected. Start one on the **Train** page or pick one in the sidebar.")
    st.stop()

with ui.user_errors():
    cfg = run.read_config()
family = cfg.get("family", "vae")
st.caption(f"{run.name} · {cfg.get('model')} on {cfg.get('dataset')}")

c1, c2, c3 = st.columns([3, 2, 1])
smoothing = c1.slider("Smoothing", 0.0, 0.99, 0.6, 0.01, key="mon.smooth",
                      help="Exponential moving average, as in TensorBoard; the raw curve stays faint.")
x_axis = c2.radio("x axis", ["step", "time"], horizontal=True, key="mon.x",
                  format_func=lambda a: {"step": "step", "time": "wall time"}[a])
log_y = c3.toggle("log y", key="mon.log")


def history() -> MetricsHistory:
    """One incremental reader per run and browser session: each poll reads only new lines."""
    store = st.session_state.setdefault("mon.histories", {})
    if str(run.path) not in store:
        store[str(run.path)] = MetricsHistory(run.metrics_path)
    return store[str(run.path)]


@st.fragment(run_every=ui.POLL_SECONDS if ui.is_active(run) else None)
def live() -> None:
    hist = history()
    hist.update()
    records = hist.records
    state = run.read_state()
    job = ui.manager().find(run.path)
    step, total = state.get("step", 0), state.get("total_steps") or 0
    if job is not None:
        step, total = job.step, job.total_steps
    status = job.status if job is not None else state.get("status")
    bar, csv = st.columns([6, 1], vertical_alignment="bottom")
    bar.progress(min(1.0, step / total) if total else 0.0, text=f"{status} · step {step}/{total}")
    if state.get("error"):
        st.error(state["error"])
    if not records:
        st.info("No metrics logged yet.")
        return
    # Widgets of a fragment must live inside it (a rerun of the fragment cannot reach outside).
    csv.download_button("CSV", plots.records_to_csv(records), file_name=f"{run.name}-metrics.csv",
                        mime="text/csv", key="mon.csv")
    charts = plots.charts_for(family, records)
    cols = st.columns(2)
    for i, (title, keys, ref) in enumerate(charts):
        fig = plots.line_figure(records, keys, title=title, smoothing=smoothing, log_y=log_y,
                                x_axis=x_axis, reference=ref)
        cols[i % 2].plotly_chart(fig, width="stretch", key=f"chart-{title}")
    dims = next((r["kl_dims"] for r in reversed(records) if isinstance(r.get("kl_dims"), list)), None)
    if dims:
        st.plotly_chart(plots.kl_dims_figure(dims), width="stretch", key="chart-kl-dims")
    grids = run.sample_grids()
    if grids:
        st.subheader("Samples")
        newest_step, newest = grids[-1]
        left, right = st.columns(2)
        left.image(str(newest), caption=f"newest: step {newest_step}", width="stretch", output_format="PNG")
        if len(grids) > 1:
            steps = [s for s, _ in grids]
            pick = right.select_slider("Saved grids (early → final)", steps, value=steps[0], key="mon.grid")
            right.image(str(dict(grids)[pick]), caption=f"step {pick}", width="stretch", output_format="PNG")


live()

import streamlit as st

from gm import plots
from pages import _ui as ui

ui.entered_through_app()
t = ui.translator()

st.title(t("compare.title"))
runs = ui.all_runs()
if len(runs) < 1:
    st.info(t("compare.no_runs"))
    st.stop()

labels = {str(r.path): ui.run_label(r) for r in runs}
default = [p for p in labels][-2:]
chosen = st.multiselect(t("compare.runs"), list(labels), default=default, format_func=labels.get, key="cmp.runs")
if not chosen:
    st.stop()

selected = [r for r in runs if str(r.path) in chosen]
records = {r.name: r.read_metrics() for r in selected}
keys = sorted({k for recs in records.values() for k in plots.scalar_keys(recs)})
if not keys:
    st.info(t("compare.no_metrics"))
    st.stop()


@st.fragment
def charts() -> None:
    """The metric pickers, smoothing and log axis rerun only this part (not the sidebar, the
    evaluations table and the grids below)."""
    c1, c2, c3, c4 = st.columns([2, 2, 2, 1], vertical_alignment="bottom")
    first = [k for k in ("kl", "recon", "d_loss") if k in keys]
    metric_a = c1.selectbox(t("compare.metric"), keys, index=keys.index(first[0]) if first else 0, key="cmp.a",
                            format_func=ui.metric_name)
    second = [k for k in ("recon", "g_loss", "loss") if k in keys and k != metric_a]
    none = "-"
    metric_b = c2.selectbox(t("compare.second_metric"), [none, *keys], index=1 + keys.index(second[0]) if second else 0,
                            key="cmp.b", format_func=lambda k: t("compare.none") if k == none else ui.metric_name(k))
    smoothing = c3.slider(t("monitor.smoothing"), 0.0, 0.99, 0.6, key="cmp.smooth")
    # Runs of very different scales (a KL of 8 against a reconstruction of 2,500) need a log axis.
    log_y = c4.toggle(t("monitor.log_y"), key="cmp.log")

    for metric in [metric_a] + ([metric_b] if metric_b != none else []):
        fig = plots.overlay_figure(list(records.items()), metric, title=ui.metric_name(metric), smoothing=smoothing,
                                   x_title=t("monitor.axis_step"), log_y=log_y)
        st.plotly_chart(fig, width="stretch", key=f"cmp-{metric}")
        # A run that never logs this metric (a GAN has no KL) is said, not silently left out.
        missing = [name for name, recs in records.items() if metric not in plots.scalar_keys(recs)]
        if missing:
            st.caption(t("compare.not_logged", metric=ui.metric_name(metric), runs=", ".join(missing)))


charts()

st.subheader(t("compare.latest"))
rows = []
for r in selected:
    latest = {}
    for e in r.read_eval():
        latest[(e.get("metric"), e.get("features"))] = e
    for (metric, features), e in latest.items():
        rows.append({t("compare.col_run"): r.name, t("compare.col_metric"): metric,
                     t("compare.col_features"): features, t("compare.col_value"): e.get("value"),
                     "n": e.get("n"), t("compare.col_step"): e.get("step")})
if rows:
    st.dataframe(ui.table_rows(rows), hide_index=True, width="stretch")
else:
    st.caption(t("compare.no_evaluations"))

st.subheader(t("monitor.samples"))
cols = st.columns(len(selected))
for col, r in zip(cols, selected):
    grids = r.sample_grids()
    if grids:
        col.image(str(grids[-1][1]), caption=t("compare.grid_caption", name=r.name, step=grids[-1][0]),
                  width="stretch", output_format="PNG")
    else:
        col.caption(t("compare.no_samples", name=r.name))

import streamlit as st

from gm import plots
from pages import _ui as ui

ui.entered_through_app()

st.title("Compare runs")
runs = ui.all_runs()
if len(runs) < 1:
    st.info("No runs yet: train two or more models, then compare them here.")
    st.stop()

labels = {str(r.path): ui.run_label(r) for r in runs}
default = [p for p in labels][-2:]
chosen = st.multiselect("Runs", list(labels), default=default, format_func=labels.get, key="cmp.runs")
if not chosen:
    st.stop()

selected = [r for r in runs if str(r.path) in chosen]
records = {r.name: r.read_metrics() for r in selected}
keys = sorted({k for recs in records.values() for k in plots.scalar_keys(recs)})
if not keys:
    st.info("The chosen runs have no metrics yet.")
    st.stop()

c1, c2, c3 = st.columns([2, 2, 1])
first = [k for k in ("kl", "recon", "d_loss") if k in keys]
metric_a = c1.selectbox("Metric", keys, index=keys.index(first[0]) if first else 0, key="cmp.a")
second = [k for k in ("recon", "g_loss", "loss") if k in keys and k != metric_a]
metric_b = c2.selectbox("Second metric", ["(none)", *keys],
                        index=1 + keys.index(second[0]) if second else 0, key="cmp.b")
smoothing = c3.slider("Smoothing", 0.0, 0.99, 0.6, key="cmp.smooth")

for metric in [metric_a] + ([metric_b] if metric_b != "(none)" else []):
    fig = plots.overlay_figure(list(records.items()), metric, title=metric, smoothing=smoothing)
    st.plotly_chart(fig, width="stretch", key=f"cmp-{metric}")

st.subheader("Latest evaluations")
rows = []
for r in selected:
    latest = {}
    for e in r.read_eval():
        latest[(e.get("metric"), e.get("features"))] = e
    for (metric, features), e in latest.items():
        rows.append({"run": r.name, "metric": metric, "features": features, "value": e.get("value"),
                     "n": e.get("n"), "step": e.get("step")})
if rows:
    st.dataframe(rows, hide_index=True, width="stretch")
else:
    st.caption("No evaluations yet: run them on the **Evaluate** page.")

st.subheader("Samples")
cols = st.columns(len(selected))
for col, r in zip(cols, selected):
    grids = r.sample_grids()
    if grids:
        col.image(str(grids[-1][1]), caption=f"{r.name} · step {grids[-1][0]}", width="stretch", output_format="PNG")
    else:
        col.caption(f"{r.name}: no samples yet")

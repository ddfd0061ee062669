import streamlit as st

from gm import plots
from gm.runs.reader import MetricsHistory
from pages import _ui as ui

ui.entered_through_app()
t = ui.translator()

st.title(t("monitor.title"))
run = ui.current_run()
if run is None:
    st.info(t("monitor.no_run"))
    st.stop()

with ui.user_errors():
    cfg = run.read_config()
    page_state = run.read_state()
    processes = page_state.get("processes")
where = f" · {t('monitor.processes', n=processes)}" if isinstance(processes, int) and processes > 1 else ""
st.caption(f"{run.name} · {cfg.get('model')} · {cfg.get('dataset')}{where}")



translating = "translates" in ui.capabilities(cfg)


metric_name = ui.metric_name


def history() -> MetricsHistory:
    """One incremental reader per run and browser session: each poll reads only new lines."""
    store = st.session_state.setdefault("mon.histories", {})
    if str(run.path) not in store:
        store[str(run.path)] = MetricsHistory(run.metrics_path)
    return store[str(run.path)]


def live_preview(job) -> None:
    """The fixed-noise grid drawn from the training model every few seconds (GAN Lab's liveness):
    the saved grids below come only every sample_every steps."""
    st.subheader(t("monitor.live"))
    preview = ui.policy().preview(ui.owner(), job.key)
    if preview is None:
        st.caption(t("monitor.live_waiting"))
        return
    left, right = st.columns([3, 2])
    left.image(ui.to_png_bytes(preview.pixels, 2), width="stretch", output_format="PNG",
               caption=t("monitor.live_caption", step=preview.step))
    right.caption(t("monitor.live_help") if job.processes == 1 else t("monitor.live_help_processes", n=job.processes))


@st.fragment(run_every=ui.POLL_SECONDS if ui.is_active(run) else None)
def live() -> None:
    ui.visit()  # a poll is a sign of life: the visitor's jobs keep running
    # The chart settings live in the fragment: changing one redraws the charts, not the page.
    c1, c2, c3 = st.columns([3, 2, 1])
    smoothing = c1.slider(t("monitor.smoothing"), 0.0, 0.99, 0.6, 0.01, key="mon.smooth",
                          help=t("monitor.smoothing_help"))
    x_axis = ui.localized(st.radio, t("monitor.x_axis"), ["step", "time"], key="mon.x", where=c2, horizontal=True,
                          format_func=lambda a: t(f"monitor.axis_{a}"))
    log_y = c3.toggle(t("monitor.log_y"), key="mon.log")
    hist = history()
    hist.update()
    records = hist.records
    state = run.read_state()
    if state.get("status") != page_state.get("status"):
        # The run started, paused or ended since the page was drawn: one full rerun redraws the
        # sidebar's status and turns this fragment's polling on or off.
        st.rerun()
    job = ui.find_job(run)
    step, total = state.get("step", 0), state.get("total_steps") or 0
    if job is not None:
        step, total = job.step, job.total_steps
    status = job.status if job is not None else state.get("status")
    bar, pause, one, stop, csv = st.columns([6, 1, 1, 1, 1], vertical_alignment="bottom")
    if job is not None:   # the job's controls here too, not only on Train
        ui.job_buttons(job, pause, stop, "monitor", step_col=one)
        job = ui.find_job(run) or job   # a click above changed it
        step, total, status = job.step, job.total_steps, job.status
    bar.progress(min(1.0, step / total) if total else 0.0,
                 text=t("monitor.progress", status=t(f"status.{status}"), step=step, total=total))
    if state.get("error"):
        st.error(state["error"])
    if job is not None and job.active:
        live_preview(job)
    if not records:
        st.info(t("monitor.no_metrics"))
        return
    # Widgets of a fragment must live inside it (a rerun of the fragment cannot reach outside).
    csv.download_button("CSV", plots.records_to_csv(records), file_name=f"{run.name}-metrics.csv",
                        mime="text/csv", key="mon.csv", on_click="ignore")
    def chart(where, title: str, keys: tuple[str, ...], ref: str | None = None) -> None:
        fig = plots.line_figure(records, keys, title=title, smoothing=smoothing, log_y=log_y, x_axis=x_axis,
                                reference=ref, names=[metric_name(k) for k in keys],
                                reference_name=t("metric.set_point"), x_title=t(f"monitor.axis_{x_axis}"))
        where.plotly_chart(fig, width="stretch", key=f"chart-{keys[0]}")

    if translating:   # losses grouped by the part of the objective they are (gm.translate_views.LOSS_KINDS)
        from gm import translate_views as tv
        for group in tv.loss_groups(records):
            st.markdown(f"**{t(f'monitor.kind_{group.kind}')}**")
            cols = st.columns(2)
            for i, (name, keys) in enumerate(group.charts):
                chart(cols[i % 2], name if group.kind == "other" else t(f"monitor.chart_{name}"), keys)
    else:
        cols = st.columns(2)
        for i, (title, keys, ref) in enumerate(plots.charts_for(records, ui.lang())):
            chart(cols[i % 2], title, keys, ref)
    dims = next((r["kl_dims"] for r in reversed(records) if isinstance(r.get("kl_dims"), list)), None)
    if dims:
        st.plotly_chart(plots.kl_dims_figure(dims, lang=ui.lang()), width="stretch", key="chart-kl-dims")
    grids = run.sample_grids()
    if grids:
        st.subheader(t("monitor.samples"))
        newest_step, newest = grids[-1]
        left, right = st.columns(2)
        left.image(str(newest), caption=t("monitor.newest", step=newest_step), width="stretch", output_format="PNG")
        if len(grids) > 1:
            steps = [s for s, _ in grids]
            pick = right.select_slider(t("monitor.saved_grids"), steps, value=steps[0], key="mon.grid")
            right.image(str(dict(grids)[pick]), caption=t("monitor.grid_step", step=pick), width="stretch",
                        output_format="PNG")


live()

# ---- export ----------------------------------------------------------------------------------
@st.fragment   # preparing and downloading rerun this section only
def export_section() -> None:
    with st.expander(t("monitor.export_heading")):
        st.caption(t("monitor.export_intro"))
        if st.button(t("walkthrough.page.prepare"), key="mon.prepare", icon=":material/download:"):
            from gm import export
            with st.spinner(t("walkthrough.page.preparing")), ui.user_errors():
                st.session_state["mon.export"] = {"run": str(run.path), "lang": ui.lang(),
                                                  "html": export.run_html(run, ui.lang()),
                                                  "zip": export.run_zip(run, ui.lang())}
        ready = st.session_state.get("mon.export")
        if ready and ready["run"] == str(run.path) and ready["lang"] == ui.lang():
            c1, c2 = st.columns(2)
            c1.download_button(t("walkthrough.page.download_html"), ready["html"], file_name=f"{run.name}-{ready['lang']}.html",
                               mime="text/html", key="mon.dl.html", on_click="ignore", icon=":material/description:")
            c2.download_button(t("walkthrough.page.download_zip"), ready["zip"], file_name=f"{run.name}-{ready['lang']}.zip",
                               mime="application/zip", key="mon.dl.zip", on_click="ignore", icon=":material/folder_zip:")


export_section()

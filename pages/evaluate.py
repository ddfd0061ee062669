import streamlit as st

from gm import plots
from pages import _ui as ui

ui.entered_through_app()
t = ui.translator()

st.title(t("evaluate.title"))
run = ui.current_run()
if run is None:
    st.info(t("evaluate.no_run"))
    st.stop()

cfg = run.read_config()
dataset = cfg.get("dataset")
st.caption(f"{run.name} · {cfg.get('model')} · {dataset}")
can = ui.capabilities(cfg)
# A translation model (gm.models.base.Translates) is measured on translations of dataset images
# (gm eval's translation metrics); FID, coverage and CAM need samples from noise.
translating = "translates" in can
if not translating and "samples" not in can:
    st.info(t("evaluate.not_available", model=cfg.get("model")))
    st.stop()


def inception_ready() -> tuple[bool, str]:
    """Whether the Inception weights are here, and if not, why in the reader's words: not the CLI's
    message, whose server paths and command-line flags mean nothing in a browser."""
    from gm.metrics.inception import WEIGHTS_FILE, find_weights
    try:
        find_weights(download=False)
        return True, ""
    except Exception:
        return False, t("evaluate.inception_missing", file=WEIGHTS_FILE)


# ---- start an evaluation ------------------------------------------------------------------------
runner = ui.tasks()
key = ui.task_key(run)   # in the hosted demo: this visitor's evaluation of the run, nobody else's
with st.container(border=True):
    st.markdown(f"**{t('evaluate.measure_heading')}**")
    limits = ui.demo_limits()
    if translating:
        st.caption(t("evaluate.translation_intro"))
        sizes = [k for k in (100, 250, 500, 1000, 2000) if limits is None or k <= limits.max_fid_n] or [100]
        n = int(st.select_slider(t("evaluate.translation_images"), sizes, value=500 if 500 in sizes else sizes[-1],
                                 key="ev.tn", help=t("evaluate.translation_images_help")))
        with_inception = False
    else:
        ready, why = inception_ready()
        c1, c2, c3 = st.columns([2, 2, 1])
        n = int(c1.select_slider(t("evaluate.images"), ui.fid_sizes(), value=1000, key="ev.n",
                                 help=t("evaluate.images_help")))
        if limits is not None:
            c1.caption(t("evaluate.demo_limit", n=limits.max_fid_n))
        with_inception = c2.toggle(t("evaluate.with_inception"), value=False, disabled=not ready, key="ev.inc",
                                   help=t("evaluate.with_inception_help"))
        if not ready:
            c2.caption(why)
    if not translating and c3.button(t("evaluate.estimate"), key="ev.estimate"):
        with ui.user_errors():
            from gm.metrics.evaluate import estimate
            est = estimate(str(run.path), n=n, features="inception" if with_inception else "classifier")
            st.info(t("evaluate.estimated", seconds=est["seconds"], images=est["images"],
                      rate=est["images_per_second"],
                      real=t("evaluate.real_cached" if est["real_cached"] else "evaluate.real_computed")))
    task = runner.get(key)
    start = st.button(t("evaluate.go"), type="primary", key="ev.go", disabled=bool(task and task.active))
    if start:
        from gm.metrics.evaluate import evaluate

        record = ui.records_evaluations(run)

        def job(progress, cancel, path=str(run.path), n=n, inception=with_inception, record=record):
            return evaluate(path, n=n, inception=inception, progress=progress, cancel=cancel, record=record)

        with ui.user_errors():
            ui.start_tasks([(key, f"evaluate {run.name}", job)])
            st.rerun()


@st.fragment(run_every=ui.POLL_SECONDS if (runner.get(key) and runner.get(key).active) else None)
def progress_panel() -> None:
    task = runner.get(key)
    if task is None:
        return
    if task.active:
        eta = " · " + t("train.eta", seconds=task.eta_seconds) if task.eta_seconds else ""
        st.progress(task.fraction, text=t("evaluate.progress", label=task.label, done=task.done, total=task.total,
                                          eta=eta))
        if st.button(t("evaluate.cancel"), key="ev.cancel"):
            runner.cancel(key)
        return
    if task.status == "failed":
        st.error(task.error)
    elif task.status == "cancelled":
        st.warning(t("evaluate.cancelled"))
    elif st.session_state.get("ev.shown") != task.started:
        st.session_state["ev.shown"] = task.started
        st.rerun()  # finished: one full rerun shows the new results below


progress_panel()

# ---- latest result -----------------------------------------------------------------------------
task = runner.get(key)
result = task.result if task is not None and task.status == "done" else None


def translation_scores(result) -> None:
    """The translation metrics: the newest evaluation's (this session's, else the run's records),
    every pair together and one row per source -> target pair."""
    from gm import translate_views as tv
    scores = tv.scores_from_result(result)
    heading = t("evaluate.latest")
    if not scores:
        scores = tv.scores_of(run)
        heading = t("evaluate.translation_shipped" if scores.origin == "metrics.json" else "evaluate.translation_recorded")
    st.subheader(heading)
    if not scores:
        st.caption(t("evaluate.translation_none"))
        return
    if scores.step is not None or scores.n is not None:
        st.caption(t("evaluate.translation_when", step=scores.step or 0, n=scores.n or 0))
    if isinstance(result, dict) and result.get("note"):   # e.g. a dataset without true counterparts
        st.caption(str(result["note"]))
    for row in (tv.METRIC_KEYS[:4], tv.METRIC_KEYS[4:]):
        cols = st.columns(4)
        for col, k in zip(cols, row):
            col.metric(t(f"evaluate.t_{k}"), tv.formatted(k, scores.value(k), ui.n), help=t(f"evaluate.t_{k}_help"))
    if scores.pairs:
        st.markdown(f"**{t('evaluate.translation_pairs')}**")
        names = {k: t(f"evaluate.t_{k}") for k in tv.METRIC_KEYS} | {"pair": t("evaluate.t_pair")}
        st.dataframe(ui.table_rows(tv.score_rows(scores, names.get, ui.n, every_pair=t("evaluate.every_pair"))),
                     hide_index=True, width="stretch", key="ev.pairs")


if translating:
    translation_scores(result)
elif result:
    st.subheader(t("evaluate.latest"))
    cols = st.columns(4)
    cols[0].metric(t("evaluate.fid_classifier"), ui.n(result["fid_classifier"], ".2f"),
                   help=t("evaluate.fid_classifier_help"))
    if "fid_inception" in result:
        cols[1].metric(t("evaluate.fid_inception"), ui.n(result["fid_inception"], ".2f"))
    cols[2].metric(t("evaluate.precision_recall"), f"{ui.n(result['precision'], '.2f')} / {ui.n(result['recall'], '.2f')}")
    cols[3].metric(t(f"evaluate.covered_{result['coverage_of']}"),
                   f"{ui.n(result['classes_covered'])} / {ui.n(result['num_classes'])}",
                   help=t("evaluate.covered_help", kl=result["kl_to_uniform"]))
    extra = st.columns(4)
    if "acgan_accuracy" in result:
        extra[0].metric(t("evaluate.acgan_accuracy"), ui.n(result["acgan_accuracy"], ".1%"),
                        help=t("evaluate.acgan_accuracy_help"))
    if "mig" in result:
        extra[1].metric("MIG", ui.n(result["mig"], ".3f"), help=t("evaluate.mig_help"))
    if "recognised_as_requested" in result:
        extra[2].metric(t("evaluate.recognised_as_requested"), ui.n(result["recognised_as_requested"], ".1%"),
                        help=t("evaluate.recognised_as_requested_help"))
    if "fid_offline" in result:   # the offline realism evaluator (gm.metrics.offline)
        st.markdown(f"**{t('evaluate.offline_heading')}**")
        real = st.columns(5)
        real[0].metric(t("evaluate.fid_offline"), ui.n(result["fid_offline"], ".2f"), help=t("evaluate.fid_offline_help"))
        real[1].metric(t("evaluate.recognisable"), ui.n(result["recognisable_share"], ".1%"),
                       help=t("evaluate.recognisable_help", real=ui.n(result["recognisable_share_real"], ".1%")))
        real[2].metric(t("evaluate.classes_recognised"),
                       f"{ui.n(result['classes_recognised'])} / {ui.n(result['num_classes'])}",
                       help=t("evaluate.classes_recognised_help"))
        diversity = result.get("within_class_diversity")
        real[3].metric(t("evaluate.diversity"), "—" if diversity is None else ui.n(diversity, ".2f"),
                       help=t("evaluate.diversity_help"))
        real[4].metric(t("evaluate.coverage_offline"), ui.n(result["coverage_offline"], ".2f"),
                       help=t("evaluate.coverage_offline_help"))
    st.plotly_chart(plots.bar_figure(result["class_names"], result["class_histogram"],
                                     t(f"evaluate.histogram_{result['coverage_of']}")),
                    width="stretch", key="ev.hist")

# ---- history -----------------------------------------------------------------------------------
history = run.read_eval()
st.subheader(t("evaluate.history"))
if not history:
    st.caption(t("evaluate.no_history"))
else:
    st.dataframe(ui.table_rows(history), hide_index=True, width="stretch")
    def series(h: dict) -> tuple[str, str, str]:   # a translation run's lines also name their pair
        return str(h.get("metric")), str(h.get("features") or ""), str(h.get("pair") or "")

    metric_names = sorted({series(h) for h in history})
    label = {m: f"{m[0]} ({m[1]})" + (f" · {m[2]}" if m[2] else "") for m in metric_names}
    pick = st.selectbox(t("evaluate.chart_over_steps"), metric_names, format_func=label.get, key="ev.chart")
    points = [{"step": h.get("step") or 0, "value": h["value"]} for h in history
              if series(h) == pick and isinstance(h.get("value"), (int, float))]
    st.plotly_chart(plots.line_figure(points, ["value"], title=label[pick], smoothing=0.0, names=[label[pick]]),
                    width="stretch", key="ev.line")

# ---- CAM -------------------------------------------------------------------------------------
if dataset == "mnist" and "samples" in can:
    st.subheader(t("evaluate.cam_heading"))
    st.caption(t("evaluate.cam_caption"))
    with ui.user_errors():
        import torch

        from gm.images import make_grid
        from gm.metrics.cam import class_activation_maps, overlay
        from gm.metrics.classifiers import load_classifier
        model = ui.inference_model(run)
        seed = int(st.number_input(t("explore.seed"), 0, 10_000, 0, key="ev.cam.seed"))
        images = model.sample(10, seed=seed)
        cam = class_activation_maps(load_classifier("mnist"), images)
        tiles = torch.from_numpy(overlay(images, cam.heatmaps)).permute(0, 3, 1, 2).float() / 255
        ui.show_image(make_grid(tiles, 10), t("evaluate.predicted", digits=" ".join(ui.n(int(p)) for p in cam.predicted)),
                      scale=3)

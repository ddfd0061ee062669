import streamlit as st

from gm import plots
from pages import _ui as ui

ui.entered_through_app()

st.title("Evaluate")
run = ui.current_run()
if run is None:
    st.info("No run selected. Train a model (or pick a run in the sidebar) to measure it.")
    st.stop()

cfg = run.read_config()
dataset, family = cfg.get("dataset"), cfg.get("family")
st.caption(f"{run.name} · {cfg.get('model')} on {dataset}")


def inception_ready() -> tuple[bool, str]:
    from gm.metrics.inception import find_weights, missing_weights_message
    try:
        find_weights(download=False)
        return True, ""
    except Exception:
        return False, missing_weights_message()


# ---- start an evaluation ------------------------------------------------------------------------
runner = ui.tasks()
key = str(run.path)
with st.container(border=True):
    st.markdown("**Measure the latest checkpoint**")
    ready, why = inception_ready()
    c1, c2, c3 = st.columns([2, 2, 1])
    n = int(c1.select_slider("Images (generated, and real for the reference)", ui.fid_sizes(),
                             value=1000, key="ev.n",
                             help="The assignment asks for at least 5,000; FID is biased upward at small n, "
                                  "so only compare values at equal n."))
    if ui.demo_mode():
        c1.caption(f"Hosted demo: at most {ui.DEMO_MAX_FID_N:,} images per evaluation (CPU box); run gm "
                   f"locally for the assignment's 5,000.")
    with_inception = c2.toggle("Also Inception FID (pytorch-fid)", value=False, disabled=not ready, key="ev.inc",
                               help="Needs the pytorch-fid Inception weights; slow on a CPU.")
    if not ready:
        c2.caption(why)
    if c3.button("Estimate time", key="ev.estimate"):
        with ui.user_errors():
            from gm.metrics.evaluate import estimate
            est = estimate(key, n=n, features="inception" if with_inception else "classifier")
            st.info(f"About {est['seconds']:.0f} s here ({est['images']:,} images at "
                    f"{est['images_per_second']:.0f} img/s; real statistics "
                    f"{'cached' if est['real_cached'] else 'computed once, then cached'}).")
    task = runner.get(key)
    start = st.button("Evaluate", type="primary", key="ev.go", disabled=bool(task and task.active))
    if start:
        from gm.metrics.evaluate import evaluate

        def job(progress, cancel, path=key, n=n, inception=with_inception):
            return evaluate(path, n=n, inception=inception, progress=progress, cancel=cancel)

        with ui.user_errors():
            runner.start(key, f"evaluate {run.name}", job)
            st.rerun()


@st.fragment(run_every=ui.POLL_SECONDS if (runner.get(key) and runner.get(key).active) else None)
def progress_panel() -> None:
    task = runner.get(key)
    if task is None:
        return
    if task.active:
        eta = f" · ETA {task.eta_seconds:.0f} s" if task.eta_seconds else ""
        st.progress(task.fraction, text=f"{task.label}: {task.done:,}/{task.total:,} images{eta}")
        if st.button("Cancel", key="ev.cancel"):
            runner.cancel(key)
        return
    if task.status == "failed":
        st.error(task.error)
    elif task.status == "cancelled":
        st.warning("Evaluation cancelled; nothing was recorded.")
    elif st.session_state.get("ev.shown") != task.started:
        st.session_state["ev.shown"] = task.started
        st.rerun()  # finished: one full rerun shows the new results below


progress_panel()

# ---- latest result -----------------------------------------------------------------------------
task = runner.get(key)
result = task.result if task is not None and task.status == "done" else None
if result:
    st.subheader("Latest evaluation")
    cols = st.columns(4)
    cols[0].metric("Classifier FID", f"{result['fid_classifier']:.2f}",
                   help="Fréchet distance on the project's classifier features: works offline, but is "
                        "not comparable with Inception FID.")
    if "fid_inception" in result:
        cols[1].metric("Inception FID", f"{result['fid_inception']:.2f}")
    cols[2].metric("Precision / recall", f"{result['precision']:.2f} / {result['recall']:.2f}")
    cols[3].metric({"class": "Classes", "shape": "Shapes"}.get(result["coverage_of"], "Modes") + " covered", f"{result['classes_covered']} / {result['num_classes']}",
                   help=f"KL to uniform {result['kl_to_uniform']:.3f} nats (0 = balanced)")
    extra = st.columns(4)
    if "acgan_accuracy" in result:
        extra[0].metric("ACGAN accuracy", f"{100 * result['acgan_accuracy']:.1f}%",
                        help="How often the classifier agrees with the class the generator was asked for.")
    if "mig" in result:
        extra[1].metric("MIG", f"{result['mig']:.3f}", help="Mutual information gap (0 = entangled, 1 = disentangled).")
    st.plotly_chart(plots.bar_figure(result["class_names"], result["class_histogram"],
                                     f"Generated samples per {result['coverage_of']} (mode coverage)"),
                    width="stretch", key="ev.hist")

# ---- history -----------------------------------------------------------------------------------
history = run.read_eval()
st.subheader("History")
if not history:
    st.caption("No evaluations of this run yet.")
else:
    st.dataframe(history, hide_index=True, width="stretch")
    metric_names = sorted({(h.get("metric"), h.get("features")) for h in history})
    label = {m: f"{m[0]} ({m[1]})" for m in metric_names}
    pick = st.selectbox("Chart over steps", metric_names, format_func=label.get, key="ev.chart")
    points = [{"step": h.get("step") or 0, "value": h["value"]} for h in history
              if (h.get("metric"), h.get("features")) == pick and isinstance(h.get("value"), (int, float))]
    st.plotly_chart(plots.line_figure(points, ["value"], title=label[pick], smoothing=0.0, names=[label[pick]]),
                    width="stretch", key="ev.line")

# ---- CAM -------------------------------------------------------------------------------------
if dataset == "mnist":
    st.subheader("What the classifier looks at (CAM)")
    st.caption("Class activation maps of the evaluator classifier over generated samples: red/yellow "
               "regions drive the predicted digit.")
    with ui.user_errors():
        import torch

        from gm.images import make_grid
        from gm.metrics.cam import class_activation_maps, overlay
        from gm.metrics.classifiers import load_classifier
        trainer = ui.inference_trainer(run)
        seed = int(st.number_input("Seed", 0, 10_000, 0, key="ev.cam.seed"))
        images = trainer.sample(10, seed=seed)
        cam = class_activation_maps(load_classifier("mnist"), images)
        tiles = torch.from_numpy(overlay(images, cam.heatmaps)).permute(0, 3, 1, 2).float() / 255
        ui.show_image(make_grid(tiles, 10), "predicted: " + " ".join(map(str, cam.predicted.tolist())), scale=3)

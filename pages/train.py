import streamlit as st

from gm.config import to_dict
from gm.device import available_devices
from gm.registry import MODELS, get_spec
from pages import _forms
from pages import _ui as ui

ui.entered_through_app()

st.title("Train")

manager = ui.manager()

# ---- live jobs: progress and controls (polls only while something is active) -------------------
active_now = any(j.active for j in manager.jobs())


@st.fragment(run_every=ui.POLL_SECONDS if active_now else None)
def jobs_panel() -> None:
    jobs = manager.jobs()
    if not jobs:
        return
    st.subheader("Jobs")
    for job in reversed(jobs):
        with st.container(border=True):
            top = st.columns([4, 1, 1, 1])
            top[0].markdown(f"**{job.name}** · {job.model} · {job.device} · `{job.status}`"
                            + (f" (asked to {job.requested})" if job.requested else ""))
            if job.status == "running":
                if top[1].button("Pause", key=f"pause-{job.key}"):
                    manager.pause(job.key)
            if job.status == "paused":
                if top[1].button("Continue", key=f"cont-{job.key}"):
                    manager.unpause(job.key)
            if job.active and top[2].button("Stop", key=f"stop-{job.key}"):
                manager.stop(job.key)
            if top[3].button("Monitor", key=f"mon-{job.key}"):
                ui.select_run(job.key)
                st.switch_page("pages/monitor.py")
            ips = f"{job.images_per_sec:.0f} img/s" if job.images_per_sec else "…"
            eta = f"ETA {job.eta_seconds:.0f} s" if job.eta_seconds is not None and job.active else ""
            st.progress(job.progress, text=f"step {job.step}/{job.total_steps} · {ips} {eta}")
            if job.error:
                st.error(job.error)
    if active_now and not any(j.active for j in jobs):
        st.rerun()  # last job ended: one full rerun turns polling off


jobs_panel()

# ---- new run ---------------------------------------------------------------------------------
st.subheader("New run")
names = list(MODELS)
model = st.selectbox("Model", names, format_func=lambda n: f"{n} — {MODELS[n].blurb}", key="train.model")
spec = get_spec(model)
if spec.cpu_note:
    st.caption(spec.cpu_note)
values = to_dict(spec.config_cls())
if spec.presets:
    preset = st.radio("Preset", ["(defaults)"] + [p for p, _ in spec.presets], horizontal=True,
                      key=f"train.preset.{model}")
    values.update(dict(spec.presets).get(preset, {}))

with st.form(f"train-form-{model}"):
    chosen = _forms.config_widgets(spec.config_cls, values, key=f"cfg.{model}")
    c1, c2, c3, c4 = st.columns(4)
    unit = c1.radio("Length in", ["steps", "epochs"], horizontal=True)
    length = c2.number_input(unit, min_value=1, value=1000 if unit == "steps" else 5, step=1)
    devices = ["auto", *available_devices()]
    device = c3.selectbox("Device", devices, help="auto picks cuda, then mps, then cpu")
    name = c4.text_input("Run name (optional)", help="letters, digits, '.', '_' and '-'")
    submitted = st.form_submit_button("Start training", type="primary")

if submitted:
    with ui.user_errors():
        with st.spinner("Preparing data and model…"):
            job = manager.start_run(model, chosen, steps=int(length) if unit == "steps" else None,
                                    epochs=float(length) if unit == "epochs" else None, device=device,
                                    runs_dir=ui.runs_dir(), name=name.strip() or None)
        ui.select_run(job.key)
        st.success(f"Started {job.name} ({job.status}).")
        st.rerun()

# ---- resume ----------------------------------------------------------------------------------
st.subheader("Resume a run")
resumable = [r for r in ui.all_runs() if not ui.is_active(r) and not ui.weights_only(r)
             and r.read_state().get("status") not in ("running", "queued")]
if not resumable:
    st.caption("No stopped, paused or finished runs to resume.")
else:
    with st.form("resume-form"):
        labels = {str(r.path): ui.run_label(r) for r in resumable}
        default = st.session_state.get("run")
        keys = list(labels)
        run_path = st.selectbox("Run", keys, index=keys.index(default) if default in keys else 0,
                                format_func=labels.get)
        c1, c2 = st.columns(2)
        more = c1.number_input("More steps (0 = to its original length)", min_value=0, value=0, step=100)
        device = c2.selectbox("Device", ["(as before)", *available_devices()])
        go = st.form_submit_button("Resume")
    if go:
        with ui.user_errors():
            job = manager.resume_run(run_path, steps=int(more) or None,
                                     device=None if device == "(as before)" else device)
            ui.select_run(job.key)
            st.success(f"Resumed {job.name} from step {job.step}.")
            st.rerun()

import streamlit as st

from gm.config import to_dict
from gm.device import available_devices, max_processes
from gm.errors import GMError
from gm.registry import MODELS, get_spec
from pages import _forms
from pages import _ui as ui

ui.entered_through_app()
t = ui.translator()

st.title(t("train.title"))

# Every start and every button goes through the policy: in the hosted demo it refuses another
# visitor's job and anything over the caps, whatever this page draws.
rules, me = ui.policy(), ui.owner()
limits = rules.limits

# ---- live jobs: progress and controls (polls only while something is active) -------------------
jobs_now = ui.jobs()
active_now = any(j.active for j in jobs_now)
statuses_now = {j.key: j.status for j in jobs_now}


@st.fragment(run_every=ui.POLL_SECONDS if active_now else None)
def jobs_panel() -> None:
    ui.visit()  # a poll is a sign of life: the visitor's jobs keep running
    jobs = ui.jobs()
    if not jobs:
        return
    st.subheader(t("train.jobs"))
    for job in reversed(jobs):
        with st.container(border=True):
            top = st.columns([4, 1, 1, 1])
            asked = t("train.asked", what=t(f"train.request_{job.requested}")) if job.requested else ""
            top[0].markdown(f"**{job.name}** · {job.model} · {job.device} · `{t('status.' + job.status)}`{asked}")
            ui.job_buttons(job, top[1], top[2], "train")
            if top[3].button(t("nav.monitor"), key=f"mon-{job.key}"):
                ui.select_run(job.key)
                st.switch_page("pages/monitor.py")
            if job.status == "queued" and job.queue_position is not None:
                st.caption(t("train.queue_position", ahead=job.queue_position, place=job.queue_position + 1))
            ips = t("train.images_per_sec", ips=job.images_per_sec) if job.images_per_sec else "…"
            eta = t("train.eta", seconds=job.eta_seconds) if job.eta_seconds is not None and job.active else ""
            st.progress(job.progress, text=t("train.progress", step=job.step, total=job.total_steps, ips=ips, eta=eta))
            if job.error:
                st.error(job.error)
    if {j.key: j.status for j in jobs} != statuses_now:
        st.rerun()  # a job started, paused or ended: one full rerun redraws the sidebar's status
        # and turns this panel's polling on or off


jobs_panel()

# ---- new run ---------------------------------------------------------------------------------
st.subheader(t("train.new_run"))
names = list(MODELS)
model = ui.localized(st.selectbox, t("train.model"), names, key="train.model",
                     format_func=lambda m: f"{m} — {t('model.' + m)}")
spec = get_spec(model)
if spec.cpu_note:
    st.caption(t(f"cpu_note.{model}"))
values = to_dict(spec.config_cls())
if spec.presets:
    defaults = t("train.preset_defaults")
    preset = st.radio(t("train.preset"), [defaults] + [p for p, _ in spec.presets], horizontal=True,
                      key=f"train.preset.{model}")
    values.update(dict(spec.presets).get(preset, {}))

if limits is not None:
    st.info(t("demo.train_rules", steps=limits.max_steps, per=limits.jobs_per_session, total=limits.max_jobs,
              running=limits.max_running, width=limits.max_width, batch=limits.max_batch_size,
              minutes=limits.idle_seconds / 60), icon=":material/public:")
# The unit sits outside the form: a choice inside a form reruns nothing until Start, so the length
# field kept saying "steps" and, renamed at the submit, came back as a new field with its default.
units = ["steps"] if limits else ["steps", "epochs"]  # the demo caps steps, so it counts in steps
unit = ui.localized(st.radio, t("train.length_in"), units, key="train.unit", horizontal=True,
                    format_func=lambda u: t(f"train.{u}"))
with st.form(f"train-form-{model}"):
    chosen = _forms.config_widgets(spec.config_cls, values, key=f"cfg.{model}",
                                   caps=limits.config_caps() if limits else None)
    c1, c2, c3, c4 = st.columns([2, 2, 1, 2])
    most = limits.max_steps if limits and unit == "steps" else None
    # No min/max: out of range a field only turns red and Start does nothing; checked at Start instead.
    length = c1.number_input(t(f"train.{unit}"), step=1, key=f"train.length.{unit}",
                             value=min(1000, most or 1000) if unit == "steps" else 5)
    devices = ["auto"] if limits else ["auto", *available_devices()]
    device = c2.selectbox(t("train.device"), devices, help=t("train.device_help"), disabled=limits is not None)
    processes = c3.number_input(t("train.processes"), value=1, step=1, help=t("train.processes_help"),
                                disabled=limits is not None)
    name = c4.text_input(t("train.run_name"), help=t("train.run_name_help"))
    submitted = st.form_submit_button(t("train.start"), type="primary")

if submitted:
    with ui.user_errors():
        if not length >= 1:
            raise GMError(t("train.length_invalid", unit=t(f"train.{unit}"), value=length))
        if not 1 <= processes <= max_processes():
            raise GMError(t("train.processes_invalid", most=max_processes(), value=processes))
        with st.spinner(t("train.preparing")):
            job = rules.start_run(me, model, chosen, steps=int(length) if unit == "steps" else None,
                                  epochs=float(length) if unit == "epochs" else None, device=device,
                                  runs_dir=ui.runs_dir(), name=name.strip() or None, processes=int(processes))
        ui.select_run(job.key)
        st.success(t("train.started", name=job.name, status=t("status." + job.status)))
        st.rerun()

# ---- resume ----------------------------------------------------------------------------------
st.subheader(t("train.resume_heading"))
resumable = [r for r in ui.all_runs() if not ui.is_active(r) and not ui.weights_only(r)
             and r.read_state().get("status") not in ("running", "queued")]
if not resumable:
    st.caption(t("train.nothing_to_resume"))
else:
    with st.form("resume-form"):
        labels = {str(r.path): ui.run_label(r) for r in resumable}
        default = st.session_state.get("run")
        keys = list(labels)
        run_path = st.selectbox(t("train.run"), keys, index=keys.index(default) if default in keys else 0,
                                format_func=labels.get)
        c1, c2 = st.columns(2)
        more = c1.number_input(t("train.more_steps"), value=0, step=100)   # checked at Resume, as above
        as_before = t("train.as_before")
        device = c2.selectbox(t("train.device"), [as_before] if limits else [as_before, *available_devices()],
                              disabled=limits is not None)
        go = st.form_submit_button(t("train.resume"))
    if go:
        with ui.user_errors():
            if more < 0:
                raise GMError(t("train.more_invalid", value=more))
            job = rules.resume_run(me, run_path, steps=int(more) or None,
                                   device=None if device == as_before else device)
            ui.select_run(job.key)
            st.success(t("train.resumed", name=job.name, step=job.step))
            st.rerun()

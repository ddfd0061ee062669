import streamlit as st

from gm.registry import MODELS
from pages import _ui as ui

ui.entered_through_app()
t = ui.translator()

st.title(t("home.title"))
st.markdown(t("home.intro"))

st.subheader(t("home.start_heading"))
st.markdown(t("home.start_steps"))
if st.button(t("home.open_walkthrough"), icon=":material/school:", key="home.walkthrough"):
    st.switch_page("pages/walkthrough.py")

st.subheader(t("home.models_heading"))
runs = ui.all_runs()  # shipped pretrained runs first: a local run of the same model replaces its grid
latest_by_model = {}
for run in runs:
    try:
        latest_by_model[run.read_config().get("model")] = run
    except Exception:
        continue
cols = st.columns(3)
for i, spec in enumerate(MODELS.values()):
    with cols[i % 3].container(border=True):
        st.markdown(f"**{spec.name}** · {spec.dataset}")
        st.caption(t(f"model.{spec.name}"))
        run = latest_by_model.get(spec.name)
        grids = run.sample_grids() if run else []
        if grids:
            who = t("app.pretrained") if ui.is_pretrained(run) else run.name
            st.image(str(grids[-1][1]), caption=t("home.grid_caption", who=who, step=grids[-1][0]),
                     width="stretch", output_format="PNG")

st.subheader(t("home.runs_heading"))
runs = [r for r in runs if not ui.is_pretrained(r)]
if not runs:
    st.info(t("home.no_runs"))
else:
    rows = []
    for run in runs:
        state = run.read_state()
        try:
            model = run.read_config().get("model", "?")
        except Exception:
            model = "?"
        rows.append({t("home.col_run"): run.name, t("home.col_model"): model,
                     t("home.col_status"): t(f"status.{state.get('status')}"), t("home.col_step"): state.get("step"),
                     t("home.col_of"): state.get("total_steps"), t("home.col_updated"): state.get("updated")})
    st.dataframe(ui.table_rows(rows), hide_index=True, width="stretch")

st.subheader(t("home.hub_heading"))
st.caption(t("home.hub_intro"))
hub_pull, hub_push = st.columns(2)
with hub_pull.form("hub.pull"):
    st.markdown(f"**{t('home.hub_load')}**")
    repo = st.text_input(t("home.hub_repo"), placeholder="owner/name", key="hub.pull.repo")
    revision = st.text_input(t("home.hub_revision"), key="hub.pull.rev")
    if st.form_submit_button(t("home.hub_load_button"), icon=":material/download:") and repo:
        with ui.user_errors(), st.spinner(t("home.hub_downloading")):
            from gm.hub import pull
            path = pull(repo.strip(), revision=revision.strip() or None, runs_dir=ui.runs_dir())
            ui.select_run(path)
            st.toast(t("home.hub_loaded", repo=repo, name=path.name))
            st.rerun()
current = ui.current_run()
with hub_push.form("hub.push"):
    st.markdown(f"**{t('home.hub_push')}**")
    st.caption(t("home.hub_current", name=current.name if current else t("home.none")))
    target = st.text_input(t("home.hub_repo"), placeholder="you/gm-" + (current.name if current else "run"),
                           key="hub.push.repo")
    token = st.text_input(t("home.hub_token"), type="password", key="hub.push.token")
    private = st.checkbox(t("home.hub_private"), key="hub.push.private")
    if st.form_submit_button(t("home.hub_push_button"), icon=":material/upload:", disabled=current is None) and target:
        with ui.user_errors(), st.spinner(t("home.hub_uploading")):
            from gm.hub import push
            url = push(current.path, target.strip(), private=private, token=token or None)
            st.success(t("home.hub_pushed", url=url))

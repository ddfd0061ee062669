import streamlit as st

from gm import i18n
from gm.registry import MODELS, ModelSpec
from pages import _ui as ui
from pages._cards import Card, gallery_html, grid_png

ui.entered_through_app()
t = ui.translator()

st.title(t("home.title"))
st.markdown(t("home.intro"))

st.subheader(t("home.start_heading"))
st.markdown(t("home.start_steps"))
if st.button(t("home.open_walkthrough"), icon=":material/school:", key="home.walkthrough"):
    st.switch_page("pages/walkthrough.py")


def showcase() -> dict:
    """Model name -> its shipped pretrained run (gm.pretrained.showcase_runs: the one named after the
    model when a model ships several, never a failure example). Only the shipped runs: a local or a
    visitor's run, aborted or not, never replaces them."""
    from gm.pretrained import default_dir, showcase_runs
    return showcase_runs(default_dir())


def measured(run) -> str | None:
    """The card's line of measured figures from the shipped run's metrics.json (MNIST GANs: held-out
    digits; translation runs: against the true counterparts)."""
    import json
    try:
        m = json.loads((run.path / "metrics.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if isinstance(m, dict) and all(isinstance(m.get(k), (int, float)) for k in
                                   ("target_accuracy", "gt_iou", "position_error_px")):   # translation runs
        return t("home.card_translation", accuracy=ui.n(m["target_accuracy"], ".0%"),
                 iou=ui.n(m["gt_iou"], ".2f"), position=ui.n(m["position_error_px"], ".2f"))
    if not isinstance(m, dict) or not all(isinstance(m.get(k), (int, float)) for k in
                                          ("recognisable_share", "recognisable_share_real", "classes_recognised")):
        return None
    diversity = m.get("within_class_diversity")
    return t("home.card_measured", recognisable=ui.n(m["recognisable_share"], ".0%"),
             real=ui.n(m["recognisable_share_real"], ".0%"), classes=ui.n(int(m["classes_recognised"])),
             diversity="—" if not isinstance(diversity, (int, float)) else ui.n(diversity, ".2f"))


def newest_grid(run):
    try:
        grids = run.sample_grids()
    except Exception:  # an unreadable samples folder hides the grid, never the page
        return None
    return grids[-1] if grids else None


def local_grids(runs: list) -> None:
    """The newest sample grid of the latest local runs, in their own section below the table."""
    found = [(run, grid) for run in reversed(runs) for grid in [newest_grid(run)] if grid][:6]
    if not found:
        return
    st.markdown(f"**{t('home.local_grids')}**")
    cols = st.columns(min(3, len(found)))
    for i, (run, (step, path)) in enumerate(found):
        cols[i % len(cols)].image(str(path), caption=t("home.grid_caption", who=run.name, step=step),
                                  width="stretch", output_format="PNG")


st.subheader(t("home.models_heading"))
shipped = showcase()


def card(spec: ModelSpec) -> Card:
    """The model's card, with its shipped run's newest grid and measured figures when it ships one."""
    run = shipped.get(spec.name)
    grid = newest_grid(run) if run else None
    image = grid_png(grid[1]) if grid else None
    return Card(spec.name, spec.dataset, t(f"model.{spec.name}"), image_png=image,
                image_caption=t("home.grid_caption", who=t("app.pretrained"), step=grid[0]) if image else "",
                figures=measured(run) if image else None)


st.html(gallery_html([card(spec) for spec in MODELS.values()], rtl=i18n.is_rtl(ui.lang())))

st.subheader(t("home.runs_heading"))
if ui.demo_mode():
    st.caption(t("demo.your_runs"))
runs = ui.local_runs()   # in the hosted demo: this visitor's own runs only
if not runs:
    st.info(t("home.no_runs"))
else:
    rows = []
    for run in runs:
        damage = run.damage()  # a damaged run is listed as such; the other rows are unaffected
        state = run.read_state() if damage is None else {}
        model = run.read_config()["model"] if damage is None or damage.file != "config.json" else "?"
        job = ui.find_job(run) if damage is None else None
        step = job.step if job is not None and job.active else (run.live_step(state) if state else None)
        rows.append({t("home.col_run"): run.name, t("home.col_model"): model,
                     t("home.col_status"): ui.run_status_label(run), t("home.col_step"): step,
                     t("home.col_of"): state.get("total_steps"), t("home.col_updated"): state.get("updated")})
    st.dataframe(ui.table_rows(rows), hide_index=True, width="stretch")
    local_grids(runs)

st.subheader(t("home.hub_heading"))
st.caption(t("home.hub_intro"))
hub_pull, hub_push = st.columns(2)
with hub_pull.form("hub.pull"):
    st.markdown(f"**{t('home.hub_load')}**")
    repo = st.text_input(t("home.hub_repo"), placeholder="owner/name", key="hub.pull.repo")
    revision = st.text_input(t("home.hub_revision"), key="hub.pull.rev")
    pull_token = st.text_input(t("home.hub_pull_token"), type="password", key="hub.pull.token")
    if st.form_submit_button(t("home.hub_load_button"), icon=":material/download:") and repo:
        with ui.user_errors(), st.spinner(t("home.hub_downloading")):
            from gm.hub import pull, run_name_for
            name = None
            if ui.demo_mode():  # visitors pulling the same repo each get their own run folder
                import secrets
                name = f"{run_name_for(repo.strip(), revision.strip() or None)[:90]}-{secrets.token_hex(3)}"
            # Only a token typed here: False tells the Hub client to send none (never $HF_TOKEN or
            # the server's cached login).
            path = pull(repo.strip(), revision=revision.strip() or None, runs_dir=ui.runs_dir(), name=name,
                        token=pull_token.strip() or False)
            ui.policy().claim(ui.owner(), path)
            ui.select_run(path)
            st.toast(t("home.hub_loaded", repo=repo, name=path.name))
            st.rerun()
current = ui.current_run()
if ui.demo_mode():
    with hub_push.container(border=True):
        st.markdown(f"**{t('home.hub_push')}**")
        st.caption(t("demo.no_push"))
else:
    with hub_push.form("hub.push"):
        st.markdown(f"**{t('home.hub_push')}**")
        st.caption(t("home.hub_current", name=current.name if current else t("home.none")))
        target = st.text_input(t("home.hub_repo"), placeholder="you/gm-" + (current.name if current else "run"),
                               key="hub.push.repo")
        token = st.text_input(t("home.hub_token"), type="password", key="hub.push.token")
        private = st.checkbox(t("home.hub_private"), key="hub.push.private")
        pushed = st.form_submit_button(t("home.hub_push_button"), icon=":material/upload:", disabled=current is None)
    if pushed and target:
        # The app pushes only with the token typed into this form, never $HF_TOKEN or the server's
        # cached login: whoever opens the app must not publish with the host's credentials.
        if not token.strip():
            hub_push.error(t("home.hub_token_needed"))
        else:
            with ui.user_errors(), st.spinner(t("home.hub_uploading")):
                from gm.hub import push
                url = push(current.path, target.strip(), private=private, token=token.strip())
                hub_push.success(t("home.hub_pushed", url=url))

import streamlit as st

from gm.registry import MODELS
from pages import _ui as ui

ui.entered_through_app()

st.title("gm — a lab for image generative models")
st.markdown(
    "Train a **VAE**, **β-VAE** or **ControlVAE** on dSprites and a **GAN**, **DCGAN**, **WGAN**, "
    "**WGAN-GP**, **SSGAN** or **ACGAN** on MNIST; watch them learn live, play with their latent "
    "space and measure them with FID."
)

st.subheader("Start here")
st.markdown(
    "1. **Train** — pick a model and press *Start* (the defaults run on a laptop CPU).\n"
    "2. **Monitor** — watch the losses and sample grids while it trains.\n"
    "3. **Explore** — drag latent sliders, traverse and interpolate.\n"
    "4. **Evaluate** — FID and mode coverage; **Compare** — runs side by side."
)

st.subheader("Models")
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
        st.caption(spec.blurb)
        run = latest_by_model.get(spec.name)
        grids = run.sample_grids() if run else []
        if grids:
            who = "pretrained" if ui.is_pretrained(run) else run.name
            st.image(str(grids[-1][1]), caption=f"{who}, step {grids[-1][0]}", width="stretch", output_format="PNG")

st.subheader("Runs on this machine")
runs = [r for r in runs if not ui.is_pretrained(r)]
if not runs:
    st.info("No runs yet. Start one on the **Train** page.")
else:
    rows = []
    for run in runs:
        state = run.read_state()
        try:
            model = run.read_config().get("model", "?")
        except Exception:
            model = "?"
        rows.append({"run": run.name, "model": model, "status": state.get("status"),
                     "step": state.get("step"), "of": state.get("total_steps"),
                     "updated": state.get("updated")})
    st.dataframe(rows, hide_index=True, width="stretch")

st.subheader("Hugging Face Hub")
st.caption("Weights travel as safetensors only (no pickle); configs are checked against the model before "
           "anything is written. Offline, the shipped pretrained runs above still work.")
hub_pull, hub_push = st.columns(2)
with hub_pull.form("hub.pull"):
    st.markdown("**Load from Hub**")
    repo = st.text_input("Repo id", placeholder="owner/name", key="hub.pull.repo")
    revision = st.text_input("Revision (optional)", key="hub.pull.rev")
    if st.form_submit_button("Load", icon=":material/download:") and repo:
        with ui.user_errors(), st.spinner("Downloading…"):
            from gm.hub import pull
            path = pull(repo.strip(), revision=revision.strip() or None, runs_dir=ui.runs_dir())
            ui.select_run(path)
            st.toast(f"Loaded {repo} as run '{path.name}'.")
            st.rerun()
current = ui.current_run()
with hub_push.form("hub.push"):
    st.markdown("**Push to Hub**")
    st.caption(f"Current run: {current.name if current else 'none'}")
    target = st.text_input("Repo id", placeholder="you/gm-" + (current.name if current else "run"),
                           key="hub.push.repo")
    token = st.text_input("Token (write access; default $HF_TOKEN; never stored)", type="password",
                          key="hub.push.token")
    private = st.checkbox("Private", key="hub.push.private")
    if st.form_submit_button("Push", icon=":material/upload:", disabled=current is None) and target:
        with ui.user_errors(), st.spinner("Uploading…"):
            from gm.hub import push
            url = push(current.path, target.strip(), private=private, token=token or None)
            st.success(f"Pushed to {url}")

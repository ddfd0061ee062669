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
runs = ui.all_runs()
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
            st.image(str(grids[-1][1]), caption=f"{run.name}, step {grids[-1][0]}", width="stretch", output_format="PNG")

st.subheader("Runs on this machine")
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

import numpy as np
import streamlit as st
import torch

from gm import gan_views
from gm.images import make_grid
from pages import _ui as ui

ui.entered_through_app()
t = ui.translator()

heading = st.empty()   # the title names what the run's model explores, once its config is read
heading.title(t("explore.title"))
run = ui.current_run()
if run is None:
    st.info(t("explore.no_run"))
    st.stop()

from gm.runs.checkpoint import latest_checkpoint  # noqa: E402

if latest_checkpoint(run.checkpoints_dir) is None and ui.is_active(run):
    st.info(t("explore.waiting", name=run.name))

    @st.fragment(run_every=ui.POLL_SECONDS)
    def wait_for_checkpoint() -> None:
        if latest_checkpoint(run.checkpoints_dir) is not None:
            st.rerun()

    wait_for_checkpoint()
    st.stop()

try:
    cfg = run.read_config()
    can = ui.capabilities(cfg)
    if "translates" in can and not can & {"encodes", "samples"}:
        heading.title(t("explore.title_translate"))
    if not can & {"encodes", "samples", "translates"}:
        st.info(t("explore.not_available", model=cfg.get("model")))
        st.stop()
    model = ui.inference_model(run)
except Exception as exc:  # GMError: no checkpoint yet / damaged run
    st.error(str(exc))
    st.stop()

st.caption(t("explore.caption", name=run.name, model=cfg.get("model")))


@st.fragment   # its pickers and number fields rerun this view only, not the page and sidebar
def explore_vae() -> None:
    from gm import vae_views as vv
    with ui.user_errors():
        data = ui.dataset(cfg["dataset"], cfg.get("data_dir"))
    kl_dims = next((r["kl_dims"] for r in reversed(run.read_metrics()) if isinstance(r.get("kl_dims"), list)),
                   None)
    d = model.latent_dim
    order = vv.dims_by_kl(kl_dims) if kl_dims else list(range(d))

    st.subheader(t("explore.encode_heading"))
    c1, c2 = st.columns([1, 3])
    index = int(c1.number_input(t("explore.image_index"), 0, len(data) - 1, 0, key=f"exp.idx.{run.name}"))
    image = data.take(torch.tensor([index]))
    mu, _ = vv.encode(model, image)

    @st.fragment
    def sliders() -> None:
        left, right = st.columns([3, 2])
        code = mu[0].clone()
        with left:
            for dim in order:
                active = kl_dims is None or kl_dims[dim] >= 0.1
                label = f"z{dim}" + (f" · KL {ui.n(kl_dims[dim], '.2f')}" if kl_dims else "") + \
                    ("" if active else f" · {t('explore.inactive')}")
                code[dim] = st.slider(label, -3.0, 3.0, float(np.clip(mu[0, dim], -3, 3)), 0.05,
                                      key=f"exp.z.{run.name}.{index}.{dim}")
        with right:
            original = make_grid(image.float() / data.max_value, 1, padding=0)
            ui.show_image(original, t("explore.original"), scale=4)
            st.image(vv.decode_png(model, code, scale=4), caption=t("explore.decoded"), output_format="PNG")

    with c2:
        sliders()

    st.subheader(t("explore.traversal_heading"))
    span = st.slider(t("explore.span"), 1.0, 4.0, 2.5, 0.5, key="exp.span")
    trav = vv.traversal(model, mu[0], kl_dims=kl_dims, span=span, steps=9)
    ui.show_image(trav.grid(), t("explore.traversal_caption"), scale=2)

    st.subheader(t("explore.interp_images"))
    c1, c2 = st.columns(2)
    a = int(c1.number_input(t("explore.from_image"), 0, len(data) - 1, 0, key="exp.ia"))
    b = int(c2.number_input(t("explore.to_image"), 0, len(data) - 1, len(data) // 2, key="exp.ib"))
    za, _ = vv.encode(model, data.take(torch.tensor([a])))
    zb, _ = vv.encode(model, data.take(torch.tensor([b])))
    ui.show_image(vv.interpolation_grid(model, za[0], zb[0], steps=10), scale=2)


@st.fragment   # its pickers and number fields rerun this view only, not the page and sidebar
def explore_gan() -> None:
    conditional = "conditional" in can
    c1, c2 = st.columns(2)
    seed = int(c1.number_input(t("explore.seed"), 0, 2**31 - 1, 0, key=f"exp.seed.{run.name}"))
    label = int(c2.selectbox(t("explore.class"), list(range(model.num_classes)), key="exp.cls")) if conditional else None
    dirs, sv = gan_views.principal_directions(model, k=5)
    z = gan_views.seed_latent(model, seed)

    @st.fragment
    def sliders() -> None:
        left, right = st.columns([3, 2])
        code = z.clone()
        with left:
            st.caption(t("explore.directions"))
            for i in range(dirs.shape[0]):
                a = st.slider(t("explore.direction", i=i + 1, sigma=float(sv[i])), -4.0, 4.0, 0.0, 0.1,
                              key=f"exp.dir.{run.name}.{seed}.{i}")
                code = code + a * dirs[i]
        with right:
            ui.show_image(make_grid(gan_views.generate(model, code, label), 1, padding=0),
                          t("explore.generated"), scale=6)

    sliders()
    st.subheader(t("explore.sweeps"))
    ui.show_image(gan_views.direction_grid(model, seed, k=5, label=label), scale=2)
    st.subheader(t("explore.interp_seeds"))
    c1, c2 = st.columns(2)
    s0 = int(c1.number_input(t("explore.from_seed"), 0, 2**31 - 1, seed, key="exp.s0"))
    s1 = int(c2.number_input(t("explore.to_seed"), 0, 2**31 - 1, seed + 1, key="exp.s1"))
    ui.show_image(gan_views.interpolation_grid(model, s0, s1, steps=10, label=label), scale=2)


@st.cache_resource(show_spinner=False, max_entries=32)
def _translations(path: str, checkpoint: str | None, source: str, targets: tuple[str, ...], picks: tuple[int, ...],
                  *, _model, _pool, _split: str):
    """Keyed by the run, its checkpoint and the choice; the model and the source pool (unhashed, the
    leading underscore) follow from the run."""
    from gm import translate_views as tv
    chosen = torch.tensor(picks)
    images = tv.as_unit(_pool.take(chosen), _pool.max_value)
    shown = tv.translate(_model, images, source, list(targets))
    return images, shown, tv.attach_truth(shown, _pool, chosen, _split, _pool.max_value)


@st.fragment   # its pickers and number fields rerun this view only, not the page and sidebar
def explore_translation() -> None:
    from gm import translate_views as tv
    split = model.config.domain_split()
    if not split:
        st.info(t("explore.translate_no_domains", split="—"))
        return
    # One dataset per domain, from each split the model's domains come from (a StarGAN with the
    # mask vector has two).
    split_of = {d: model.domain_split_of(d) for d in model.domains}
    data = {d: ds for sp in dict.fromkeys(split_of.values())
            for d, ds in ui.domain_datasets(cfg["dataset"], cfg.get("data_dir"), sp).items() if split_of.get(d) == sp}
    routes = {s: [d for d in ds if d in data] for s, ds in tv.targets_by_source(model).items() if s in data}
    routes = {s: ds for s, ds in routes.items() if ds}
    if not routes:
        st.info(t("explore.translate_no_domains", split=split))
        return
    name = ui.domain_namer()
    st.subheader(t("explore.translate_heading"))
    st.caption(t("explore.translate_intro"))
    c1, c2 = st.columns([1, 2])
    source = ui.localized(st.selectbox, t("explore.source_domain"), list(routes), key=f"exp.src.{run.name}",
                          where=c1, format_func=name)
    targets = c2.multiselect(t("explore.target_domains"), routes[source], default=routes[source],
                             key=f"exp.to.{run.name}.{source}@{ui.lang()}", format_func=name)
    pool = data[source]
    index_key = f"exp.tidx.{run.name}.{source}"

    def translated(source: str, targets: list[str], picks: torch.Tensor):
        """(images, their translations, whether the dataset knows the true counterparts), shared by
        every visitor for the last choices: coming back to this page, or a second visitor opening
        the shipped run, redraws without the networks."""
        return _translations(str(run.path), ui.checkpoint_name(run), source, tuple(targets), tuple(picks.tolist()),
                             _model=model, _pool=pool, _split=split_of[source])

    def pick_random() -> None:
        st.session_state[index_key] = int(np.random.default_rng().integers(len(pool)))

    c1, c2 = st.columns([4, 1], vertical_alignment="bottom")
    index = int(c1.slider(t("explore.source_image", n=len(pool)), 0, len(pool) - 1, 0, key=index_key))
    c2.button(t("explore.random_image"), key=f"exp.trand.{run.name}", on_click=pick_random,
              icon=":material/casino:")
    if not targets:
        st.info(t("explore.pick_target"))
        return
    chosen = torch.tensor([index])
    image, shown, has_truth = translated(source, targets, chosen)
    scale = max(2, 192 // image.shape[-1])
    for tr in shown:
        cols = st.columns(4)
        with cols[0]:
            ui.show_image(make_grid(image, 1, padding=0), t("explore.source_caption", domain=name(source)), scale=scale)
        with cols[1]:
            ui.show_image(make_grid(tr.translated, 1, padding=0), t("explore.translated_caption", domain=name(tr.target)),
                          scale=scale)
        with cols[2]:
            ui.show_image(make_grid(tr.reconstructed, 1, padding=0),
                          t("explore.cycle_caption", domain=name(source), l1=tv.difference(tr.reconstructed, image)),
                          scale=scale)
        with cols[3]:
            if tr.truth is not None:
                ui.show_image(make_grid(tr.truth, 1, padding=0),
                              t("explore.truth_caption", domain=name(tr.target), iou=tv.iou(tr.translated, tr.truth)),
                              scale=scale)
            else:
                st.caption(t("explore.no_truth"))
    if not has_truth:
        st.caption(t("explore.no_truth_dataset", dataset=cfg["dataset"]))

    st.subheader(t("explore.translate_batch"))
    seed = int(st.number_input(t("explore.seed"), 0, 2**31 - 1, 0, key=f"exp.tseed.{run.name}"))
    picks = torch.randperm(len(pool), generator=torch.Generator().manual_seed(seed))[:8]
    images, batch, _ = translated(source, targets, picks)
    ui.show_image(tv.batch_grid(images, batch), t("explore.batch_caption", source=name(source),
                                                  targets=", ".join(name(d) for d in targets)), scale=2)


with ui.user_errors():
    if "encodes" in can:
        explore_vae()
    elif "translates" in can:
        explore_translation()
    else:
        explore_gan()

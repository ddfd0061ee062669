"""The classroom walkthrough: gm.walkthrough builds each step's blocks, this page draws them."""

from pathlib import Path

import streamlit as st

from gm import i18n
from gm import walkthrough as wt
from gm.runs.folder import RunFolder
from gm.walkthrough.demos import pixel_shuffle_figure
from pages import _ui as ui

ui.entered_through_app()
t = ui.translator()

st.title(t("walkthrough.page.title"))
st.caption(t("walkthrough.page.intro"))

STEPS = wt.steps_in_order()
if st.session_state.get("wt.step") not in STEPS:
    asked = st.query_params.get("step")
    st.session_state["wt.step"] = asked if asked in STEPS else STEPS[0]
pending = st.session_state.pop("wt.step_pending", None)   # set by Previous / Next before a rerun
if pending in STEPS:
    st.session_state["wt.step"] = pending
LANG = ui.lang()
step = ui.localized(st.selectbox, t("walkthrough.page.step"), STEPS, key="wt.step",
                    format_func=lambda k: wt.step_title(k, LANG))
if st.query_params.get("step") != step:
    st.query_params["step"] = step   # the address follows the step, so a link opens this very step


# ---- which run plays each role ---------------------------------------------------------------------
def _choices(role: str) -> list[str]:
    return [str(r.path) for r in wt.candidates(role, ui.runs_dir()) if ui.visible(r)]


def runs_for(roles) -> dict:
    """Role -> RunFolder: the user's pick (session state), else the pretrained / newest match."""
    out = {}
    for role in roles:
        options = _choices(role)
        picked = st.session_state.get(f"wt.role.{role}")
        path = picked if picked in options else (options[0] if options else None)
        out[role] = RunFolder(path) if path else None
    return out


roles = wt.STEP_BY_KEY[step].roles
with st.expander(t("walkthrough.page.runs_heading")):
    cols = st.columns(min(3, max(1, len(roles))))
    for i, role in enumerate(roles):
        options = _choices(role)
        if options:
            key = f"wt.role.{role}"
            if st.session_state.get(key) not in options:
                st.session_state[key] = options[0]
            labels = {p: ui.run_label(RunFolder(p)) for p in options}
            ui.localized(st.selectbox, t("walkthrough.page.source", label=t(f"walkthrough.role.{role}")), options,
                         key=key, format_func=labels.get, where=cols[i % len(cols)])


def _signature(runs: dict) -> tuple:
    """What a step's content depends on: each run's newest checkpoint, metrics and evaluations."""
    sig = []
    for role, run in sorted(runs.items()):
        if run is None:
            sig.append((role, None))
            continue
        stamp = tuple(p.stat().st_mtime_ns if p.exists() else 0
                      for p in (run.path / "state.json", run.path / "eval.jsonl", run.metrics_path))
        sig.append((role, str(run.path), stamp))
    return tuple(sig)


@st.cache_resource(show_spinner=False, max_entries=64)
def _blocks(step: str, lang: str, signature: tuple, _runs: dict) -> list:
    ctx = wt.Context(lang, _runs, ui.inference_model, ui.dataset, cache=_coverage_cache())
    return wt.build(step, ctx)


@st.cache_resource(show_spinner=False)
def _coverage_cache() -> dict:
    return {}   # mode-coverage histograms, keyed by run and step (sampling 500 digits is not free)


# ---- drawing ------------------------------------------------------------------------------------------
def draw_metrics(block, runs: dict) -> None:
    cols = st.columns(min(4, len(block.metrics)))
    for i, m in enumerate(block.metrics):
        cols[i % len(cols)].metric(m.label, m.value, help=m.help or None)
    if block.role:
        measure_panel(block.role.split(","), runs)


def _inception_ready() -> bool:
    from gm.metrics.inception import find_weights
    try:
        find_weights(download=False)
        return True
    except Exception:  # no weights here: the classifier metrics still work offline
        return False


def measure_panel(roles: list[str], runs: dict) -> None:
    """Measure FID (and the other evaluations) of the runs in a FID panel, in the background; with
    pytorch-fid's Inception weights present, the Inception FID the assignment asks for too."""
    runner = ui.tasks()
    c1, c2 = st.columns([1, 3])
    n = c1.select_slider(t("walkthrough.page.measure_n"), ui.fid_sizes(), value=1000, key=f"wt.n.{'.'.join(roles)}")
    active = [r for r in roles if runs.get(r) is not None and runner.get(ui.task_key(runs[r]))
              and runner.get(ui.task_key(runs[r])).active]
    if c2.button(t("walkthrough.page.measure"), key=f"wt.measure.{'.'.join(roles)}", disabled=bool(active)):
        from gm.metrics.evaluate import evaluate
        with ui.user_errors():
            inception = _inception_ready()
            batch = []
            for role in roles:
                run = runs.get(role)
                if run is None:
                    continue

                record = ui.records_evaluations(run)

                def job(progress, cancel, path=str(run.path), n=n, inception=inception, record=record):
                    return evaluate(path, n=n, inception=inception, progress=progress, cancel=cancel,
                                    record=record)

                batch.append((ui.task_key(run), f"evaluate {run.name}", job))
            ui.start_tasks(batch)
            st.rerun()

    @st.fragment(run_every=ui.POLL_SECONDS if active else None)
    def progress() -> None:
        still = False
        for role in roles:
            run = runs.get(role)
            task = runner.get(ui.task_key(run)) if run is not None else None
            if task is None:
                continue
            if task.active:
                still = True
                st.progress(task.fraction, text=t("walkthrough.page.measure_running",
                                                  label=t(f"walkthrough.role.{role}"), done=task.done,
                                                  total=task.total or 1))
            elif task.status == "failed":
                st.error(task.error)
            elif task.status == "done":
                st.caption(t("walkthrough.page.measure_done"))
        if active and not still:
            st.rerun()   # finished: a full rerun re-reads eval.jsonl

    progress()


def draw_train(block) -> None:
    from gm.walkthrough import ROLES
    role = ROLES[block.role]
    with st.container(border=True):
        st.markdown(block.text)
        started = st.session_state.pop("wt.started", None)
        if started:
            st.success(t("walkthrough.page.started", name=started))
        c1, c2 = st.columns([1, 3], vertical_alignment="bottom")
        limits = ui.demo_limits()
        most = limits.max_steps if limits else None
        steps = int(c1.number_input(t("walkthrough.page.steps"), min_value=1, max_value=most, step=100,
                                    value=min(role.steps, most or role.steps), key=f"wt.steps.{block.role}"))
        if c2.button(t("walkthrough.page.start"), key=f"wt.train.{block.role}", icon=":material/play_arrow:"):
            with ui.user_errors():
                job = ui.policy().start_run(ui.owner(), role.model, dict(role.overrides), steps=steps,
                                            device="auto", runs_dir=ui.runs_dir())
                # The new run becomes this step's run and the app's current run: the student watches it.
                st.session_state[f"wt.role.{block.role}"] = job.key
                ui.select_run(job.key)
                st.session_state["wt.started"] = job.name
                st.rerun()


def draw_demo(block) -> None:
    c1, c2 = st.columns(2)
    r = int(c1.segmented_control(t("walkthrough.gan.demo_r"), [2, 3], default=2, key="wt.ps.r") or 2)
    channels = int(c2.segmented_control(t("walkthrough.gan.demo_channels"), [1, 2], default=1, key="wt.ps.c") or 1)
    fig = block.figure if (r, channels) == (2, 1) else pixel_shuffle_figure(
        r, channels, 2, input_title=t("walkthrough.gan.demo_input"), output_title=t("walkthrough.gan.demo_output"),
        number=ui.n)
    st.plotly_chart(fig, width="stretch", key=f"wt.{block.key}")
    st.caption(block.caption)


def draw_image(block, where=st) -> None:
    if isinstance(block.image, Path):   # a saved sample grid
        where.image(str(block.image), caption=block.caption, width="stretch", output_format="PNG")
    else:
        from gm.images import to_png_bytes
        where.image(to_png_bytes(block.image, 3), caption=block.caption, width="stretch", output_format="PNG")


def _tall(block) -> bool:
    """Whether an image block is taller than it is wide."""
    if isinstance(block.image, Path):
        try:
            from PIL import Image
            with Image.open(block.image) as im:
                return im.height > im.width
        except OSError:
            return False
    return block.image.shape[0] > block.image.shape[1]


def draw(blocks, runs: dict) -> None:
    i = 0
    while i < len(blocks):
        block = blocks[i]
        if block.kind in ("image", "chart"):   # runs of grids / charts go side by side
            group = [block]
            while i + len(group) < len(blocks) and blocks[i + len(group)].kind == block.kind:
                group.append(blocks[i + len(group)])
            width = min(len(group), 3 if block.kind == "image" else 2)
            if block.kind == "image" and len(group) == 1 and _tall(block):
                width = 2   # a lone tall grid (StarGAN's) at half width, not a page of sprites
            for start in range(0, len(group), width):
                cols = st.columns(width)
                for col, item in zip(cols, group[start:start + width]):
                    if item.kind == "image":
                        draw_image(item, col)
                    else:
                        col.plotly_chart(item.figure, width="stretch", key=f"wt.{item.key}")
            i += len(group)
            continue
        if block.kind == "markdown":
            st.markdown(block.text)
        elif block.kind == "equation":
            st.latex(block.text)
        elif block.kind == "table":
            st.caption(block.caption)
            st.dataframe(ui.table_rows(block.rows), hide_index=True, width="stretch", key=f"wt.{block.key}")
        elif block.kind == "metrics":
            draw_metrics(block, runs)
        elif block.kind == "demo":
            draw_demo(block)
        elif block.kind == "train":
            draw_train(block)
        elif block.kind == "note":
            (st.warning if block.level == "warning" else st.info)(block.text)
        i += 1


runs = runs_for(roles)
st.header(wt.step_title(step, LANG))
with ui.user_errors(), st.spinner():
    blocks = _blocks(step, LANG, _signature(runs), runs)
draw(blocks, runs)

# ---- previous / next (mirrored in a right-to-left language: "next" points left) ----------------------
index = STEPS.index(step)
rtl = i18n.is_rtl(LANG)
left, _, right = st.columns([1, 4, 1])
prev_col, next_col = (right, left) if rtl else (left, right)
prev_label = t("walkthrough.page.previous") + " →" if rtl else "← " + t("walkthrough.page.previous")
next_label = "← " + t("walkthrough.page.next") if rtl else t("walkthrough.page.next") + " →"
if index > 0 and prev_col.button(prev_label, key="wt.prev", width="stretch"):
    st.session_state["wt.step_pending"] = STEPS[index - 1]
    st.rerun()
if index < len(STEPS) - 1 and next_col.button(next_label, key="wt.next", width="stretch"):
    st.session_state["wt.step_pending"] = STEPS[index + 1]
    st.rerun()


# ---- export -------------------------------------------------------------------------------------------
st.divider()
st.subheader(t("walkthrough.page.export_heading"))
st.caption(t("walkthrough.page.export_intro"))
if st.button(t("walkthrough.page.prepare"), key="wt.prepare", icon=":material/download:"):
    from gm import export
    with st.spinner(t("walkthrough.page.preparing")), ui.user_errors():
        every = runs_for(wt.ROLES)
        built = [(s, _blocks(s, LANG, _signature({r: every[r] for r in wt.STEP_BY_KEY[s].roles}),
                              {r: every[r] for r in wt.STEP_BY_KEY[s].roles})) for s in STEPS]
        st.session_state["wt.export"] = {
            "lang": LANG,
            "html": export.walkthrough_html(built, LANG),
            "zip": export.walkthrough_zip(built, LANG),
        }
ready = st.session_state.get("wt.export")
if ready and ready["lang"] == LANG:
    c1, c2 = st.columns(2)
    c1.download_button(t("walkthrough.page.download_html"), ready["html"], file_name=f"gm-walkthrough-{ready['lang']}.html",
                       mime="text/html", key="wt.dl.html", icon=":material/description:")
    c2.download_button(t("walkthrough.page.download_zip"), ready["zip"], file_name=f"gm-walkthrough-{ready['lang']}.zip",
                       mime="application/zip", key="wt.dl.zip", icon=":material/folder_zip:")

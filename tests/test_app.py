"""AppTest tests of every page: no run, a finished run, a running run; the train form starts a job;
latent sliders change the decoded image; compare overlays two runs."""

from __future__ import annotations

import time

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from gm.config import with_overrides
from gm.registry import get_spec
from gm.runs.loop import new_session, train
from tests.conftest import REPO

PAGES = ["pages/home.py", "pages/train.py", "pages/monitor.py", "pages/explore.py", "pages/evaluate.py",
         "pages/compare.py", "pages/playground.py"]
TINY = {"width": "0.25", "batch_size": "8", "log_every": "2", "sample_every": "5", "kl_dims_every": "4"}


def tiny_config(model: str = "vae", **extra):
    return with_overrides(get_spec(model).config_cls(), {**TINY, **extra}, model=model)


@pytest.fixture
def app_runs(tmp_path, monkeypatch):
    runs = tmp_path / "runs"
    runs.mkdir()
    monkeypatch.setenv("GM_RUNS_DIR", str(runs))
    yield runs
    # cache_resource objects (the job manager and its threads) live for the whole process.
    from pages import _ui
    _ui.manager().shutdown(timeout=60)
    st.cache_resource.clear()


def finished_run(runs, name="done", model="vae", steps=10, **extra):
    session = new_session(model, tiny_config(model, **extra), runs_dir=runs, name=name, device="cpu",
                          steps=steps)
    assert train(session) == "finished"
    return session.run


def open_page(page: str, run_path=None, state: dict | None = None) -> AppTest:
    """A fresh browser session of the app on `page`, with `run_path` picked in the sidebar and any
    other session_state values in `state`; fails on an exception."""
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=180)
    if run_path is not None:
        at.session_state["run"] = str(run_path)
    for key, value in (state or {}).items():
        at.session_state[key] = value
    at.run()
    if page != "pages/home.py":
        at.switch_page(page)
        at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def image_urls(at: AppTest) -> list[str]:
    return [img.url for el in at.get("image") for img in el.proto.imgs]


def captions(at: AppTest) -> list[str]:
    """The images' captions."""
    return [img.caption for el in at.get("image") for img in el.proto.imgs]


@pytest.mark.parametrize("page", PAGES)
def test_pages_render_without_runs(page, app_runs):
    at = open_page(page)
    assert at.title and not at.error


@pytest.mark.parametrize("page", PAGES)
def test_pages_render_with_a_finished_run(page, app_runs):
    run = finished_run(app_runs)
    at = open_page(page, run.path)
    assert not at.error, [e.value for e in at.error]
    if page == "pages/monitor.py":
        charts = at.get("plotly_chart")
        assert len(charts) >= 4  # KL, beta, recon, loss (+ KL per dim)
    if page == "pages/home.py":
        assert any("done" in str(row) for row in at.dataframe[0].value.to_dict("records"))


def test_pages_render_while_a_run_trains(app_runs):
    from pages import _ui
    job = _ui.manager().start_run("vae", tiny_config(checkpoint_every="5"), steps=100_000, device="cpu",
                                  runs_dir=app_runs, name="live")
    try:
        deadline = time.monotonic() + 120
        while _ui.manager().get(job.key).step < 6 and time.monotonic() < deadline:
            time.sleep(0.2)
        for page in PAGES:
            at = open_page(page, job.key)
            assert not at.error, (page, [e.value for e in at.error])
        at = open_page("pages/train.py", job.key)
        assert any(b.label == "Pause" for b in at.button) and any(b.label == "Stop" for b in at.button)
        next(b for b in at.button if b.label == "Stop").click().run()
        info = _ui.manager().wait(job.key, timeout=120)
        assert info.status == "stopped"
    finally:
        _ui.manager().stop(job.key)


def test_monitor_gains_points_on_rerun(app_runs):
    from gm.runs.folder import RunFolder
    run = finished_run(app_runs)
    at = open_page("pages/monitor.py", run.path)
    before = len(at.get("plotly_chart")[0].proto.spec)
    RunFolder(run.path).append_metrics([{"step": 12, "epoch": 0.1, "time": 9.0, "loss": 500.0, "kl": 3.0,
                                         "recon": 490.0, "beta": 1.0}])
    at.run()  # run_every never ticks in AppTest: a rerun stands in for the poll
    assert len(at.get("plotly_chart")[0].proto.spec) > before


def test_train_form_starts_a_job(app_runs):
    from pages import _ui
    at = open_page("pages/train.py")
    at.selectbox(key="train.model@en").set_value("vae").run()   # choice widgets are keyed per language
    at.number_input(key="cfg.vae.width").set_value(0.25)
    at.number_input(key="cfg.vae.batch_size").set_value(8)
    at.text_input[0].set_value("from-form")
    next(b for b in at.button if b.label == "Start training").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    jobs = _ui.manager().jobs()
    assert [j.name for j in jobs] == ["from-form"]
    assert at.session_state["run"] == jobs[0].key
    _ui.manager().stop(jobs[0].key)
    assert _ui.manager().wait(jobs[0].key, timeout=120).status in ("stopped", "finished")


def test_latent_slider_changes_the_decoded_image(app_runs):
    run = finished_run(app_runs)
    at = open_page("pages/explore.py", run.path)
    before = image_urls(at)
    at.slider[0].set_value(2.9).run()
    after = image_urls(at)
    assert not at.exception
    assert before != after and len(before) == len(after)


def test_compare_overlays_two_runs(app_runs):
    a = finished_run(app_runs, "a")
    b = finished_run(app_runs, "b", seed="1")
    at = open_page("pages/compare.py", a.path)
    at.multiselect(key="cmp.runs").set_value([str(a.path), str(b.path)]).run()
    charts = at.get("plotly_chart")
    assert charts
    import json
    spec = json.loads(charts[0].proto.spec)
    names = {t.get("name") for t in spec["data"] if t.get("showlegend", True) is not False}
    assert {"a", "b"} <= names


def test_train_form_offers_processes_and_monitor_says_how_many_trained_a_run(app_runs):
    run = finished_run(app_runs)
    at = open_page("pages/train.py")
    field = next(n for n in at.number_input if n.label == "Processes")
    assert field.value == 1 and not field.disabled
    from gm.runs.folder import RunFolder
    RunFolder(run.path).write_state(processes=2)   # as torchrun's rank 0 records it
    at = open_page("pages/monitor.py", run.path)
    assert any("trained on 2 processes (torchrun)" in c.value for c in at.caption)


def test_home_shows_the_live_step_of_a_run_another_process_trains(app_runs):
    from gm.runs.folder import RunFolder
    run = finished_run(app_runs, steps=10)
    folder = RunFolder(run.path)
    # As a CLI or torchrun process leaves it mid-run: state.json at the last checkpoint (step 10),
    # metrics logged since, and a torn last line.
    folder.write_state(status="running", step=10, total_steps=100)
    folder.append_metrics([{"step": 37, "epoch": 0.5, "time": 9.0, "loss": 1.0, "kl": 1.0, "recon": 1.0,
                            "beta": 1.0}])
    with open(folder.metrics_path, "a") as fh:
        fh.write('{"step": 4')
    at = open_page("pages/home.py")
    row = next(r for r in at.dataframe[0].value.to_dict("records") if r["run"] == "done")
    assert row["step"] == 37
    assert folder.live_step({"status": "finished", "step": 10}) == 10   # a finished run: its state


def test_train_form_counts_in_the_epochs_typed(app_runs):
    """Choosing epochs relabels the length field at once, and the number typed is the one trained
    (the radio used to sit inside the form: a typed 2 started a 5-epoch run)."""
    from gm.data import load_dataset
    from gm.runs.session import steps_for_epochs
    from pages import _ui
    at = open_page("pages/train.py")
    at.selectbox(key="train.model@en").set_value("vae").run()
    at.radio(key="train.unit@en").set_value("epochs").run()
    field = at.number_input(key="train.length.epochs")
    assert field.label == "epochs" and field.value == 5
    field.set_value(2)
    at.number_input(key="cfg.vae.width").set_value(0.25)
    at.number_input(key="cfg.vae.batch_size").set_value(64)
    next(b for b in at.button if b.label == "Start training").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    job = _ui.manager().jobs()[0]
    _ui.manager().stop(job.key)
    n = len(load_dataset("dsprites", None))
    assert job.total_steps == steps_for_epochs(2, n, 64)
    _ui.manager().wait(job.key, timeout=120)


def _training_job(manager, runs, name: str):
    """A tiny VAE job that trains until stopped, once it has taken 3 steps."""
    job = manager.start_run("vae", tiny_config(), steps=100_000, device="cpu", runs_dir=runs, name=name)
    deadline = time.monotonic() + 120
    while manager.get(job.key).step < 3 and time.monotonic() < deadline:
        time.sleep(0.1)
    return job


def test_monitor_pauses_continues_and_stops_the_job_it_shows(app_runs):
    from pages import _ui
    manager = _ui.manager()
    job = _training_job(manager, app_runs, "watched")
    try:
        at = open_page("pages/monitor.py", job.key)
        next(b for b in at.button if b.label == "Pause").click().run()
        assert manager.wait(job.key, ("paused",), timeout=60).status == "paused"
        at.run()
        assert [b.label for b in at.button if b.label in ("Pause", "Continue", "Stop")] == ["Continue", "Stop"]
        next(b for b in at.button if b.label == "Continue").click().run()
        assert manager.wait(job.key, ("running",), timeout=60).status == "running"
        at.run()
        next(b for b in at.button if b.label == "Stop").click().run()
        assert manager.wait(job.key, timeout=60).status == "stopped"
        at.run()
        assert not [b for b in at.button if b.label in ("Pause", "Continue", "Stop")]
    finally:
        manager.stop(job.key)


def test_monitor_shows_live_samples_and_steps_a_paused_job_one_step_at_a_time(app_runs):
    """GAN Lab's liveness: samples drawn from the model in memory while it trains (no checkpoint
    needed), and Step on a paused job: one step, its chart point and its picture, still paused."""
    from pages import _ui
    manager = _ui.manager()
    job = _training_job(manager, app_runs, "live")
    try:
        at = open_page("pages/monitor.py", job.key)
        assert any(h.value == "Live samples" for h in at.subheader)
        deadline = time.monotonic() + 30
        while not any("the same fixed noise" in c for c in captions(at)) and time.monotonic() < deadline:
            time.sleep(0.3)
            at.run()   # run_every never ticks in AppTest: a rerun stands in for the poll
        assert any("the same fixed noise" in c for c in captions(at))
        assert not [b for b in at.button if b.label == "Step"]      # running: no single steps
        next(b for b in at.button if b.label == "Pause").click().run()
        paused = manager.wait(job.key, ("paused",), timeout=60)
        at.run()
        next(b for b in at.button if b.label == "Step").click().run()
        assert not at.exception and not at.error, [e.value for e in at.error]
        after = manager.get(job.key)
        assert after.status == "paused" and after.step == paused.step + 1
        assert any(c.startswith(f"step {paused.step + 1:,} · the same fixed noise") for c in captions(at))
    finally:
        manager.stop(job.key)
        manager.wait(job.key, timeout=60)


@pytest.mark.parametrize(("field", "value", "message"), [
    ("train.length.steps", 0, "The number of steps must be at least 1; got 0."),
    ("cfg.vae.lr", -1.0, "'lr' must be at least 1e-07; got -1.0."),
    ("cfg.vae.batch_size", 100000, "'batch_size' must be at most 4096; got 100000."),  # in the collapsed section
])
def test_train_form_says_which_value_is_wrong_instead_of_doing_nothing(app_runs, field, value, message):
    """Out-of-range values used to turn a field red while Start silently did nothing."""
    from pages import _ui
    at = open_page("pages/train.py")
    at.selectbox(key="train.model@en").set_value("vae").run()
    at.number_input(key=field).set_value(value)
    next(b for b in at.button if b.label == "Start training").click().run()
    assert not at.exception
    assert [e.value for e in at.error] == [message]
    assert _ui.manager().jobs() == []


def test_evaluate_says_why_inception_is_off_without_server_paths_or_flags(app_runs, tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))   # no Inception weights there
    run = finished_run(app_runs)
    at = open_page("pages/evaluate.py", run.path)
    notes = [c.value for c in at.caption if "Inception" in c.value]
    assert notes and "which this server does not have" in notes[0]
    assert "--" not in notes[0] and str(tmp_path) not in notes[0]


def test_compare_names_metrics_offers_log_y_and_says_which_run_a_chart_leaves_out(app_runs, mnist_dir):
    import json
    vae = finished_run(app_runs, "a-vae")
    gan_config = with_overrides(get_spec("gan").config_cls(), {"width": "0.25", "batch_size": "8", "log_every": "2"},
                                model="gan")
    session = new_session("gan", gan_config, runs_dir=app_runs, name="b-gan", device="cpu", steps=4,
                          data_dir=str(mnist_dir))
    assert train(session) == "finished"
    gan = session.run
    at = open_page("pages/compare.py", vae.path)
    at.multiselect(key="cmp.runs").set_value([str(vae.path), str(gan.path)]).run()
    first = at.selectbox(key="cmp.a")
    assert first.value == "kl" and first.format_func("kl") != "kl"          # a name, not the raw key
    assert any("Not on this chart: b-gan" in c.value for c in at.caption)   # the GAN logs no KL
    at.toggle(key="cmp.log").set_value(True).run()
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert spec["layout"]["yaxis"]["type"] == "log"


def test_walkthrough_address_follows_the_step_and_train_it_yourself_selects_the_new_run(app_runs):
    from pages import _ui
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=180)
    at.session_state["wt.step"] = "vae"
    at.run()
    at.switch_page("pages/walkthrough.py").run()
    assert not at.exception and at.query_params["step"] in ("vae", ["vae"])
    at.selectbox(key="wt.step@en").set_value("controlvae").run()
    assert at.query_params["step"] in ("controlvae", ["controlvae"])   # a link to this step can be shared
    start = next(b for b in at.button if (b.key or "").startswith("wt.train."))
    role = start.key.split("wt.train.", 1)[1]
    at.number_input(key=f"wt.steps.{role}").set_value(2)
    start.click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    job = _ui.manager().jobs()[0]
    try:
        assert at.session_state[f"wt.role.{role}"] == job.key        # the step shows the new run
        assert at.session_state["run"] == job.key                    # and so does every other page
        assert any(job.name in s.value for s in at.success)
    finally:
        _ui.manager().stop(job.key)
        _ui.manager().wait(job.key, timeout=120)


def test_playground_steps_and_a_new_loss_starts_again_with_its_recipe(app_runs):
    at = open_page("pages/playground.py")
    runner = at.session_state["pg.runner"]
    assert runner.paused and runner.playground.steps == 0
    next(b for b in at.button if b.label == "Step").click().run()
    assert runner.playground.steps == 1 and runner.paused
    at.selectbox(key="pg.loss@en").set_value("wgan_gp").run()
    assert not at.exception, [e.value for e in at.exception]
    playground = at.session_state["pg.runner"].playground
    assert playground.steps == 0 and playground.config.loss == "wgan_gp" and playground.config.d_steps == 5
    assert at.select_slider(key="pg.d_steps").value == 5      # the fields show the new recipe
    at.selectbox(key="pg.dist@en").set_value("spiral").run()
    assert at.session_state["pg.runner"].playground.distribution.name == "spiral"
    assert not [m for m in at.metric if m.label == "Modes covered"]   # a spiral has no modes to count

"""The hosted demo (GM_DEMO=1): each browser session owns its jobs, caps, reaping of a gone
visitor's jobs, Home's pretrained showcase, and Hub tokens that never come from the server.

DemoPolicy is tested against a fake job manager and a fake clock; the pages with AppTest sessions
that share the process-wide job manager (st.cache_resource), as two browser tabs would.
"""

from __future__ import annotations

import re
import threading
import time
import tokenize
from dataclasses import dataclass
from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from gm.demo import DemoLimits, DemoPolicy, demo_enabled
from gm.errors import GMError
from gm.runs.folder import RunFolder
from tests.conftest import REPO
from tests.test_app import open_page


# ---- a fake job manager and clock ------------------------------------------------------------------
@dataclass(frozen=True)
class Info:
    key: str
    name: str
    status: str = "running"
    queue_position: int | None = None

    @property
    def active(self) -> bool:
        return self.status in ("queued", "running", "paused")


class FakeManager:
    """JobManager's interface, in memory: one running slot, the rest queued in order."""

    def __init__(self, tmp: Path, slots: int = 1, start_delay: float = 0.0) -> None:
        self.tmp, self.slots, self.start_delay = tmp, slots, start_delay
        self.status: dict[str, str] = {}
        self.calls: list[tuple[str, str]] = []
        self._lock = threading.Lock()
        self._n = 0

    def _info(self, key: str) -> Info:
        queued = [k for k, s in self.status.items() if s == "queued"]
        return Info(key, Path(key).name, self.status[key], queued.index(key) if key in queued else None)

    def _queue(self, key: str) -> Info:
        busy = sum(1 for s in self.status.values() if s in ("running", "paused"))
        self.status.pop(key, None)
        self.status[key] = "running" if busy < self.slots else "queued"
        return self._info(key)

    def start_run(self, model, config=None, *, steps=None, epochs=None, device="auto", runs_dir=None,
                  name=None, **kwargs):
        time.sleep(self.start_delay)
        with self._lock:
            self._n += 1
            key = str((self.tmp / (name or f"{model}-{self._n}")).resolve())
            self.calls.append(("start", key))
            return self._queue(key)

    def resume_run(self, run_dir, *, steps=None, epochs=None, device=None, overrides=None, **kwargs):
        key = str(Path(run_dir).resolve())
        self.calls.append(("resume", key))
        return self._queue(key)

    def jobs(self):
        return [self._info(k) for k in self.status]

    def find(self, run_dir):
        key = str(Path(run_dir).resolve())
        return self._info(key) if key in self.status else None

    def pause(self, key):
        key = str(Path(key).resolve())
        self.calls.append(("pause", key))
        self.status[key] = "paused"
        return self._info(key)

    def unpause(self, key):
        key = str(Path(key).resolve())
        self.calls.append(("unpause", key))
        self.status[key] = "running"
        return self._info(key)

    def stop(self, key):
        key = str(Path(key).resolve())
        self.calls.append(("stop", key))
        self.status[key] = "stopped"
        queued = [k for k, s in self.status.items() if s == "queued"]
        if queued:
            self.status[queued[0]] = "running"
        return self._info(key)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def demo(tmp_path, clock=None, connected=None, manager=None, **limits):
    manager = manager or FakeManager(tmp_path)
    rules = DemoPolicy(manager, DemoLimits(**limits), clock=clock or Clock(), connected=connected)
    return rules, manager


# ---- DemoPolicy ------------------------------------------------------------------------------------
def test_demo_switch_and_limits_from_the_environment():
    assert not demo_enabled({}) and not demo_enabled({"GM_DEMO": "0"})
    assert demo_enabled({"GM_DEMO": "1"}) and demo_enabled({"GM_DEMO": " yes "})
    assert DemoLimits.from_env({}) == DemoLimits()
    lim = DemoLimits.from_env({"GM_DEMO_MAX_STEPS": "500", "GM_DEMO_IDLE_SECONDS": "2.5", "GM_DEMO_MAX_JOBS": "7",
                               "GM_DEMO_MAX_WIDTH": "0.5", "GM_DEMO_MAX_BATCH": ""})
    assert (lim.max_steps, lim.idle_seconds, lim.max_jobs, lim.max_width) == (500, 2.5, 7, 0.5)
    assert lim.max_batch_size == DemoLimits().max_batch_size
    for var, raw in [("GM_DEMO_MAX_STEPS", "lots"), ("GM_DEMO_MAX_STEPS", "2.5"), ("GM_DEMO_MAX_JOBS", "0"),
                     ("GM_DEMO_IDLE_SECONDS", "nan"), ("GM_DEMO_IDLE_SECONDS", "inf"), ("GM_DEMO_MAX_WIDTH", "-1")]:
        with pytest.raises(GMError, match=var) as err:
            DemoLimits.from_env({var: raw})
        assert "\n" not in str(err.value)


def test_a_visitor_sees_and_controls_only_its_own_jobs(tmp_path):
    rules, manager = demo(tmp_path, jobs_per_session=2, max_jobs=4)
    alice, bob = DemoPolicy.new_owner(), DemoPolicy.new_owner()
    assert alice != bob and len(alice) >= 20
    a = rules.start_run(alice, "vae", steps=100, name="a")
    b = rules.start_run(bob, "vae", steps=100, name="b")
    assert [j.key for j in rules.jobs(alice)] == [a.key] and [j.key for j in rules.jobs(bob)] == [b.key]
    assert rules.owns(alice, a.key) and not rules.owns(bob, a.key)
    assert rules.may_see(alice, a.key) and not rules.may_see(bob, a.key)
    assert rules.find(bob, a.key) is None and rules.find(alice, a.key).key == a.key
    assert rules.owned(alice) == {a.key}
    for act in (rules.pause, rules.unpause, rules.stop):
        with pytest.raises(GMError, match="not one of yours"):
            act(bob, a.key)
    with pytest.raises(GMError, match="not one of yours"):
        rules.resume_run(bob, a.key, steps=10)
    assert [c for c in manager.calls if c[0] != "start"] == []   # nothing reached the manager
    assert manager.status[a.key] == "running"
    rules.pause(alice, a.key)
    rules.stop(alice, a.key)
    assert manager.status[a.key] == "stopped" and manager.status[b.key] in ("running", "queued")
    # the same sentence for a run that does not exist: nothing about other visitors leaks
    with pytest.raises(GMError, match="not one of yours"):
        rules.stop(bob, tmp_path / "no-such-run")


def test_outside_demo_mode_every_tab_shares_every_job(tmp_path):
    manager = FakeManager(tmp_path)
    rules = DemoPolicy(manager, None)
    a = rules.start_run("tab-1", "vae", steps=10 ** 6, epochs=None, device="cuda", name="a",
                        config={"width": 8, "batch_size": 4096})
    assert not rules.demo and [j.key for j in rules.jobs("tab-2")] == [a.key]
    assert rules.may_see("tab-2", a.key) and rules.may_control("tab-2", a.key)
    rules.stop("tab-2", a.key)
    assert manager.status[a.key] == "stopped" and rules.reap() == []


def test_caps_on_length_device_and_config(tmp_path):
    rules, manager = demo(tmp_path, max_steps=1000, max_width=1.0, max_batch_size=64)
    me = "visitor"
    bad = [
        (dict(steps=1001), "at most 1,000 steps"),
        (dict(steps=0), "at most 1,000 steps"),
        (dict(steps=None), "Give the number of steps"),
        (dict(steps=None, epochs=2.0), "in steps"),
        (dict(steps=10, device="cuda"), "device"),
        (dict(steps=10, config={"width": 2.0}), "width is at most 1"),
        (dict(steps=10, config={"width": float("nan")}), "width is at most 1"),
        (dict(steps=10, config={"batch_size": 4096}), "batch_size is at most 64"),
    ]
    for kwargs, message in bad:
        with pytest.raises(GMError, match=message):
            rules.start_run(me, "vae", **kwargs)
    assert manager.calls == []
    from gm.config import with_overrides
    from gm.registry import get_spec
    big = with_overrides(get_spec("vae").config_cls(), {"batch_size": "128"}, model="vae")
    with pytest.raises(GMError, match="batch_size is at most 64"):
        rules.start_run(me, "vae", big, steps=10)   # a config dataclass is checked too
    info = rules.start_run(me, "vae", {"width": 0.5, "batch_size": 64}, steps=1000, device="auto")
    assert info.status == "running"


def test_caps_on_jobs_per_visitor_and_on_the_server_with_queue_positions(tmp_path):
    rules, manager = demo(tmp_path, jobs_per_session=1, max_jobs=3)
    first = rules.start_run("v1", "vae", steps=10)
    with pytest.raises(GMError, match="already have 1 job"):
        rules.start_run("v1", "vae", steps=10)
    second = rules.start_run("v2", "vae", steps=10)
    third = rules.start_run("v3", "vae", steps=10)
    assert first.status == "running" and (second.queue_position, third.queue_position) == (0, 1)
    assert [j.queue_position for j in rules.jobs("v3")] == [1]
    with pytest.raises(GMError, match="busy: 3 jobs"):
        rules.start_run("v4", "vae", steps=10)
    rules.stop("v1", first.key)                  # the queue moves; a slot frees up
    assert [j.queue_position for j in rules.jobs("v3")] == [0]
    assert rules.start_run("v4", "vae", steps=10).status == "queued"
    assert rules.active_count() == 3


def test_the_caps_hold_when_visitors_start_at_the_same_moment(tmp_path):
    manager = FakeManager(tmp_path, start_delay=0.2)   # loading a dataset takes a while
    rules, _ = demo(tmp_path, manager=manager, jobs_per_session=1, max_jobs=2)
    results: list = []

    def start(owner: str) -> None:
        try:
            results.append(rules.start_run(owner, "vae", steps=10))
        except GMError as exc:
            results.append(exc)

    threads = [threading.Thread(target=start, args=(f"v{i}",)) for i in range(5)]
    threads += [threading.Thread(target=start, args=("v0",))]   # the same visitor twice
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    started = [r for r in results if not isinstance(r, GMError)]
    assert len(started) == 2 and len(manager.status) == 2


def test_resume_only_own_runs_within_the_caps(tmp_path):
    rules, manager = demo(tmp_path, max_steps=500)
    run = tmp_path / "mine"
    run.mkdir()
    RunFolder(run).write_state(status="stopped", step=100, total_steps=400)
    rules.claim("me", run)
    with pytest.raises(GMError, match="at most 500"):
        rules.resume_run("me", run, steps=501)
    with pytest.raises(GMError, match="device"):
        rules.resume_run("me", run, steps=10, device="cpu")
    with pytest.raises(GMError, match="width is at most"):
        rules.resume_run("me", run, steps=10, overrides={"width": 4.0})
    assert rules.resume_run("me", run).status == "running"   # 300 steps left: within the cap
    rules.stop("me", run)
    RunFolder(run).write_state(status="stopped", step=0, total_steps=5000)
    with pytest.raises(GMError, match="Give the number of steps"):
        rules.resume_run("me", run)
    assert rules.resume_run("me", run, steps=500).status == "running"


def test_a_claimed_run_belongs_to_its_visitor(tmp_path):
    rules, _ = demo(tmp_path)
    pulled = tmp_path / "owner--model-abc123"
    rules.claim("puller", pulled)
    assert rules.may_see("puller", pulled) and not rules.may_see("other", pulled)
    assert rules.owned("puller") == {str(pulled.resolve())}


def test_jobs_of_a_visitor_gone_for_idle_seconds_stop(tmp_path):
    clock = Clock()
    rules, manager = demo(tmp_path, clock=clock, idle_seconds=300, jobs_per_session=1, max_jobs=4)
    rules.touch("gone", "session-1")
    rules.touch("here", "session-2")
    left = rules.start_run("gone", "vae", steps=10)
    stays = rules.start_run("here", "vae", steps=10)
    waiting = rules.start_run("queued-gone", "vae", steps=10)
    clock.now += 200
    rules.touch("here")
    assert rules.reap() == []
    clock.now += 101          # 301 s since "gone" and "queued-gone" were last seen
    rules.touch("here")
    assert set(rules.reap()) == {left.key, waiting.key}
    assert manager.status[left.key] == "stopped" and manager.status[waiting.key] == "stopped"
    assert manager.status[stays.key] == "running"
    assert rules.reap() == []  # nothing more to stop


def test_a_connected_session_counts_as_present(tmp_path):
    clock = Clock()
    connected = {"tab-open": True, "tab-closed": False}
    rules, manager = demo(tmp_path, clock=clock, connected=connected.get, idle_seconds=60, max_jobs=4)
    rules.touch("reader", "tab-open")     # reads a long page: no reruns, but the tab is open
    rules.touch("left", "tab-closed")
    kept = rules.start_run("reader", "vae", steps=10)
    gone = rules.start_run("left", "vae", steps=10)
    clock.now += 3600
    assert rules.reap() == [gone.key]
    assert manager.status[kept.key] in ("running", "queued")
    connected["tab-open"] = False           # the tab closes: gone after idle_seconds more
    clock.now += 30
    assert rules.reap() == []
    clock.now += 31
    assert rules.reap() == [kept.key]


def test_a_paused_job_gives_its_slot_back_after_idle_seconds(tmp_path):
    clock = Clock()
    rules, manager = demo(tmp_path, clock=clock, idle_seconds=120, max_jobs=4)

    def present(*owners: str) -> None:
        for owner in owners:
            rules.touch(owner)
    rules.touch("me")
    job = rules.start_run("me", "vae", steps=10)
    rules.pause("me", job.key)
    waiting = rules.start_run("other", "vae", steps=10)
    assert rules.reap() == []           # the reaper notes when the pause began
    clock.now += 100
    present("me", "other")
    assert rules.reap() == []
    rules.unpause("me", job.key)        # continuing resets the clock
    assert rules.reap() == []
    rules.pause("me", job.key)
    assert rules.reap() == []
    clock.now += 50
    present("me", "other")
    assert rules.reap() == []
    clock.now += 71
    present("me", "other")
    assert rules.reap() == [job.key]
    assert manager.status[job.key] == "stopped" and manager.status[waiting.key] == "running"


def test_the_reaper_thread_stops_jobs_when_nobody_visits(tmp_path):
    clock = Clock()
    rules, manager = demo(tmp_path, clock=clock, idle_seconds=5)
    rules.touch("gone")
    job = rules.start_run("gone", "vae", steps=10)
    rules.start_reaper(interval=0.02)
    try:
        clock.now += 6
        deadline = time.monotonic() + 5
        while manager.status[job.key] != "stopped" and time.monotonic() < deadline:
            time.sleep(0.02)
        assert manager.status[job.key] == "stopped"
    finally:
        rules.close()
    assert rules._reaper is None


def test_long_gone_visitors_are_forgotten(tmp_path):
    clock = Clock()
    rules, _ = demo(tmp_path, clock=clock, idle_seconds=10)
    rules.touch("old")
    job = rules.start_run("old", "vae", steps=10)
    clock.now += 11
    assert rules.reap() == [job.key]
    clock.now += 90000
    rules.reap()
    assert rules.owned("old") == set() and not rules.owns("old", job.key)


# ---- the app in demo mode --------------------------------------------------------------------------
TINY = {"width": "0.25", "batch_size": "8", "log_every": "2", "sample_every": "5", "kl_dims_every": "4"}
SHIPPED = REPO / "checkpoints" / "pretrained"


def _reset_app_state() -> None:
    from pages import _ui
    _ui.policy().close()
    _ui.manager().shutdown(timeout=60)
    st.cache_resource.clear()


@pytest.fixture
def demo_app(tmp_path, monkeypatch):
    runs = tmp_path / "runs"
    runs.mkdir()
    monkeypatch.setenv("GM_RUNS_DIR", str(runs))
    monkeypatch.setenv("GM_DEMO", "1")
    monkeypatch.setenv("GM_DEMO_MAX_STEPS", "1000000")   # long enough to still train while we look
    monkeypatch.setenv("GM_DEMO_MAX_JOBS", "2")
    monkeypatch.setenv("GM_DEMO_MAX_RUNNING", "1")
    st.cache_resource.clear()   # the manager and policy are built from these variables
    yield runs
    _reset_app_state()


def session(page: str = "pages/home.py", run_path=None) -> AppTest:
    return open_page(page, run_path)


def start_from_form(at: AppTest, name: str) -> None:
    at.selectbox(key="train.model@en").set_value("vae").run()
    at.number_input(key="cfg.vae.width").set_value(0.25)
    at.number_input(key="cfg.vae.batch_size").set_value(8)
    next(n for n in at.number_input if n.label == "steps").set_value(1_000_000)
    next(i for i in at.text_input if i.label.startswith("Run name")).set_value(name)
    next(b for b in at.button if b.label == "Start training").click().run()
    assert not at.exception, [e.value for e in at.exception]


def picker_paths(at: AppTest) -> list[str]:
    return list(at.selectbox(key="run@en").options) if any(s.key == "run@en" for s in at.selectbox) else []


def test_a_second_session_cannot_see_or_stop_the_first_sessions_job(demo_app):
    from pages import _ui
    first = session("pages/train.py")
    start_from_form(first, "visitor-a")
    assert not first.error, [e.value for e in first.error]
    jobs = _ui.manager().jobs()
    assert [j.name for j in jobs] == ["visitor-a"]
    key = jobs[0].key
    owner_a = first.session_state["demo.owner"]
    assert _ui.policy().owns(owner_a, key)
    first.run()
    assert any(b.label == "Stop" for b in first.button) and any("visitor-a" in m.value for m in first.markdown)

    second = session("pages/train.py", run_path=key)   # even with the first's run forced into its state
    owner_b = second.session_state["demo.owner"]
    assert owner_b != owner_a
    assert not any(b.label in ("Stop", "Pause", "Continue") for b in second.button)
    assert not any("visitor-a" in m.value for m in second.markdown)
    assert key not in picker_paths(second)
    assert "run" not in second.session_state or second.session_state["run"] != key
    with pytest.raises(GMError, match="not one of yours"):
        _ui.policy().stop(owner_b, key)
    assert _ui.manager().get(key).status in ("queued", "running")
    second.switch_page("pages/monitor.py").run()
    assert not second.exception and not second.error, [e.value for e in second.error]
    assert not any("visitor-a" in c.value for c in second.caption)
    assert any("No run selected" in i.value for i in second.info)   # no pretrained runs in the tests
    second.switch_page("pages/compare.py").run()
    assert all(key not in o for s in second.multiselect for o in s.options)
    second.switch_page("pages/home.py").run()
    assert not any("visitor-a" in str(df.value.to_dict("records")) for df in second.dataframe)

    # the second visitor's own job waits in the queue (one trains at a time) and says where it is
    second.switch_page("pages/train.py").run()
    start_from_form(second, "visitor-b")
    assert not second.error, [e.value for e in second.error]
    second.run()
    assert any("Waiting in the queue: 0 job(s) ahead" in c.value for c in second.caption)
    assert [b.label for b in second.button if b.label == "Stop"] == ["Stop"]   # its own job only

    # the server is full (GM_DEMO_MAX_JOBS=2): a third visitor is told so, nothing starts
    third = session("pages/train.py")
    start_from_form(third, "visitor-c")
    assert any("busy" in e.value for e in third.error)
    assert len(_ui.manager().jobs()) == 2

    # the first visitor stops its own job from the page
    next(b for b in first.button if b.label == "Stop").click().run()
    assert _ui.manager().wait(key, timeout=120).status == "stopped"
    home = first.switch_page("pages/home.py").run()
    assert any("visitor-a" in str(df.value.to_dict("records")) for df in home.dataframe)


@pytest.mark.parametrize("page", ["pages/home.py", "pages/walkthrough.py", "pages/train.py", "pages/monitor.py",
                                  "pages/explore.py", "pages/evaluate.py", "pages/compare.py"])
def test_every_page_renders_in_demo_mode(page, demo_app):
    at = session(page)
    assert at.title and not at.error, [e.value for e in at.error]


def test_demo_home_has_no_push_and_the_train_form_shows_the_caps(demo_app):
    at = session()
    assert not any(i.key == "hub.push.token" for i in at.text_input)
    assert any("Push to Hub is off" in c.value for c in at.caption)
    at.switch_page("pages/train.py").run()
    assert any("Hosted demo" in i.value for i in at.info)
    assert [r.options for r in at.radio if r.label == "Length in"] in ([], [["steps"]])
    assert any("width at most 1" in i.value for i in at.info)   # the caps, said up front
    at.selectbox(key="train.model@en").set_value("vae").run()
    at.number_input(key="cfg.vae.width").set_value(2.0)      # over the cap: one sentence at Start
    next(b for b in at.button if b.label == "Start training").click().run()
    assert len(at.error) == 1 and "width" in at.error[0].value and not at.exception


def test_demo_evaluations_leave_the_pretrained_runs_untouched(demo_app, monkeypatch):
    """A visitor's FID of a shipped run is shown to that visitor only and never written to the shared
    folder's eval.jsonl; another visitor neither sees nor can cancel it."""
    if not (SHIPPED / "vae" / "config.json").is_file():
        pytest.skip("no shipped pretrained weights in this checkout")
    import gm.metrics.evaluate
    from pages import _ui
    monkeypatch.setenv("GM_PRETRAINED_DIR", str(SHIPPED))
    asked, release = [], threading.Event()

    def evaluate(path, *, record=True, cancel=None, **kwargs):
        asked.append((path, record))
        release.wait(30)
        raise GMError("fake evaluation ended")

    monkeypatch.setattr(gm.metrics.evaluate, "evaluate", evaluate)
    pretrained = str(SHIPPED / "vae")
    first = session("pages/evaluate.py", run_path=pretrained)
    next(b for b in first.button if b.label == "Measure" or b.key == "ev.go").click().run()
    assert not first.exception
    try:
        assert asked == [(pretrained, False)]
        assert _ui.tasks().get(pretrained) is None   # keyed by the visitor, not by the shared folder
        second = session("pages/evaluate.py", run_path=pretrained)
        assert not any(b.key == "ev.cancel" for b in second.button)
        assert any(b.key == "ev.cancel" for b in first.run().button)
    finally:
        release.set()


def captions(at: AppTest) -> list[str]:
    """Every image caption on the page: st.image's and those of Home's model gallery (one st.html)."""
    from tests.test_home_gallery import gallery_cards
    gallery = [card["caption"] for card in gallery_cards(at) if card["caption"]]
    return [img.caption for el in at.get("image") for img in el.proto.imgs] + gallery


@pytest.mark.parametrize("demo_flag", ["0", "1"])
def test_home_always_shows_the_pretrained_grids(tmp_path, monkeypatch, demo_flag):
    from gm.config import with_overrides
    from gm.pretrained import showcase_runs
    from gm.registry import get_spec, model_names
    from gm.runs.loop import new_session, train
    showcase = showcase_runs(SHIPPED)   # the run each model's card shows (CycleGAN: its first pair)
    present = [m for m in model_names() if m in showcase and (showcase[m].path / "samples.png").is_file()]
    if not present:
        pytest.skip("no shipped pretrained weights in this checkout")
    runs = tmp_path / "runs"
    monkeypatch.setenv("GM_PRETRAINED_DIR", str(SHIPPED))
    monkeypatch.setenv("GM_RUNS_DIR", str(runs))
    monkeypatch.setenv("GM_DEMO", demo_flag)
    st.cache_resource.clear()
    # a local run of a shipped model that was stopped early: it used to replace the showcase grid
    cfg = with_overrides(get_spec("vae").config_cls(), TINY, model="vae")
    local = new_session("vae", cfg, runs_dir=runs, name="aborted", device="cpu", steps=6)
    assert train(local) == "finished"
    local.run.write_state(status="stopped")
    try:
        at = session()
        shown = captions(at)
        expected = sorted(f"pretrained, step {showcase[m].sample_grids()[-1][0]}" for m in present)
        assert sorted(c for c in shown if c.startswith("pretrained, step")) == expected
        local_shown = [c for c in shown if c.startswith("aborted, step")]
        assert len(local_shown) == (0 if demo_flag == "1" else 1)   # in its own section, not the showcase
    finally:
        _reset_app_state()


# ---- Hub tokens ------------------------------------------------------------------------------------
ENV_TOKEN = "hf_the_servers_own_token"


@pytest.fixture
def hub_app(tmp_path, monkeypatch):
    """The app outside demo mode with a finished run, the server's token in the environment and a
    fake Hub that records the token each call is given."""
    import huggingface_hub

    from gm.config import with_overrides
    from gm.registry import get_spec
    from gm.runs.loop import new_session, train
    runs = tmp_path / "runs"
    monkeypatch.setenv("GM_RUNS_DIR", str(runs))
    monkeypatch.delenv("GM_DEMO", raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("HF_TOKEN", ENV_TOKEN)
    st.cache_resource.clear()
    cfg = with_overrides(get_spec("vae").config_cls(), TINY, model="vae")
    local = new_session("vae", cfg, runs_dir=runs, name="tiny", device="cpu", steps=6)
    assert train(local) == "finished"
    seen: list[tuple[str, object]] = []

    class Done:
        commit_url = "https://huggingface.co/fake/commit"

    def create_repo(self, repo_id, private=False, exist_ok=False, repo_type=None):
        seen.append(("create_repo", self.token))

    def upload_folder(self, folder_path, repo_id, repo_type=None, commit_message=None):
        seen.append(("upload_folder", self.token))
        return Done()

    def pull(repo_id, *, revision=None, runs_dir=None, name=None, token=None):
        seen.append(("pull", token))
        raise GMError("fake Hub: nothing to pull")

    import gm.hub
    monkeypatch.setattr(huggingface_hub.HfApi, "create_repo", create_repo)
    monkeypatch.setattr(huggingface_hub.HfApi, "upload_folder", upload_folder)
    monkeypatch.setattr(gm.hub, "pull", pull)
    yield local.run, seen
    _reset_app_state()


def push_form(at: AppTest, token: str) -> AppTest:
    at.text_input(key="hub.push.repo").input("someone/tiny")
    at.text_input(key="hub.push.token").input(token)
    next(b for b in at.button if b.label == "Push").click()
    return at.run()


def test_push_uses_only_the_typed_token(hub_app):
    run, seen = hub_app
    at = session(run_path=run.path)
    push_form(at, "")
    assert not at.exception
    assert any("Type a Hugging Face token" in e.value for e in at.error) and seen == []
    push_form(at, "  hf_typed_by_the_person ")
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert seen and all(tok == "hf_typed_by_the_person" for _, tok in seen)
    assert any("Pushed to" in s.value for s in at.success)


def test_pull_never_falls_back_to_the_servers_token(hub_app):
    _, seen = hub_app
    at = session()
    at.text_input(key="hub.pull.repo").input("someone/model")
    next(b for b in at.button if b.label == "Load").click()
    at.run()
    at.text_input(key="hub.pull.repo").input("someone/private")
    at.text_input(key="hub.pull.token").input("hf_typed")
    next(b for b in at.button if b.label == "Load").click()
    at.run()
    # False is huggingface_hub's "send no token": never None (which means $HF_TOKEN / the saved login)
    assert seen == [("pull", False), ("pull", "hf_typed")]
    assert not any(tok == ENV_TOKEN for _, tok in seen)


def code_without_comments(path: Path) -> str:
    with open(path, "rb") as fh:
        return " ".join(tok.string for tok in tokenize.tokenize(fh.readline) if tok.type != tokenize.COMMENT)


def test_no_page_reads_a_hub_token_from_the_environment():
    """The app's code (comments aside) never touches the environment or huggingface_hub's token
    helpers, and never hands gm.hub a missing token (None would mean $HF_TOKEN / the saved login)."""
    sources = [REPO / "app.py", *sorted((REPO / "pages").glob("*.py"))]
    pattern = re.compile(r"os\.environ|getenv|HF_TOKEN|get_token|HfFolder|huggingface_hub|token\s*=\s*None|"
                         r"token\s+or\s+None")
    offenders = [(p.name, m.group()) for p in sources for m in pattern.finditer(code_without_comments(p))]
    assert offenders == []


def test_readme_documents_every_demo_variable_with_its_default():
    text = (REPO / "README.md").read_text(encoding="utf-8")
    rows = dict(re.findall(r"^\| `(GM_DEMO_[A-Z_]+)` \| ([^|]+?) \|", text, re.M))
    defaults = DemoLimits()
    assert {var: float(rows[var]) for var in DemoLimits.ENV.values() if var in rows} == \
        {var: float(getattr(defaults, name)) for name, var in DemoLimits.ENV.items()}
    docker = (REPO / "Dockerfile").read_text()
    for var, value in re.findall(r"(GM_DEMO_[A-Z_]+)=(\S+)", docker):
        DemoLimits.from_env({var: value})   # the image's values are valid

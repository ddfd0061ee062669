"""One trainer per run, enforced by the OS (gm.runs.lock): two real `resume` processes started
together, two job managers in one process, a lock left by a dead process, and the lock's own rules."""

from __future__ import annotations

import fcntl
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gm.errors import GMError
from gm.runs import lock as run_lock
from gm.runs.checkpoint import list_checkpoints
from gm.runs.folder import RunFolder
from gm.runs.jobs import JobManager, trainer_of
from gm.runs.lock import RunLock, RunLocked, holder, host_id
from gm.runs.loop import open_session, train

REPO = Path(__file__).resolve().parents[1]
SMALL = {"width": 0.25, "batch_size": 16, "log_every": 5, "sample_every": 1000, "checkpoint_every": 1000}
LONG = 1_000_000
HOLDER = re.compile(r"being trained by process (\d+) on this machine since \d\d:\d\d:\d\d; stop it there first\.")


def _trained(manager, runs_dir, tiny_data, name: str, steps: int = 10) -> Path:
    job = manager.start_run("vae", SMALL, steps=steps, device="cpu", runs_dir=runs_dir, name=name,
                            data_dir=str(tiny_data))
    assert manager.wait(job.key, timeout=120).status == "finished"
    return Path(job.key)


def _steps(run: Path) -> list[int]:
    return [r["step"] for r in RunFolder(run).read_metrics()]


def _env(data_dir: Path) -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "GM_DATA_DIR": str(data_dir), "PYTHONPATH": str(REPO)}


def _holding_child(run: Path) -> subprocess.Popen:
    """Another process that takes the run's lock and keeps it until killed."""
    code = ("import sys, time; from gm.runs.lock import RunLock; lock = RunLock(sys.argv[1]).acquire(); "
            "print('locked', flush=True); time.sleep(600)")
    child = subprocess.Popen([sys.executable, "-c", code, str(run)], cwd=REPO, env=_env(run),
                             stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline().strip() == "locked"
    return child


# ---- the lock itself ------------------------------------------------------------------------------
def test_flock_on_two_opens_of_one_file_conflicts_within_a_process(tmp_path):
    """What the in-process guarantee rests on (Linux, BSD): flock belongs to the open file description."""
    path = tmp_path / "f"
    a = os.open(path, os.O_RDWR | os.O_CREAT)
    b = os.open(path, os.O_RDWR)
    try:
        fcntl.flock(a, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(BlockingIOError):
            fcntl.flock(b, fcntl.LOCK_EX | fcntl.LOCK_NB)
        fcntl.flock(a, fcntl.LOCK_UN)
        fcntl.flock(b, fcntl.LOCK_EX | fcntl.LOCK_NB)
    finally:
        os.close(a)
        os.close(b)


def test_second_lock_in_one_process_is_refused_and_free_after_release(tmp_path, monkeypatch):
    first = RunLock(tmp_path, "r").acquire()
    assert first.held and holder(tmp_path)["pid"] == os.getpid()
    with pytest.raises(RunLocked, match=rf"Run 'r' is being trained by process {os.getpid()} \(this one\) "
                                        r"since \d\d:\d\d:\d\d; stop that job first\."):
        RunLock(tmp_path, "r").acquire()
    # Without the table of this process's locks, the kernel refuses the second open just the same.
    monkeypatch.setattr(run_lock, "_HELD", {})
    with pytest.raises(RunLocked, match="being trained by process"):
        RunLock(tmp_path, "r").acquire()
    monkeypatch.undo()
    first.release()
    assert not first.held and holder(tmp_path) is None
    assert (tmp_path / ".lock").read_text() == ""  # emptied on release, never deleted
    with RunLock(tmp_path, "r") as again:
        assert again.held
    assert holder(tmp_path) is None


def test_a_forgotten_lock_is_given_back_when_collected(tmp_path):
    import gc
    RunLock(tmp_path).acquire()  # e.g. a session opened and dropped without train() or close()
    gc.collect()
    assert holder(tmp_path) is None
    RunLock(tmp_path).acquire().release()


def test_a_lock_of_another_process_names_it_and_dies_with_it(tmp_path):
    child = _holding_child(tmp_path)
    try:
        started = time.monotonic()
        with pytest.raises(RunLocked) as refused:
            RunLock(tmp_path, "x").acquire()
        assert time.monotonic() - started < 1.0
        assert HOLDER.search(str(refused.value)).group(1) == str(child.pid)
        assert refused.value.holder["host"] == host_id()
        assert holder(tmp_path)["pid"] == child.pid
    finally:
        child.kill()
        child.wait(timeout=30)
    # kill -9 leaves the lock file with the dead holder's name in it; the kernel dropped the lock.
    assert '"pid"' in (tmp_path / ".lock").read_text()
    assert holder(tmp_path) is None
    RunLock(tmp_path, "x").acquire().release()


def test_a_probe_never_makes_a_real_acquire_fail(tmp_path):
    import threading
    stop = threading.Event()

    def probe():
        while not stop.is_set():
            holder(tmp_path)

    probes = [threading.Thread(target=probe) for _ in range(2)]
    for t in probes:
        t.start()
    try:
        for _ in range(200):
            RunLock(tmp_path).acquire().release()
    finally:
        stop.set()
        for t in probes:
            t.join()


def test_unlockable_folder_is_one_sentence(tmp_path):
    with pytest.raises(GMError, match=r"Cannot lock run 'missing' for training \(No such file"):
        RunLock(tmp_path / "missing").acquire()


# ---- the lock around jobs -------------------------------------------------------------------------
def test_two_managers_in_one_process_one_trains(manager, runs_dir, tiny_data):
    job = manager.start_run("vae", SMALL, steps=LONG, device="cpu", runs_dir=runs_dir, name="a",
                            data_dir=str(tiny_data))
    with pytest.raises(GMError, match="already running"):   # the same manager knows its job
        manager.resume_run(job.key, steps=5)
    with JobManager() as other:                              # another one meets the lock
        with pytest.raises(RunLocked, match=rf"process {os.getpid()} \(this one\)"):
            other.resume_run(job.key, steps=5)
        assert other.jobs() == []
    assert trainer_of(job.key)["pid"] == os.getpid()
    manager.stop(job.key)
    stopped = manager.wait(job.key, timeout=60)
    assert stopped.status == "stopped" and trainer_of(job.key) is None
    with JobManager() as other:                              # free once the job ended
        again = other.resume_run(job.key, steps=5)
        done = other.wait(again.key, timeout=60)
        assert done.status == "finished" and done.step == stopped.step + 5
    assert _steps(job.key) == sorted(set(_steps(job.key)))


def test_a_queued_job_holds_the_run_and_frees_it_when_stopped(manager, runs_dir, tiny_data):
    a = manager.start_run("vae", SMALL, steps=LONG, device="cpu", runs_dir=runs_dir, name="a",
                          data_dir=str(tiny_data))
    b = manager.start_run("vae", SMALL, steps=10, device="cpu", runs_dir=runs_dir, name="b",
                          data_dir=str(tiny_data))
    assert b.status == "queued" and trainer_of(b.key) is not None
    manager.stop(b.key)
    assert trainer_of(b.key) is None
    manager.stop(a.key)
    assert manager.wait(a.key, timeout=60).status == "stopped"


def test_stale_running_state_with_a_free_lock_resumes_at_once(manager, runs_dir, tiny_data):
    """state.json names a live process on this machine as the trainer (the pid reused after a kill,
    say): the lock is free, so the run resumes; no pid is guessed at."""
    run = _trained(manager, runs_dir, tiny_data, "stale")
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    try:
        RunFolder(run).write_state(status="running", pid=alive.pid, host=host_id())
        job = manager.resume_run(run, steps=5)
        done = manager.wait(job.key, timeout=60)
    finally:
        alive.kill()
        alive.wait(timeout=30)
    assert done.status == "finished" and done.step == 15
    state = RunFolder(run).read_state()
    assert (state["status"], state["pid"], state["host"]) == ("finished", os.getpid(), host_id())


def test_resume_refused_while_another_process_holds_the_run(manager, runs_dir, tiny_data):
    run = _trained(manager, runs_dir, tiny_data, "held")
    before = (run / "state.json").read_bytes(), (run / "metrics.jsonl").read_bytes()
    child = _holding_child(run)
    try:
        with pytest.raises(RunLocked, match=rf"Run 'held' is being trained by process {child.pid} on this "
                                            r"machine since \d\d:\d\d:\d\d; stop it there first\."):
            manager.resume_run(run, steps=5)
    finally:
        child.kill()
        child.wait(timeout=30)
    assert ((run / "state.json").read_bytes(), (run / "metrics.jsonl").read_bytes()) == before
    assert manager.find(run).status == "finished"  # the refused resume left no job behind


def test_a_session_holds_its_run_until_train_returns(runs_dir, tiny_data, manager):
    run = _trained(manager, runs_dir, tiny_data, "s")
    session = open_session(run, steps=5, dataset=manager.dataset("dsprites", str(tiny_data)))
    assert session.lock.held and holder(run)["pid"] == os.getpid()
    with pytest.raises(RunLocked):
        manager.resume_run(run, steps=5)
    assert train(session) == "finished"
    assert not session.lock.held and holder(run) is None


def test_a_check_of_the_plan_runs_under_the_lock_and_can_refuse(manager, runs_dir, tiny_data):
    run = _trained(manager, runs_dir, tiny_data, "c")
    seen = []

    def too_big(plan):
        seen.append((plan.config.lr, holder(run)["pid"]))
        raise GMError("Too big for this machine.")

    with pytest.raises(GMError, match="Too big"):
        manager.resume_run(run, steps=5, overrides={"lr": "5e-5"}, check=too_big)
    assert seen == [(5e-5, os.getpid())] and holder(run) is None
    assert RunFolder(run).read_state()["status"] == "finished"


def test_weights_only_runs_are_refused_without_a_lock_file(manager, runs_dir, tiny_data):
    run = _trained(manager, runs_dir, tiny_data, "w")
    (run / ".lock").unlink()
    cfg = RunFolder(run).read_config()
    cfg["weights_only"] = True
    (run / "config.json").write_text(__import__("json").dumps(cfg))
    with pytest.raises(GMError, match="holds weights only"):
        manager.resume_run(run, steps=5)
    assert not (run / ".lock").exists()


# ---- two real processes -------------------------------------------------------------------------
# `python -m gm ARGS`, with the imports that `resume` makes on its way done first and timed apart:
# on a loaded two-core box importing torch takes seconds, while the refusal itself must be at once.
TIMED_GM = """
import runpy, sys, time
import gm.cli, gm.config, gm.runs.jobs
out, sys.argv = sys.argv[1], ["gm", *sys.argv[2:]]
start = time.monotonic()
try:
    runpy.run_module("gm", run_name="__main__", alter_sys=True)
finally:
    open(out, "w").write(str(time.monotonic() - start))
"""


def test_two_resume_processes_started_together_one_trains(runs_dir, tiny_data, tmp_path):
    """`python -m gm resume RUN` twice in the same instant: exactly one trains; the other exits 2 at
    once with one line naming the winner; metrics.jsonl holds every step once."""
    with JobManager() as manager:
        run = _trained(manager, runs_dir, tiny_data, "race")
    timings = [tmp_path / f"took-{i}" for i in range(2)]
    procs = [subprocess.Popen([sys.executable, "-c", TIMED_GM, str(took), "resume", str(run), "--steps", "60",
                               "--quiet"], cwd=REPO, env=_env(tiny_data), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for took in timings]
    outs = [p.communicate(timeout=300) for p in procs]
    assert sorted(p.returncode for p in procs) == [0, 2], outs
    winner, loser = (0, 1) if procs[0].returncode == 0 else (1, 0)
    error = outs[loser][1].strip()
    assert len(error.splitlines()) == 1 and error.startswith("error: Run 'race' is being trained")
    assert HOLDER.search(error).group(1) == str(procs[winner].pid)
    assert float(timings[loser].read_text()) < 1.0, timings[loser].read_text()
    assert outs[winner][0].startswith(f"finished: {run.resolve()} at step 70")
    assert _steps(run) == [1, *range(5, 71, 5)]
    assert RunFolder(run).read_state()["status"] == "finished"
    assert [s for s, _ in list_checkpoints(run / "checkpoints")][-1] == 70


def test_cli_resume_of_a_run_trained_elsewhere_exits_2(runs_dir, tiny_data):
    with JobManager() as manager:
        run = _trained(manager, runs_dir, tiny_data, "busy")
    child = _holding_child(run)
    try:
        done = subprocess.run([sys.executable, "-m", "gm", "resume", str(run), "--steps", "5"], cwd=REPO,
                              env=_env(tiny_data), capture_output=True, text=True, timeout=300)
    finally:
        child.kill()
        child.wait(timeout=30)
    assert done.returncode == 2 and done.stdout == ""
    assert re.fullmatch(rf"error: Run 'busy' is being trained by process {child.pid} on this machine since "
                        r"\d\d:\d\d:\d\d; stop it there first\.\n", done.stderr), done.stderr

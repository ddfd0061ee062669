"""The job manager with real threads and real run folders, on a 256-image dSprites file."""

from __future__ import annotations

import errno
import json
import math
import os
import signal
import threading
import time
from pathlib import Path

import pytest
import torch

from gm.errors import GMError
from gm.runs.checkpoint import latest_checkpoint, list_checkpoints, load_checkpoint
from gm.runs.folder import RunFolder
from gm.runs.jobs import FINAL_STATUSES, JobManager
from gm.trainers.vae import VAETrainer

SMALL = {"width": 0.25, "batch_size": 16, "log_every": 5, "sample_every": 1000,
         "checkpoint_every": 1000}
LONG = 1_000_000  # steps of a job that only a stop ends


def _wait_for(predicate, timeout: float = 60.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def _start(manager, runs_dir, tiny_data, name, steps=LONG, **config):
    return manager.start_run("vae", {**SMALL, **config}, steps=steps, device="cpu", runs_dir=runs_dir,
                             name=name, data_dir=str(tiny_data))


def _steps(run_dir) -> list[int]:
    return [r["step"] for r in RunFolder(run_dir).read_metrics()]


def test_start_pause_continue_stop_then_resume(manager, runs_dir, tiny_data):
    job = _start(manager, runs_dir, tiny_data, "a")
    assert job.status == "running" and job.total_steps == LONG and job.run_dir == (runs_dir / "a").resolve()
    live = _wait_for(lambda: (j := manager.get(job.key)).step >= 12 and j.images_per_sec and j, what="steps")
    assert live.images_per_sec > 0 and live.eta_seconds is not None and "loss" in live.metrics

    asked_at = manager.pause(job.key).step
    paused = manager.wait(job.key, ("paused",), timeout=60)
    assert paused.status == "paused" and paused.requested is None
    assert asked_at <= paused.step <= asked_at + 1  # the step in flight finishes, no more
    state = RunFolder(job.key).read_state()
    assert state["status"] == "paused" and state["step"] == paused.step
    assert state["last_checkpoint"] == f"step-{paused.step}"
    time.sleep(0.3)
    assert manager.get(job.key).step == paused.step

    manager.unpause(job.key)
    _wait_for(lambda: manager.get(job.key).step >= paused.step + 3, what="training after continue")
    assert manager.get(job.key).status == "running"
    assert RunFolder(job.key).read_state()["status"] == "running"

    assert manager.stop(job.key).requested == "stop"
    stopped = manager.wait(job.key, timeout=60)
    assert stopped.status == "stopped" and stopped.requested is None
    state = RunFolder(job.key).read_state()
    assert state["status"] == "stopped" and state["step"] == stopped.step
    assert latest_checkpoint(runs_dir / "a" / "checkpoints")[0] == stopped.step
    assert _steps(job.key)[-1] == stopped.step

    resumed = manager.resume_run(job.key, steps=10)
    assert resumed.step == stopped.step and resumed.total_steps == stopped.step + 10
    done = manager.wait(job.key, timeout=60)
    assert done.status == "finished" and done.step == stopped.step + 10
    steps = _steps(job.key)
    assert steps == sorted(set(steps)) and steps[-1] == done.step
    assert RunFolder(job.key).read_state()["best_checkpoint"]["by"] == "recon+kl"


def test_two_runs_at_once_keep_their_files_apart(runs_dir, tiny_data):
    with JobManager(max_per_device=2) as manager:
        a = _start(manager, runs_dir, tiny_data, "a", steps=30, seed=1)
        b = _start(manager, runs_dir, tiny_data, "b", steps=45, seed=2)
        assert a.status == b.status == "running"
        for job, total, seed in ((a, 30, 1), (b, 45, 2)):
            done = manager.wait(job.key, timeout=90)
            assert done.status == "finished" and done.step == total
            run = RunFolder(job.key)
            assert run.read_config()["config"]["seed"] == seed
            assert run.read_state()["step"] == total
            assert _steps(job.key) == [1, *range(5, total + 1, 5)]   # step 1 at once, then every log_every
            assert [s for s, _ in list_checkpoints(run.checkpoints_dir)] == [total]
            assert [s for s, _ in run.sample_grids()][-1] == total
        losses_a = [r["loss"] for r in RunFolder(a.key).read_metrics()]
        losses_b = [r["loss"] for r in RunFolder(b.key).read_metrics()]
        assert losses_a != losses_b[:len(losses_a)]


def test_second_start_of_a_run_is_refused(manager, runs_dir, tiny_data):
    job = _start(manager, runs_dir, tiny_data, "a")
    with pytest.raises(GMError, match="already running"):
        _start(manager, runs_dir, tiny_data, "a")
    with pytest.raises(GMError, match="already running"):
        manager.resume_run(job.key, steps=5)
    with JobManager() as other:  # another manager (another tab's process) sees the live owner
        with pytest.raises(GMError, match="being trained by process"):
            other.resume_run(job.key, steps=5)
    manager.stop(job.key)
    assert manager.wait(job.key, timeout=60).status == "stopped"
    with pytest.raises(GMError, match="already exists"):
        _start(manager, runs_dir, tiny_data, "a")


def test_queue_per_device_and_its_limit(manager, runs_dir, tiny_data):
    a = _start(manager, runs_dir, tiny_data, "a")
    b = _start(manager, runs_dir, tiny_data, "b", steps=10)
    c = _start(manager, runs_dir, tiny_data, "c", steps=10)
    assert (a.status, b.status, c.status) == ("running", "queued", "queued")
    assert (b.queue_position, c.queue_position) == (0, 1)
    assert RunFolder(b.key).read_state()["status"] == "queued"
    with pytest.raises(GMError, match="queued"):
        manager.pause(b.key)

    assert manager.stop(c.key).status == "stopped"  # leaves the queue untrained
    assert RunFolder(c.key).read_state()["status"] == "stopped" and _steps(c.key) == []
    assert manager.get(b.key).queue_position == 0
    time.sleep(0.3)
    assert manager.get(b.key).status == "queued" and _steps(b.key) == []

    manager.max_per_device = 2  # a second slot: b starts beside a
    assert manager.wait(b.key, timeout=60).status == "finished"
    assert manager.get(a.key).status == "running"
    manager.stop(a.key)
    assert manager.wait(a.key, timeout=60).status == "stopped"
    assert manager.get(c.key).status == "stopped" and list_checkpoints(Path(c.key) / "checkpoints") == []


def test_queued_job_starts_when_the_device_frees(manager, runs_dir, tiny_data):
    a = _start(manager, runs_dir, tiny_data, "a", steps=15)
    b = _start(manager, runs_dir, tiny_data, "b", steps=10)
    assert b.status == "queued"
    assert manager.wait(a.key, timeout=60).status == "finished"
    assert manager.wait(b.key, timeout=60).status == "finished"
    first_b = json.loads((Path(b.key) / "metrics.jsonl").read_text().splitlines()[0])
    assert first_b["step"] == 1 and RunFolder(b.key).read_state()["step"] == 10   # b's own step 1, at once
    assert _steps(b.key) == [1, 5, 10]


def test_nan_marks_the_run_diverged_and_it_resumes_with_other_settings(
        manager, runs_dir, tiny_data, monkeypatch):
    real_step = VAETrainer.train_step

    def poisoned(self, batch):
        if self.step == 22:  # step 23 blows up: a weight becomes NaN, as in a real divergence
            with torch.no_grad():
                next(self.vae.parameters()).fill_(float("nan"))
        return real_step(self, batch)

    monkeypatch.setattr(VAETrainer, "train_step", poisoned)
    job = _start(manager, runs_dir, tiny_data, "nan", steps=40, checkpoint_every=10)
    done = manager.wait(job.key, timeout=60)
    assert done.status == "diverged" and done.step == 20
    assert "step 23" in done.error and "step 20" in done.error
    state = RunFolder(job.key).read_state()
    assert (state["status"], state["diverged_step"], state["diverged_metric"]) == ("diverged", 23, "loss")
    step, path = latest_checkpoint(Path(job.key) / "checkpoints")
    assert step == 20
    weights, _, _ = load_checkpoint(path)
    assert all(bool(torch.isfinite(w).all()) for w in weights.values())
    assert _steps(job.key) == [1, 5, 10, 15, 20]  # the bad window was never logged

    monkeypatch.undo()
    again = manager.resume_run(job.key, overrides={"lr": "5e-5"})
    assert again.step == 20 and again.total_steps == 40
    done = manager.wait(job.key, timeout=60)
    assert done.status == "finished" and done.step == 40 and done.error is None
    assert RunFolder(job.key).read_config()["config"]["lr"] == 5e-5
    assert _steps(job.key) == [1, *range(5, 41, 5)]   # the resume at step 20 adds no row at step 21
    assert all(math.isfinite(r["loss"]) for r in RunFolder(job.key).read_metrics())


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EACCES])
def test_disk_error_during_checkpoint_fails_the_job_and_keeps_the_last_one(
        manager, runs_dir, tiny_data, monkeypatch, code):
    import gm.runs.checkpoint as ckpt
    real_save, calls = ckpt.save_file, []

    def failing_save(tensors, filename, metadata=None):
        calls.append(filename)
        if len(calls) == 4:  # the second checkpoint, after its weights file is already written
            raise OSError(code, "No space left on device" if code == errno.ENOSPC else "Permission denied",
                          filename)
        return real_save(tensors, filename, metadata=metadata)

    monkeypatch.setattr(ckpt, "save_file", failing_save)
    if code == errno.EACCES:  # and the disk refuses state.json too: the manager alone knows
        real_write = RunFolder.write_state

        def failing_write(self, **updates):
            if updates.get("status") == "failed":
                raise OSError(code, "Permission denied", str(self.path / "state.json"))
            return real_write(self, **updates)

        monkeypatch.setattr(RunFolder, "write_state", failing_write)
    job = _start(manager, runs_dir, tiny_data, "full", steps=40, checkpoint_every=10)
    done = manager.wait(job.key, timeout=60)
    assert done.status == "failed"
    assert ("No space left" if code == errno.ENOSPC else "Permission denied") in done.error
    assert "resume" in done.error
    state = RunFolder(job.key).read_state()
    if code == errno.ENOSPC:
        assert state["status"] == "failed" and state["error"] == done.error
    else:
        assert state["status"] == "running"  # stale, but this manager may still resume it
    assert state["last_checkpoint"] == "step-10"
    checkpoints = Path(job.key) / "checkpoints"
    assert [p.name for p in checkpoints.iterdir()] == ["step-10"]  # no half-written step-20 left
    assert load_checkpoint(checkpoints / "step-10")[2] == 10

    monkeypatch.undo()
    manager.resume_run(job.key, steps=5)
    done = manager.wait(job.key, timeout=60)
    assert done.status == "finished" and done.step == 15


def test_best_checkpoint_survives_pruning(manager, runs_dir, tiny_data, monkeypatch):
    # Rank checkpoints by distance to step 10 so the best one is neither the newest nor the first.
    monkeypatch.setattr(VAETrainer, "checkpoint_score", lambda self, record: ("dist", abs(self.step - 10)),
                        raising=False)
    job = _start(manager, runs_dir, tiny_data, "best", steps=30, checkpoint_every=5, keep_checkpoints=1)
    assert manager.wait(job.key, timeout=60).status == "finished"
    assert [s for s, _ in list_checkpoints(Path(job.key) / "checkpoints")] == [10, 30]
    best = RunFolder(job.key).read_state()["best_checkpoint"]
    assert best == {"name": "step-10", "step": 10, "by": "dist", "value": 0.0}


def test_shutdown_stops_everything_and_refuses_new_jobs(runs_dir, tiny_data):
    manager = JobManager()
    a = _start(manager, runs_dir, tiny_data, "a")
    b = _start(manager, runs_dir, tiny_data, "b")
    _wait_for(lambda: manager.get(a.key).step >= 3, what="a few steps")
    assert manager.shutdown(timeout=60)
    assert manager.get(a.key).status == "stopped" and manager.get(b.key).status == "stopped"
    assert RunFolder(a.key).read_state()["status"] == "stopped"
    assert latest_checkpoint(Path(a.key) / "checkpoints")[0] == manager.get(a.key).step
    assert all(j.status in FINAL_STATUSES for j in manager.jobs())
    with pytest.raises(GMError, match="shut down"):
        _start(manager, runs_dir, tiny_data, "c")


def test_user_errors_are_one_clear_sentence(manager, runs_dir, tiny_data):
    with pytest.raises(GMError, match="Unknown model"):
        manager.start_run("nope", runs_dir=runs_dir)
    with pytest.raises(GMError, match="lr"):
        manager.start_run("vae", {"lr": "fast"}, runs_dir=runs_dir, data_dir=str(tiny_data))
    with pytest.raises(GMError, match="No run"):
        manager.resume_run(runs_dir / "missing")
    with pytest.raises(GMError, match="No job"):
        manager.get(runs_dir / "missing")
    with pytest.raises(GMError, match="larger than the dataset"):
        manager.start_run("vae", {"batch_size": 512}, runs_dir=runs_dir, data_dir=str(tiny_data))
    assert not (runs_dir / "missing").exists() and list(runs_dir.iterdir()) == []


def test_resume_overrides_reach_the_optimizer(runs_dir, tiny_data):
    from gm.config import from_dict
    from gm.data import load_dataset
    from gm.runs.loop import new_session, open_session, train
    from gm.trainers.vae import VAEConfig

    data = load_dataset("dsprites", tiny_data)
    session = new_session("vae", from_dict(VAEConfig, SMALL), runs_dir=runs_dir, name="o", device="cpu", steps=10,
                          dataset=data)
    assert train(session) == "finished"
    again = open_session(runs_dir / "o", steps=5, overrides={"lr": "5e-5"}, dataset=data)
    group = again.trainer.opt.param_groups[0]
    assert group["lr"] == 5e-5 and group["betas"] == (0.9, 0.999)  # loaded state, new lr
    again.close()  # an opened session holds the run's lock until it trains or is closed
    # Not trained after the override: config.json says 5e-5, the checkpoint was made with 1e-4.
    later = open_session(runs_dir / "o", steps=5, dataset=data)
    assert later.trainer.opt.param_groups[0]["lr"] == 5e-5
    assert train(later) == "finished"
    _, state, _ = load_checkpoint(latest_checkpoint(runs_dir / "o" / "checkpoints")[1])
    assert state["config"]["lr"] == 5e-5
    assert state["trainer"]["optimizers"]["vae"]["param_groups"][0]["lr"] == 5e-5


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_cli_train_stops_at_a_checkpoint_on_ctrl_c_and_sigterm(runs_dir, tiny_data, capsys, sig):
    """`python -m gm train` runs a job-manager job in the foreground; Ctrl-C / SIGTERM = stop."""
    from gm.cli import main

    run, before = runs_dir / "cli", signal.getsignal(signal.SIGTERM)

    def interrupt() -> None:  # once training is under way and run_foreground has its handlers
        _wait_for(lambda: (run / "metrics.jsonl").exists() and (run / "metrics.jsonl").stat().st_size
                  and signal.getsignal(signal.SIGTERM) is not before, what="training")
        os.kill(os.getpid(), sig)

    threading.Thread(target=interrupt, daemon=True).start()
    code = main(["train", "vae", "--steps", str(LONG), "--device", "cpu", "--runs-dir", str(runs_dir),
                 "--name", "cli", "--data-dir", str(tiny_data), "--quiet", "--set", "width=0.25",
                 "--set", "batch_size=16", "--set", "log_every=1"])
    state = RunFolder(run).read_state()
    assert code == 0 and state["status"] == "stopped" and state["step"] > 0
    assert capsys.readouterr().out.startswith(f"stopped: {run.resolve()} at step {state['step']}")
    assert latest_checkpoint(run / "checkpoints")[0] == state["step"]
    assert _steps(run)[-1] == state["step"]
    assert signal.getsignal(signal.SIGTERM) is before  # put back


def test_step_mode_one_step_then_paused_with_its_row_and_preview(manager, runs_dir, tiny_data):
    """GAN Lab's step mode: a paused job takes exactly one step per request, stays paused, writes
    that step's metrics row at once and redraws the live preview from the model in memory."""
    job = _start(manager, runs_dir, tiny_data, "stepper")
    with pytest.raises(GMError, match="not paused"):
        manager.step(job.key)          # a running job has no single steps
    _wait_for(lambda: manager.get(job.key).step >= 3, what="steps")
    manager.pause(job.key)
    paused = manager.wait(job.key, ("paused",), timeout=60)
    first = _wait_for(lambda: manager.preview(job.key), what="a preview while paused")
    assert first.step == paused.step and first.pixels.ndim in (2, 3) and first.pixels.dtype.name == "uint8"
    checkpoints = len(list_checkpoints(runs_dir / "stepper" / "checkpoints"))

    for k in (1, 2, 3):
        manager.step(job.key)
        want = paused.step + k
        stepped = _wait_for(lambda: (p := manager.preview(job.key)) and p.step == want and p,  # noqa: B023
                            what=f"single step {k}")
        assert _steps(job.key)[-1] == paused.step + k       # its row is out at once (log_every=5)
        assert manager.get(job.key).status == "paused"
        assert not (stepped.pixels == first.pixels).all()     # the preview moved with the model
    time.sleep(0.3)
    assert manager.get(job.key).step == paused.step + 3     # no step beyond the ones asked for
    assert RunFolder(job.key).read_state()["status"] == "paused"
    assert len(list_checkpoints(runs_dir / "stepper" / "checkpoints")) == checkpoints  # no save per step

    manager.unpause(job.key)
    _wait_for(lambda: manager.get(job.key).step >= paused.step + 8, what="training after continue")
    assert manager.get(job.key).status == "running"
    manager.stop(job.key)
    stopped = manager.wait(job.key, timeout=60)
    assert stopped.status == "stopped" and manager.preview(job.key) is None


def test_live_preview_is_drawn_only_while_watched(manager, runs_dir, tiny_data):
    job = _start(manager, runs_dir, tiny_data, "watched")
    _wait_for(lambda: manager.get(job.key).step >= 3, what="steps")
    assert manager.preview(job.key) is None                  # nobody asked yet: nothing drawn
    first = _wait_for(lambda: manager.preview(job.key), what="the first preview")
    assert first.step >= 3
    later = _wait_for(lambda: (p := manager.preview(job.key)) and p.step > first.step and p,
                      timeout=30, what="a newer preview")
    assert later.made > first.made
    manager.stop(job.key)
    manager.wait(job.key, timeout=60)

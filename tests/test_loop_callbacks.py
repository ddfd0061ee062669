"""The training loop with callbacks: custom callbacks hear every step and row in order, a loop
without grids or checkpoints writes none, the defaults keep the run folder's cadence (a grid per
epoch, checkpoints, best-of, pause/stop), and divergence still ends the run as diverged."""

from __future__ import annotations

import threading
from typing import Any

import pytest
import torch

from gm.config import with_overrides
from gm.data.base import ImageDataset
from gm.registry import get_spec
from gm.runs.callbacks import Callback, Control, default_callbacks
from gm.runs.checkpoint import latest_checkpoint, list_checkpoints, load_checkpoint
from gm.runs.folder import RunFolder
from gm.runs.loop import Loop, new_session, train

# 64 images in batches of 8: an epoch is 8 steps.
SMALL = {"width": 0.125, "batch_size": 8, "log_every": 3, "sample_every": 7, "checkpoint_every": 6,
         "keep_checkpoints": 2}


def fake_sprites(n: int = 64) -> ImageDataset:
    g = torch.Generator().manual_seed(0)
    return ImageDataset(name="dsprites", max_value=1,
                        images=torch.randint(0, 2, (n, 1, 64, 64), dtype=torch.uint8, generator=g))


def session_of(runs_dir, name: str, steps: int, **values: Any):
    config = with_overrides(get_spec("vae").config_cls(), {**SMALL, **values}, model="vae")
    return new_session("vae", config, runs_dir=runs_dir, name=name, device="cpu", steps=steps,
                       dataset=fake_sprites())


class Recorder(Callback):
    """Every hook it hears, in order."""

    def __init__(self) -> None:
        self.events: list[tuple] = []

    def on_start(self, loop: Loop) -> None:
        self.events.append(("start", loop.step))

    def on_step_end(self, loop: Loop, step: int, metrics: dict[str, Any]) -> None:
        assert step == loop.step and "loss" in metrics
        self.events.append(("step", step))

    def on_log(self, loop: Loop, record: dict[str, Any]) -> None:
        self.events.append(("log", loop.step, record))

    def on_save(self, loop: Loop) -> None:
        self.events.append(("save", loop.step))

    def on_pause(self, loop: Loop) -> None:
        self.events.append(("pause", loop.step))

    def on_resume(self, loop: Loop) -> None:
        self.events.append(("resume", loop.step))

    def on_end(self, loop: Loop, status: str) -> None:
        self.events.append(("end", status))


def _grids(run_dir) -> list[int]:
    return [s for s, _ in RunFolder(run_dir).sample_grids()]


def _checkpoints(run_dir) -> list[int]:
    return [s for s, _ in list_checkpoints(run_dir / "checkpoints")]


def test_a_custom_callback_hears_every_step_and_row_in_order(runs_dir):
    session, seen = session_of(runs_dir, "r", steps=10), Recorder()
    # Listed first, it hears each step before what the step sets off (a row, a save point).
    assert train(session, callbacks=[seen, *default_callbacks()]) == "finished"
    kinds = [e[:2] for e in seen.events if e[0] != "log"]
    assert kinds == [("start", 0), ("step", 1), ("step", 2), ("step", 3), ("step", 4), ("step", 5),
                     ("step", 6), ("save", 6), ("step", 7), ("step", 8), ("step", 9), ("step", 10),
                     ("save", 10), ("end", "finished")]
    # Each row is heard right after the step that wrote it, and it is the row on disk.
    logs = [(i, e) for i, e in enumerate(seen.events) if e[0] == "log"]
    assert [e[1] for _, e in logs] == [1, 3, 6, 9, 10]   # step 1 at once, every log_every, the end
    for i, e in logs:
        assert seen.events[i - 1] == ("step", e[1])
    rows = RunFolder(session.run.path).read_metrics()
    assert [{k: v for k, v in r.items() if k not in ("step", "epoch", "time")} for r in rows] == \
        [e[2] for _, e in logs]


def test_without_grid_and_checkpoint_callbacks_nothing_but_metrics_is_written(runs_dir):
    session = session_of(runs_dir, "bare", steps=17)   # an epoch's end, sample_every and checkpoint_every all fall in it
    assert train(session, callbacks=default_callbacks(grids=False, checkpoints=False)) == "finished"
    run = session.run
    assert _grids(run.path) == [] and _checkpoints(run.path) == []
    assert [r["step"] for r in run.read_metrics()] == [1, 3, 6, 9, 12, 15, 17]
    state = run.read_state()
    assert state["status"] == "finished" and state["last_checkpoint"] is None
    assert session.last_checkpoint_step is None

    quiet = session_of(runs_dir, "quiet", steps=5)
    assert train(quiet, callbacks=[]) == "finished" and quiet.trainer.step == 5
    assert quiet.run.read_metrics() == [] and _grids(quiet.run.path) == []


def test_default_callbacks_keep_the_grid_and_checkpoint_cadence(runs_dir):
    session = session_of(runs_dir, "d", steps=20)
    assert train(session) == "finished"
    run = session.run
    # sample_every 7 (7, 14), each epoch's end (8, 16) and the finish (20).
    assert _grids(run.path) == [7, 8, 14, 16, 20]
    # checkpoint_every 6 and the end: 6, 12, 18, 20; the newest two and the best are kept.
    rows = run.read_metrics()
    windows = {6: [1, 3, 6], 12: [9, 12], 18: [15, 18], 20: [20]}   # step 1's row counts toward step 6
    score = {s: sum(r["recon"] + r["kl"] for r in rows if r["step"] in w) / len(w) for s, w in windows.items()}
    best = None
    for s in (6, 12, 18, 20):
        if best is None or score[s] <= score[best]:
            best = s
    assert _checkpoints(run.path) == sorted({18, 20, best})
    state = run.read_state()
    assert state["best_checkpoint"] == {"name": f"step-{best}", "step": best, "by": "recon+kl",
                                        "value": pytest.approx(score[best])}
    assert (state["status"], state["step"], state["last_checkpoint"]) == ("finished", 20, "step-20")
    assert [r["step"] for r in rows] == [1, 3, 6, 9, 12, 15, 18, 20]


def test_the_best_checkpoint_outlives_pruning(runs_dir):
    session = session_of(runs_dir, "b", steps=20)
    t = session.trainer
    # rows 1, 3, 6 -> (3 + 1 + 2) / 3 = 2.0; rows 9, 12 -> 6.5; 15, 18 -> 12.5; 20 -> 16: step 6 is best
    t.checkpoint_score = lambda record: ("dist", abs(t.step - 4))
    assert train(session) == "finished"
    assert _checkpoints(session.run.path) == [6, 18, 20]
    assert session.run.read_state()["best_checkpoint"] == {"name": "step-6", "step": 6, "by": "dist", "value": 2.0}


def test_checkpoint_seconds_saves_on_time(runs_dir):
    session = session_of(runs_dir, "t", steps=4, keep_checkpoints=10)
    session.config.checkpoint_seconds = 0.0   # below the form's minimum: every step is overdue
    assert train(session) == "finished"
    assert _checkpoints(session.run.path) == [1, 2, 3, 4]


def test_pause_saves_and_waits_then_a_callback_can_stop_the_run(runs_dir):
    control, statuses = Control(), []

    class PauseAtFourStopAtSeven(Recorder):
        def on_step_end(self, loop: Loop, step: int, metrics: dict[str, Any]) -> None:
            super().on_step_end(loop, step, metrics)
            if step == 4:
                control.request_pause()
                threading.Timer(0.05, control.request_continue).start()
            if step == 7:
                loop.stop()

    session, seen = session_of(runs_dir, "p", steps=20), PauseAtFourStopAtSeven()
    status = train(session, callbacks=[*default_callbacks(control, on_status=statuses.append), seen])
    assert status == "stopped" and session.trainer.step == 7
    assert statuses == ["running", "paused", "running"]
    kinds = [e[:2] for e in seen.events if e[0] not in ("log", "step")]
    assert kinds == [("start", 0), ("save", 4), ("pause", 4), ("resume", 4), ("save", 6), ("save", 7),
                     ("end", "stopped")]
    assert _checkpoints(session.run.path) == [6, 7]   # keep_checkpoints 2: step 4's is pruned
    state = session.run.read_state()
    assert (state["status"], state["step"], state["last_checkpoint"]) == ("stopped", 7, "step-7")


@pytest.mark.filterwarnings("ignore:invalid value encountered in cast")  # step 14's grid, drawn before the row that notices
def test_a_nan_still_ends_the_run_as_diverged_with_nothing_saved_after_it(runs_dir):
    session, seen = session_of(runs_dir, "nan", steps=20), Recorder()
    t, real_step = session.trainer, session.trainer.train_step

    def poisoned(batch):
        if t.step == 13:  # step 14 trains on NaN weights, as in a real divergence
            with torch.no_grad():
                next(t.model.parameters()).fill_(float("nan"))
        return real_step(batch)

    t.train_step = poisoned
    assert train(session, callbacks=[*default_callbacks(), seen]) == "diverged"
    state = session.run.read_state()
    assert (state["status"], state["diverged_step"], state["diverged_metric"]) == ("diverged", 14, "loss")
    assert "step 14" in session.error and "the last good checkpoint is step 12" in session.error
    assert latest_checkpoint(session.run.path / "checkpoints")[0] == 12 == session.last_checkpoint_step
    weights, _, _ = load_checkpoint(latest_checkpoint(session.run.path / "checkpoints")[1])
    assert all(bool(torch.isfinite(w).all()) for w in weights.values())
    assert [r["step"] for r in session.run.read_metrics()] == [1, 3, 6, 9, 12]  # the bad window never logged
    assert not any(e[0] == "end" for e in seen.events)


def test_callbacks_and_control_arguments_are_not_mixed(runs_dir):
    session = session_of(runs_dir, "x", steps=2)
    with pytest.raises(TypeError, match="default_callbacks"):
        train(session, Control(), callbacks=[])

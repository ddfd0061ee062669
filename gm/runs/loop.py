"""The training loop: draw a batch, train_step, tell the callbacks. Nothing else.

One loop serves the CLI (foreground) and the job manager (background thread). It never touches a
UI: what it writes to the run folder (metrics.jsonl, sample grids, checkpoints) and reports
(progress, pause/stop) is done by callbacks (gm.runs.callbacks), so a benchmark or a test can run
the same loop with only the ones it wants. Sessions (building and resuming a run) live in
gm.runs.session and are re-exported here, where callers have always found them.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from typing import Any

import torch

from gm.device import tune_host_allocator
from gm.errors import GMError
from gm.runs.callbacks import (  # noqa: F401 (re-exported: callers import them from here)
    HOOKS,
    Callback,
    Checkpointer,
    Control,
    Diverged,
    MetricsLogger,
    PauseStop,
    Progress,
    ProgressReporter,
    SampleGrids,
    default_callbacks,
)
from gm.runs.distributed import is_collective_failure
from gm.runs.lock import host_id  # noqa: F401 (re-exported: callers import it from here)
from gm.runs.session import (  # noqa: F401 (re-exported: callers import them from here)
    ResumePlan,
    Session,
    create_run,
    new_session,
    open_planned,
    open_session,
    plan_new,
    plan_resume,
    run_config,
    steps_for_epochs,
    take_lock,
)


class Loop:
    """A running loop as its callbacks see it: the session, the training clock, images drawn, and
    the actions a callback may ask for. Hooks go to the callbacks in their order."""

    def __init__(self, session: Session, callbacks: Sequence[Callback]) -> None:
        self.session, self.trainer = session, session.trainer
        self.images_seen = 0            # over all processes
        self.stop_requested = False
        self.save_requested = False     # a save asked for by one rank, taken by all at the next step
        # Only the hooks a callback overrides are called: a step costs no empty calls.
        self._hooks = {name: [getattr(cb, name) for cb in callbacks
                              if getattr(type(cb), name, None) not in (None, getattr(Callback, name))]
                       for name in HOOKS}
        self._started = time.perf_counter() - session.elapsed

    @property
    def step(self) -> int:
        return self.trainer.step

    def emit(self, hook: str, *args: Any) -> None:
        for fn in self._hooks[hook]:
            fn(self, *args)

    def clock(self) -> float:
        """Seconds of training in this run so far (earlier sessions included, pauses not)."""
        return time.perf_counter() - self._started

    def flush(self) -> None:
        """Have buffered metrics written now (raises Diverged on a non-finite value)."""
        self.emit("on_flush")

    def log(self, record: dict[str, Any]) -> None:
        self.emit("on_log", record)

    def save(self) -> None:
        """A save point: everything flushed, then every callback writes what it keeps (checkpoints)."""
        self.flush()
        self.emit("on_save")

    def save_soon(self) -> None:
        """A save point now on one process; under torchrun at the start of the next step, where the
        ranks agree on it (a rank's own clock must not make it save alone)."""
        if self.session.group is None:
            self.save()
        else:
            self.save_requested = True

    def on_main(self, fn: Callable[[], Any]) -> Any:
        """fn() where the run folder is written (Session.on_main)."""
        return self.session.on_main(fn)

    def stop(self) -> None:
        """End the loop before the next step; it then saves and ends as "stopped"."""
        self.stop_requested = True

    def paused(self) -> None:
        """Tell the callbacks a pause began (PauseStop does the waiting)."""
        self.emit("on_pause")

    def resumed(self) -> None:
        """Tell the callbacks the pause ended; the clocks restart (paused time is not training time)."""
        self._started = time.perf_counter() - self.session.elapsed
        self.emit("on_resume")


def _record_failure(session: Session, status: str, error: str, **extra: Any) -> str:
    """Note a failed/diverged run in memory and, when the disk still allows it, in state.json
    (rank 0's job under torchrun)."""
    session.error = error
    if not session.is_main:
        return status
    try:
        session.run.write_state(status=status, error=error, **extra)
    except OSError:
        pass  # the disk that just failed may refuse this too; the job manager still holds the message
    return status


def _os_error_message(exc: OSError) -> str:
    what = exc.strerror or str(exc)
    where = f" ({exc.filename})" if exc.filename else ""
    return (f"Could not write the run folder: {what}{where}. Free disk space or fix permissions, "
            f"then resume the run from its last checkpoint.")


def train(session: Session, control: Control | None = None,
          on_progress: Callable[[Progress], None] | None = None,
          on_status: Callable[[str], None] | None = None, *,
          callbacks: Sequence[Callback] | None = None) -> str:
    """Train until total_steps, a stop request or an error; returns the final status.

    Statuses: finished, stopped (stop request or Ctrl-C, then a last save point), diverged
    (a non-finite metric, or a non-finite weight or optimizer state at a save point: nothing is
    saved after the last good checkpoint, which stays the resume point), failed (disk full, no
    permission, a GMError or an exception, which is re-raised; the message is in state.json and
    `session.error`).

    The run's lock (gm.runs.lock) is held throughout: the session's, taken at planning, or taken
    here (a GMError naming the holder if another trainer has it); it is given back on return.

    ``callbacks``: what runs beside the training (None: ``default_callbacks(control, on_progress,
    on_status)``, i.e. metrics log, grids, checkpoints, pause/stop, progress); give either them or
    control / on_progress / on_status.
    """
    if callbacks is None:
        callbacks = default_callbacks(control, on_progress, on_status)
    elif control is not None or on_progress is not None or on_status is not None:
        raise TypeError("train(): pass control, on_progress and on_status to default_callbacks() "
                        "(or to PauseStop / ProgressReporter) when giving callbacks=")
    if not session.is_main:   # torchrun's other ranks: rank 0 holds the lock and writes
        return _train_locked(session, callbacks)
    session.lock = take_lock(session.run, session.lock)
    try:
        return _train_locked(session, callbacks)
    finally:
        session.lock.release()


def _train_locked(session: Session, callbacks: Sequence[Callback]) -> str:
    run, t = session.run, session.trainer
    tune_host_allocator()  # once per process: no page faults for the same activations every step
    t.train(True)
    # pid and host are information (who trains it); the lock, not them, keeps a second trainer out.
    processes = session.group.world_size if session.group is not None else None
    session.on_main(lambda: run.write_state(status="running", error=None, total_steps=session.total_steps,
                                            pid=os.getpid(), host=host_id(), processes=processes))
    loop = Loop(session, callbacks)
    status = "finished"
    try:
        loop.emit("on_start")
        try:
            while t.step < session.total_steps:
                loop.emit("on_step_start")
                if loop.stop_requested:
                    status = "stopped"
                    break
                batch = session.batcher.draw(t.batches_per_step())
                metrics = t.train_step(batch)
                loop.images_seen += batch.num_images * t.world_size
                loop.emit("on_step_end", t.step, metrics)
        except KeyboardInterrupt:
            status = "stopped"
        loop.save()
        loop.emit("on_end", status)
    except Diverged as exc:
        last = session.last_checkpoint_step
        where = (f"the last good checkpoint is step {last}; resume it" if last is not None else
                 "there is no checkpoint before it; resume to start over")
        return _record_failure(session, "diverged", f"Training diverged: {exc}; {where} with other "
                               f"settings (e.g. a lower lr).", diverged_step=exc.step,
                               diverged_metric=exc.metric)
    except GMError as exc:
        return _record_failure(session, "failed", str(exc))
    except OSError as exc:  # disk full, permission denied: the environment, not a bug
        return _record_failure(session, "failed", _os_error_message(exc))
    except torch.OutOfMemoryError:
        return _record_failure(session, "failed", f"Out of memory on {session.device}; resume with a "
                               f"smaller batch_size or width, or on another device.")
    except Exception as exc:
        if session.group is not None and is_collective_failure(exc):   # a rank died: not a bug here
            last = session.last_checkpoint_step
            return _record_failure(session, "failed", f"{session.group.describe_failure(exc)}; resume the "
                                   f"run from its last checkpoint (step {last if last is not None else 0}).")
        # a bug: recorded, never swallowed silently
        _record_failure(session, "failed", f"{type(exc).__name__}: {exc}")
        raise
    session.on_main(lambda: run.write_state(status=status))
    return status

"""What the training loop does besides training, one callback each (the Lightning/Fabric idea).

The loop (gm.runs.loop) only draws batches and calls ``train_step``; everything else hears about it
through these hooks, called in the order the callbacks are listed:

    on_start(loop)                      before the first step
    on_step_start(loop)                 before each batch is drawn (pause and stop take effect here)
    on_step_end(loop, step, metrics)    after each train_step; metrics as it returned them
    on_flush(loop)                      write out what is buffered (the metrics window)
    on_log(loop, record)                a metrics row was written: record = its means, without step/epoch/time
    on_save(loop)                       a save point: periodic, pause, stop or end; everything is flushed
    on_pause(loop) / on_resume(loop)    around a pause (paused time is not training time)
    on_end(loop, status)                "finished" or "stopped", after the last save point

A hook may set off others at once (a row written in on_step_end reaches every on_log, a save
point flushes first), so a callback listed after the one that set them off hears those before its
own on_step_end: list a callback first to hear each step before its consequences.

A run that diverges or fails ends without on_end: nothing more is written after a bad window or a
failing disk. ``loop`` is the running :class:`gm.runs.loop.Loop`: its session, step, clock, and the
actions a callback may ask for (``flush``, ``save``, ``stop``).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch

from gm.config import to_dict
from gm.errors import GMError
from gm.images import make_grid, save_png
from gm.runs.checkpoint import NonFiniteState, is_complete, prune_checkpoints, save_checkpoint

if TYPE_CHECKING:
    from gm.runs.loop import Loop
    from gm.runs.session import Session


class Callback:
    """Base class: every hook is optional. The loop calls only the hooks a subclass overrides,
    looked up on the class when training starts (a step costs no empty calls)."""

    def on_start(self, loop: Loop) -> None:
        pass

    def on_step_start(self, loop: Loop) -> None:
        pass

    def on_step_end(self, loop: Loop, step: int, metrics: dict[str, Any]) -> None:
        pass

    def on_flush(self, loop: Loop) -> None:
        pass

    def on_log(self, loop: Loop, record: dict[str, Any]) -> None:
        pass

    def on_save(self, loop: Loop) -> None:
        pass

    def on_pause(self, loop: Loop) -> None:
        pass

    def on_resume(self, loop: Loop) -> None:
        pass

    def on_end(self, loop: Loop, status: str) -> None:
        pass


HOOKS = tuple(name for name in vars(Callback) if name.startswith("on_"))


# ---- pause / stop -------------------------------------------------------------------------------
class Control:
    """Thread-safe pause/stop requests, shared by a job's owner and its training loop."""

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._running = threading.Event()
        self._running.set()
        self._steps_lock = threading.Lock()
        self._single_steps = 0          # steps asked for while paused (GAN Lab's step mode)

    def request_stop(self) -> None:
        self._stop.set()
        self._running.set()

    def request_pause(self) -> None:
        self._running.clear()

    def request_continue(self) -> None:
        with self._steps_lock:
            self._single_steps = 0
        self._running.set()

    def request_step(self) -> None:
        """One training step, then paused again (only while paused; a running job ignores it)."""
        with self._steps_lock:
            self._single_steps += 1
        self._running.set()             # wakes the waiting loop; take_step() tells it why

    def take_step(self) -> bool:
        """Whether a single step was asked for (and count it as taken)."""
        with self._steps_lock:
            if self._single_steps <= 0:
                return False
            self._single_steps -= 1
            if self._single_steps == 0:
                self._running.clear()   # the pause holds after this step
            return True

    @property
    def stop_requested(self) -> bool:
        return self._stop.is_set()

    @property
    def pause_requested(self) -> bool:
        return not self._running.is_set()

    def wait_while_paused(self, timeout: float = 0.2) -> None:
        self._running.wait(timeout)


class PauseStop(Callback):
    """Honours a Control's requests before each step, so both take effect within one step: a pause
    saves everything, marks the run paused and waits; a stop ends the loop (it then saves). While
    paused, :meth:`Control.request_step` lets one step through and pauses again (step mode).
    ``on_status`` hears "running" and "paused" as they happen (from the training thread)."""

    def _report(self, status: str) -> None:
        if self.on_status is not None:
            self.on_status(status)

    def on_start(self, loop: Loop) -> None:
        self._report("running")

    def __init__(self, control: Control, on_status: Callable[[str], None] | None = None) -> None:
        self.control = control
        self.on_status = on_status
        self._stepping = False          # the last step was a single step taken while paused

    def on_step_start(self, loop: Loop) -> None:
        control = self.control
        if self._stepping:
            # Back from a single step: its metrics go out at once (a chart point per step) and the
            # pause holds without another save, unless a continue or stop came meanwhile.
            self._stepping = False
            loop.flush()
            if control.pause_requested and not control.stop_requested:
                loop.paused()
                self._wait(loop)
                return
            loop.resumed()
            if not control.stop_requested:
                loop.session.run.write_state(status="running")
                self._report("running")
        if control.pause_requested and not control.stop_requested:
            loop.save()
            loop.session.run.write_state(status="paused")
            self._report("paused")
            loop.paused()
            self._wait(loop)
            return
        if control.stop_requested:
            loop.stop()

    def _wait(self, loop: Loop) -> None:
        """Wait out a pause: until continue, stop, or a single step (which stays paused after it)."""
        control = self.control
        while control.pause_requested and not control.stop_requested:
            control.wait_while_paused()
        if not control.stop_requested and control.take_step():
            self._stepping = True
            return
        loop.resumed()
        if not control.stop_requested:
            loop.session.run.write_state(status="running")
            self._report("running")
        else:
            loop.stop()


class SharedPauseStop(PauseStop):
    """PauseStop for torchrun's ranks: before every step the ranks agree (one small all-reduce) on
    stop, pause and a pending save, so a request that reached any rank (Ctrl-C or SIGTERM there,
    the app's request in control.json, which rank 0 reads, a rank's checkpoint clock) acts on all of
    them at the same step. While paused, the ranks agree again every ``poll`` seconds."""

    def __init__(self, control: Control, on_status: Callable[[str], None] | None = None,
                 poll: float = 0.2, since: float | None = None) -> None:
        super().__init__(control, on_status)
        self.poll = poll
        self.since = time.time() if since is None else since   # when this process started
        self._file_request: str | None = None
        self._file_seen: int | None = None   # control.json's mtime when last read

    def on_start(self, loop: Loop) -> None:
        run = loop.session.run
        if loop.session.is_main:
            # A request older than this process was for an earlier session (a stop it obeyed);
            # one written since (the app's stop while the processes were starting) is for this one.
            try:
                stale = run.control_path.stat().st_mtime < self.since
            except OSError:
                stale = False
            if stale:
                run.clear_request()
        super().on_start(loop)

    def _requests(self, loop: Loop) -> tuple[bool, bool]:
        """(stop, pause) as this rank sees them now."""
        if loop.session.is_main:
            # A stat per step; the file is read and parsed only when it changed.
            try:
                mtime = loop.session.run.control_path.stat().st_mtime_ns
            except OSError:
                mtime = None
            if mtime is not None and mtime != self._file_seen:
                self._file_seen = mtime
                request = loop.session.run.read_request()
                if request is not None:
                    self._file_request = request
        stop = self.control.stop_requested or self._file_request == "stop"
        pause = self.control.pause_requested or self._file_request == "pause"
        return stop, pause

    def on_step_start(self, loop: Loop) -> None:
        group = loop.session.group
        assert group is not None, "SharedPauseStop runs under torchrun only"
        stop, pause = self._requests(loop)
        stop, pause, save = group.any([stop, pause, loop.save_requested])
        loop.save_requested = False
        if pause and not stop:
            loop.save()
            loop.on_main(lambda: loop.session.run.write_state(status="paused"))
            self._report("paused")
            loop.paused()
            while pause and not stop:
                time.sleep(self.poll)
                stop, pause = group.any(self._requests(loop))
            loop.resumed()
            if not stop:
                loop.on_main(lambda: loop.session.run.write_state(status="running"))
                self._report("running")
        elif save and not stop:
            loop.save()
        if stop:
            loop.stop()


# ---- metrics window, metrics.jsonl, divergence ------------------------------------------------
class Diverged(Exception):
    def __init__(self, step: int, metric: str, value: float) -> None:
        super().__init__(f"'{metric}' became {value} at step {step}")
        self.step, self.metric, self.value = step, metric, value


class MetricsWindow:
    """Per-step metrics kept on the device until the next log; one host sync per flush."""

    def __init__(self) -> None:
        self.steps: list[int] = []
        self.scalars: list[dict[str, Any]] = []
        self.vectors: dict[str, torch.Tensor] = {}

    def add(self, step: int, metrics: dict[str, Any]) -> None:
        self.steps.append(step)
        row = {}
        for k, v in metrics.items():
            if isinstance(v, torch.Tensor) and v.dim() > 0:
                self.vectors[k] = v
            else:
                row[k] = v
        self.scalars.append(row)

    def flush(self, reduce: Callable[[torch.Tensor], torch.Tensor] | None = None) -> dict[str, Any] | None:
        """Mean of each scalar over the window; raises Diverged at the first non-finite value.
        ``reduce`` (under torchrun: the mean over the ranks) is applied to the window's tensor values
        first, so every rank logs, and checks, the same numbers."""
        if not self.steps:
            return None
        # Plain Python floats after one device->host copy: a table of small tensors cost more per
        # log than the copy itself (0.17 ms a step on a CPU, a sizeable part of the loop's own work).
        cells = [(i, k, v) for i, row in enumerate(self.scalars) for k, v in row.items()
                 if isinstance(v, torch.Tensor)]
        rows: list[dict[str, float]] = [{k: float(v) for k, v in row.items() if not isinstance(v, torch.Tensor)}
                                        for row in self.scalars]
        if cells:  # one device->host copy for the whole window
            stacked = torch.stack([v.detach().float().reshape(()) for _, _, v in cells])
            values = (reduce(stacked) if reduce is not None else stacked).cpu().tolist()
            for (i, k, _), value in zip(cells, values):
                rows[i][k] = value
        keys = list(dict.fromkeys(k for row in self.scalars for k in row))
        for step, row, original in zip(self.steps, rows, self.scalars):
            for k in keys:
                if k in original and not math.isfinite(row[k]):
                    raise Diverged(step, k, row[k])
        record: dict[str, Any] = {}
        for k in keys:
            present = [row[k] for row in rows if k in row]
            record[k] = sum(present) / len(present)
        for k, v in self.vectors.items():
            vals = v.detach().float()
            vals = (reduce(vals) if reduce is not None else vals).cpu()
            if not bool(torch.isfinite(vals).all()):
                raise Diverged(self.steps[-1], k, float("nan"))
            record[k] = vals.tolist()
        self.steps, self.scalars, self.vectors = [], [], {}
        return record


class MetricsLogger(Callback):
    """Collects each step's metrics in a window and writes their means to metrics.jsonl at step 1,
    every `log_every` steps and at every save point; a non-finite value raises Diverged, so a bad window
    is never logged and nothing after it is saved."""

    def __init__(self) -> None:
        self.window = MetricsWindow()

    def on_step_end(self, loop: Loop, step: int, metrics: dict[str, Any]) -> None:
        self.window.add(step, metrics)
        # Step 1 is logged at once: a new run's charts get their first point within a second
        # instead of after log_every steps (a resumed run already has points, and keeps the rows a
        # run trained without a break would have).
        if step % loop.session.config.log_every == 0 or step == 1:
            loop.flush()

    def on_flush(self, loop: Loop) -> None:
        group = loop.session.group
        record = self.window.flush(group.all_mean if group is not None else None)
        if record is None:
            return
        session = loop.session
        session.elapsed = loop.clock()
        row = {"step": loop.step, "epoch": round(session.batcher.epoch_float, 6),
               "time": round(session.elapsed, 4), **record}
        loop.on_main(lambda: session.run.append_metrics([row]))
        loop.log(record)


# ---- progress ---------------------------------------------------------------------------------
@dataclass
class Progress:
    step: int
    total_steps: int
    epoch: float
    images_per_sec: float
    eta_seconds: float | None
    elapsed: float
    metrics: dict[str, Any] = field(default_factory=dict)


class ProgressReporter(Callback):
    """Hands a :class:`Progress` (images/s since the previous row, ETA) to ``on_progress`` with each
    metrics row."""

    def __init__(self, on_progress: Callable[[Progress], None]) -> None:
        self.on_progress = on_progress
        self._since, self._images, self._images_per_sec = 0.0, 0, 0.0

    def _mark(self, loop: Loop) -> None:
        self._since, self._images = time.perf_counter(), loop.images_seen

    def on_start(self, loop: Loop) -> None:
        self._mark(loop)

    def on_resume(self, loop: Loop) -> None:
        self._mark(loop)  # a pause is not slow training

    def on_log(self, loop: Loop, record: dict[str, Any]) -> None:
        now, images = time.perf_counter(), loop.images_seen
        if images > self._images:
            self._images_per_sec = (images - self._images) / max(now - self._since, 1e-9)
        self._since, self._images = now, images
        session, ips = loop.session, self._images_per_sec
        remaining = session.total_steps - loop.step
        eta = remaining * loop.trainer.images_per_step() / ips if ips > 0 else None
        self.on_progress(Progress(loop.step, session.total_steps, session.batcher.epoch_float, ips, eta,
                                  session.elapsed, record))


# ---- sample grids ------------------------------------------------------------------------------
class SampleGrids(Callback):
    """The trainer's fixed-seed grid in samples/ every `sample_every` steps and at each epoch's end
    (early / middle / final pictures however short the run), and at the finish if the last step has
    none."""

    def on_step_end(self, loop: Loop, step: int, metrics: dict[str, Any]) -> None:
        if step % loop.session.config.sample_every == 0 or loop.session.batcher.ended_epoch:
            loop.on_main(lambda: self.write(loop.session))

    def on_end(self, loop: Loop, status: str) -> None:
        def finish() -> None:
            if status == "finished" and not any(s == loop.step for s, _ in loop.session.run.sample_grids()):
                self.write(loop.session)
        loop.on_main(finish)

    def write(self, session: Session) -> None:
        images, nrow = session.trainer.sample_grid()
        save_png(session.run.samples_dir / f"step-{session.trainer.step}.png", make_grid(images, nrow))


# ---- live preview ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Preview:
    """The trainer's fixed-noise grid as it looked at `step` (uint8 pixels, H x W x C), drawn from
    the model in memory: nothing written to the run folder."""

    step: int
    pixels: Any            # numpy uint8, H x W (grey) or H x W x 3
    made: float            # time.time() when drawn


class LivePreview(Callback):
    """Redraws the fixed-noise grid while somebody watches (the app's Monitor, GAN Lab style).

    Drawing happens in the training thread between two steps, so it never races the optimizer or
    flips a network's train/eval mode under it. It costs a forward pass of the grid, taken at most
    every ``every`` seconds, and only while :meth:`want` was called within the last ``linger``
    seconds (a tab that stopped polling costs nothing); on entering a pause and after a single step
    it is drawn at once, so a paused job always shows its current state.
    """

    def __init__(self, every: float = 2.0, linger: float = 10.0) -> None:
        self.every, self.linger = every, linger
        self._lock = threading.Lock()
        self._latest: Preview | None = None
        self._wanted_until = 0.0
        self._fresh = False      # a request arrived since the last drawing: draw at the next chance

    def want(self) -> Preview | None:
        """The latest preview (None before the first); keeps previews coming for ``linger`` s."""
        with self._lock:
            self._wanted_until = time.monotonic() + self.linger
            if self._latest is None:
                self._fresh = True
            return self._latest

    def on_step_end(self, loop: Loop, step: int, metrics: dict[str, Any]) -> None:
        now = time.monotonic()
        with self._lock:
            due = now < self._wanted_until and (
                self._fresh or self._latest is None or time.time() - self._latest.made >= self.every)
        if due:
            self.draw(loop.session)

    def on_pause(self, loop: Loop) -> None:
        self.draw(loop.session)

    def draw(self, session: Session) -> None:
        images, nrow = session.trainer.sample_grid()
        preview = Preview(session.trainer.step, make_grid(images, nrow), time.time())
        with self._lock:
            self._latest, self._fresh = preview, False


# ---- checkpoints -------------------------------------------------------------------------------
class Checkpointer(Callback):
    """Checkpoints every `checkpoint_every` steps, whenever `checkpoint_seconds` have passed since the
    last one (so a crash loses at most that much training time), and at every save point (pause,
    stop, end). Keeps the newest `keep_checkpoints` and the best by the trainer's
    ``checkpoint_score`` (the mean score of the rows logged since the previous checkpoint).

    Only a finite state is saved: the metrics window is flushed first (a non-finite metric raises
    Diverged), then every weight, buffer and optimizer tensor is checked; a NaN or Inf there (an
    update that broke the weights while its own loss was still finite) raises Diverged too, so the
    previous checkpoint stays the newest and the resume point."""

    def __init__(self) -> None:
        self._last_save = 0.0
        self._score_by, self._score_sum, self._score_count = "", 0.0, 0

    def on_start(self, loop: Loop) -> None:
        self._last_save = time.perf_counter()

    def on_resume(self, loop: Loop) -> None:
        self._last_save = time.perf_counter()  # paused time is not training time at risk

    def on_step_end(self, loop: Loop, step: int, metrics: dict[str, Any]) -> None:
        cfg = loop.session.config
        if step % cfg.checkpoint_every == 0:
            loop.save()
        elif time.perf_counter() - self._last_save >= cfg.checkpoint_seconds:
            loop.save_soon()   # under torchrun: at the next step, on every rank together

    def on_log(self, loop: Loop, record: dict[str, Any]) -> None:
        scored = loop.trainer.checkpoint_score(record)
        if scored is not None:
            self._score_by = scored[0]
            self._score_sum += scored[1]
            self._score_count += 1

    def on_save(self, loop: Loop) -> None:
        loop.flush()  # a save point flushes first; flushing again is free and makes sure of it
        self.write(loop.session)
        self._last_save = time.perf_counter()

    def write(self, session: Session) -> None:
        """Save the current step (unless it is already saved) and prune: keep the newest and the best.
        Raises Diverged, saving nothing, when the state holds a NaN or an Inf.

        Under torchrun every rank's noise RNG state is gathered into the checkpoint (``ranks``),
        then rank 0 alone writes it."""
        ranks = None
        if session.group is not None:
            check_ranks_agree(session)
            ranks = {"world_size": session.group.world_size,
                     "per_rank_batch": bool(getattr(session.config, "per_rank_batch", False)),
                     "noise_rng": session.group.gather_objects(session.trainer.noise.get_state())}
        session.on_main(lambda: self._write(session, ranks))

    def _write(self, session: Session, ranks: dict[str, Any] | None) -> None:
        t, run = session.trainer, session.run
        name = f"step-{t.step}"
        # Re-saving a step that is on disk (stop or pause right after a periodic save, or right after
        # a resume) would only refresh `elapsed`, and replacing a folder is the one non-atomic moment.
        if not (session.last_checkpoint_step == t.step and is_complete(run.checkpoints_dir / name)):
            state = {"trainer": t.state_dict(), "batcher": session.batcher.state_dict(),
                     "elapsed": session.elapsed, "config": to_dict(session.config)}
            if ranks is not None:
                state["ranks"] = ranks
            try:
                save_checkpoint(run.checkpoints_dir, t.step, t.weights(), state)
            except NonFiniteState as exc:
                raise Diverged(exc.step, exc.name, exc.value) from None
            session.last_checkpoint_step = t.step
            if self._score_count:
                value = self._score_sum / self._score_count
                if session.best is None or value <= float(session.best["value"]):
                    session.best = {"name": name, "step": t.step, "by": self._score_by, "value": value}
            self._score_sum, self._score_count = 0.0, 0
        protect = {int(session.best["step"])} if session.best else set()
        prune_checkpoints(run.checkpoints_dir, session.config.keep_checkpoints, protect=protect)
        run.write_state(step=t.step, epoch=session.batcher.epoch_float, last_checkpoint=name,
                        elapsed=session.elapsed, best_checkpoint=session.best)


def weights_fingerprint(model: torch.nn.Module) -> list[float]:
    """Per-tensor float64 sums of the weights every rank must hold alike: the parameters and the
    buffers other than batch norm's statistics (per-rank unless sync_bn), e.g. spectral norm's
    vectors."""
    per_rank = ("running_mean", "running_var", "num_batches_tracked")
    tensors = [t for name, t in model.state_dict().items() if not name.endswith(per_rank)]
    return torch.stack([t.detach().double().sum() for t in tensors]).cpu().tolist() if tensors else []


def check_ranks_agree(session: Session) -> None:
    """Under torchrun, at every checkpoint: the ranks still hold the same weights (rank 0 writes its
    own for all of them); a difference is a bug, stopped here with one sentence, not saved."""
    assert session.group is not None
    prints = session.group.gather_objects(weights_fingerprint(session.trainer.model))
    for rank, other in enumerate(prints[1:], start=1):
        if other != prints[0]:
            raise GMError(f"The weights of rank {rank} differ from rank 0's at step {session.trainer.step}; "
                          f"the processes no longer train one model. Resume from the last checkpoint and "
                          f"report this as a bug.")


def default_callbacks(control: Control | None = None, on_progress: Callable[[Progress], None] | None = None,
                      on_status: Callable[[str], None] | None = None, *,
                      grids: bool | SampleGrids = True, checkpoints: bool | Checkpointer = True) -> list[Callback]:
    """What ``train`` runs unless told otherwise: pause/stop, the metrics log, sample grids,
    checkpoints and progress reports, in the order they act after a step (log, grid, checkpoint).

    ``grids`` / ``checkpoints``: False leaves them out (a benchmark of the loop alone), an instance
    takes the standard one's place (e.g. one that times its writes).
    """
    callbacks: list[Callback] = [PauseStop(control or Control(), on_status), MetricsLogger()]
    if grids:
        callbacks.append(grids if isinstance(grids, SampleGrids) else SampleGrids())
    if checkpoints:
        callbacks.append(checkpoints if isinstance(checkpoints, Checkpointer) else Checkpointer())
    if on_progress is not None:
        callbacks.append(ProgressReporter(on_progress))
    return callbacks

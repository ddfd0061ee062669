"""Background training: a thread-safe job manager that runs training loops in daemon threads.

One manager per process. The app keeps it in ``st.cache_resource`` so every browser tab drives the
same jobs; the CLI runs one job through a manager in the foreground (:func:`run_foreground`), so the
terminal and the app behave the same. A job is one run folder, identified by the folder's absolute
path (``JobInfo.key``). Worker threads write only the run folder and this manager's memory; they
never call a UI.

One trainer per run, whatever the process: starting or resuming a run takes its lock
(gm.runs.lock) before anything of it is read, and the job holds it until its thread ends (a queued
job that is stopped gives it back at once); a run locked by another job, manager or process is
refused at once with one sentence naming the holder.

Lifecycle: ``queued`` (waiting for a device slot) -> ``running`` <-> ``paused`` -> ``finished`` |
``stopped`` | ``failed`` | ``diverged``. By default one job trains per device; the others wait in
FIFO order. A paused job keeps its slot (its model stays in memory): stop it to let the queue move.
Pause and stop act at the next step boundary (the loop checks :class:`Control` before every step)
and both checkpoint first.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
import traceback
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import torch

from gm.config import from_dict, to_dict
from gm.data import load_dataset
from gm.device import check_processes, resolve_device
from gm.errors import GMError
from gm.registry import get_spec
from gm.runs.callbacks import LivePreview, Preview
from gm.runs.folder import RunFolder, default_runs_dir
from gm.runs.launch import check_nproc, torchrun_command
from gm.runs.lock import holder
from gm.runs.loop import (
    Control,
    Progress,
    ResumePlan,
    Session,
    _os_error_message,
    default_callbacks,
    host_id,
    open_planned,
    plan_new,
    plan_resume,
    take_lock,
    train,
)
from gm.runs.reader import MetricsReader
from gm.runs.session import global_batch_size, refuse_weights_only
from gm.runs.shared_preview import PreviewReader, clear_preview

ACTIVE_STATUSES = ("queued", "running", "paused")
FINAL_STATUSES = ("finished", "stopped", "failed", "diverged")


@dataclass(frozen=True)
class JobInfo:
    """A snapshot of one job, safe to hand to any thread (the app renders these)."""

    key: str                      # absolute path of the run folder: the job's id
    name: str
    model: str
    device: str
    status: str                   # one of ACTIVE_STATUSES or FINAL_STATUSES
    step: int
    total_steps: int
    epoch: float = 0.0
    images_per_sec: float | None = None
    eta_seconds: float | None = None
    elapsed: float = 0.0          # seconds of training, over all sessions of the run
    metrics: dict[str, Any] = field(default_factory=dict)   # the last logged record
    error: str | None = None
    requested: str | None = None  # "pause" or "stop" while the request is on its way
    queue_position: int | None = None  # 0 = next on its device; None unless queued
    notes: tuple[str, ...] = ()   # warnings, e.g. a damaged newest checkpoint skipped on resume
    processes: int = 1            # > 1: trained by a torchrun subprocess

    @property
    def run_dir(self) -> Path:
        return Path(self.key)

    @property
    def active(self) -> bool:
        return self.status in ACTIVE_STATUSES

    @property
    def progress(self) -> float:
        return min(1.0, self.step / self.total_steps) if self.total_steps else 0.0


class _RunFolderControl(Control):
    """A Control whose requests also go to the run folder's control.json: how a job trained by a
    torchrun subprocess hears the app's pause, continue and stop (its rank 0 reads the file)."""

    def __init__(self, run: RunFolder) -> None:
        super().__init__()
        self.run = run

    def request_stop(self) -> None:
        super().request_stop()
        self.run.request("stop")

    def request_pause(self) -> None:
        super().request_pause()
        self.run.request("pause")

    def request_continue(self) -> None:
        super().request_continue()
        self.run.request("continue")


class _Job:
    """Mutable job record; every field is guarded by the manager's lock."""

    def __init__(self, plan: ResumePlan, device_key: str,
                 listener: Callable[[Progress], None] | None, processes: int = 1) -> None:
        cfg = plan.run.read_config()
        self.key = str(plan.run.path.resolve())
        self.name = plan.run.name
        self.model = cfg.get("model", plan.spec.name)
        self.device_key = device_key
        self.plan: ResumePlan | None = plan
        self.listener = listener
        self.processes = processes       # > 1: trained by a torchrun subprocess (gm.runs.torchrun)
        self.control = Control() if processes == 1 else _RunFolderControl(plan.run)
        # Drawn from the model in memory; a torchrun job's model lives in other processes, whose
        # rank 0 draws it into the run folder while asked (gm.runs.shared_preview).
        self.preview = LivePreview() if processes == 1 else PreviewReader(plan.run)
        self.thread: threading.Thread | None = None
        self.session: Session | None = None
        self.status = "queued"
        self.step = plan.start
        self.total_steps = plan.total_steps
        self.epoch = float(plan.run.read_state().get("epoch") or 0.0)
        self.images_per_sec: float | None = None
        self.eta_seconds: float | None = None
        self.elapsed = float(plan.run.read_state().get("elapsed") or 0.0)
        self.metrics: dict[str, Any] = {}
        self.error: str | None = None
        self.requested: str | None = None
        self.notes = tuple(plan.notes)
        self.process: subprocess.Popen | None = None


def _device_key(dev: torch.device) -> str:
    """One queue per physical device: 'cuda' and 'cuda:0' are the same GPU."""
    if dev.type == "cuda" and dev.index is None:
        return f"cuda:{torch.cuda.current_device()}"
    return str(dev)


def trainer_of(run_dir: str | os.PathLike) -> dict[str, Any] | None:
    """Who trains a run now ({"pid", "host", "since"}, from its lock), or None when nobody does: a
    run whose state.json says queued/running/paused and whose lock is free was interrupted."""
    return holder(run_dir)


def owner_pid(state: dict[str, Any]) -> int | None:
    """The live process on this machine that state.json names as the run's trainer, else None.

    Information only, for listings that have no run folder at hand: the run's lock decides who may
    train (see :func:`trainer_of`), never this guess.
    """
    if state.get("status") not in ACTIVE_STATUSES:
        return None
    pid, host = state.get("pid"), state.get("host")
    if not isinstance(pid, int) or host != host_id():
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:  # alive, owned by another user
        return pid
    return pid


def _config_of(spec: Any, config: Any) -> Any:
    """A validated config from a config dataclass, a dict of values over the defaults, or None."""
    if config is None:
        return spec.config_cls()
    if isinstance(config, dict):
        return from_dict(spec.config_cls, {**to_dict(spec.config_cls()), **config}, model=spec.name)
    if not isinstance(config, spec.config_cls):
        raise GMError(f"The config of model '{spec.name}' must be a {spec.config_cls.__name__} or a dict.")
    return from_dict(spec.config_cls, to_dict(config), model=spec.name)


def _check_memory(spec: Any, config: Any, device: Any) -> None:
    """Refuse (one GMError sentence) a config whose training step cannot fit in free memory: the
    app's Train page and the CLI go through here alike (gm.limits has the estimate)."""
    from gm import limits
    limits.check_training(spec, config, limits.data_info_of(spec, config), device)


class JobManager:
    """Starts, queues, pauses, continues and stops training jobs; safe to call from any thread.

    ``max_per_device`` jobs train at once on each device (None = no limit); the rest wait in FIFO
    order with status ``queued``. Datasets are loaded once per (dataset, data folder) and shared.
    """

    def __init__(self, max_per_device: int | None = 1) -> None:
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._jobs: dict[str, _Job] = {}        # insertion order is queue order
        self._data_lock = threading.Lock()
        self._datasets: dict[tuple[str, str | None], Any] = {}
        self._max = self._check_max(max_per_device)
        self._closed = False
        _MANAGERS.add(self)

    # ---- configuration ---------------------------------------------------------------------
    @staticmethod
    def _check_max(value: int | None) -> int | None:
        if value is not None and value < 1:
            raise GMError(f"max_per_device must be at least 1 (or None for no limit); got {value}.")
        return value

    @property
    def max_per_device(self) -> int | None:
        return self._max

    @max_per_device.setter
    def max_per_device(self, value: int | None) -> None:
        with self._lock:
            self._max = self._check_max(value)
            self._dispatch()

    # ---- starting jobs -----------------------------------------------------------------------
    def start_run(self, model: str, config: Any = None, *, steps: int | None = None,
                  epochs: float | None = None, device: str = "auto", runs_dir: str | os.PathLike | None = None,
                  name: str | None = None, data_dir: str | None = None,
                  on_progress: Callable[[Progress], None] | None = None, processes: int = 1) -> JobInfo:
        """Create a run folder and queue its training; returns at once (status queued or running).

        `config` is the model's config dataclass, a dict of values over its defaults, or None.
        `on_progress` is called from the training thread after every logged step (in-process jobs).
        `processes` > 1 trains it in a torchrun subprocess of that many processes (one GPU each, or
        gloo on CPUs); the job follows it through the run folder and reaches it through control.json.
        """
        check_nproc(processes)
        self._check_open()
        spec = get_spec(model)
        config = _config_of(spec, config)
        dev = resolve_device(device)  # a bad device fails here, before the dataset loads
        _check_memory(spec, config, dev)  # e.g. width=8 at batch 4096: refused before anything starts
        dataset = self.dataset(spec.dataset, data_dir)  # slow the first time (dSprites renders)
        runs_dir = Path(runs_dir) if runs_dir is not None else default_runs_dir()
        with self._lock:
            self._check_open()
            if name is not None:
                self._refuse_active(str((runs_dir / name).resolve()), name)
            plan = plan_new(spec.name, config, runs_dir=runs_dir, name=name, device=device, data_dir=data_dir,
                            steps=steps, epochs=epochs, dataset=dataset, processes=processes)
            return self._enqueue(plan, on_progress, processes)

    def resume_run(self, run_dir: str | os.PathLike, *, steps: int | None = None,
                   epochs: float | None = None, device: str | None = None, data_dir: str | None = None,
                   overrides: dict[str, Any] | None = None,
                   on_progress: Callable[[Progress], None] | None = None,
                   check: Callable[[ResumePlan], None] | None = None, processes: int = 1) -> JobInfo:
        """Queue a run folder to continue from its newest good checkpoint.

        Without `steps`/`epochs` it trains to the run's original length; with them, that much more.
        `overrides` change config values from here on (e.g. a lower lr after a divergence) and are
        written to config.json when the job starts. `check(plan)` runs once the run is locked and
        planned, before anything is written (e.g. a memory estimate of plan.config on plan.device):
        a GMError from it refuses the resume and frees the run. `processes` as in start_run.
        """
        check_nproc(processes)
        self._check_open()
        run = RunFolder.open(run_dir)
        key = str(run.path.resolve())
        with self._lock:
            self._refuse_active(key, run.name)
        refuse_weights_only(run)  # a pretrained run (maybe read-only) gets no lock file
        # The lock before anything else is read: a run another job, manager or process trains is
        # refused here, at once; a `running` state.json whose lock is free (its trainer died) resumes.
        lock = take_lock(run)
        try:
            cfg = run.read_config()
            spec = get_spec(cfg.get("model", "?"))
            dataset = self.dataset(spec.dataset, data_dir or cfg.get("data_dir"))
            plan = plan_resume(run.path, steps=steps, epochs=epochs, device=device, data_dir=data_dir,
                               overrides=overrides, dataset=dataset, lock=lock, processes=processes)
            _check_memory(plan.spec, plan.config, plan.device)
            if check is not None:
                check(plan)
            with self._lock:
                self._check_open()
                self._refuse_active(key, run.name)
                return self._enqueue(plan, on_progress, processes)
        except BaseException:
            lock.release()
            raise

    # ---- controlling jobs --------------------------------------------------------------------
    def pause(self, key: str | os.PathLike) -> JobInfo:
        """Ask a running job to checkpoint and pause at the next step; a finished job is left as is."""
        with self._lock:
            job = self._job(key)
            if job.status == "queued":
                raise GMError(f"Run '{job.name}' is queued, not training yet; stop it to leave the queue.")
            if job.status == "running":
                job.control.request_pause()
                job.requested = "pause" if job.requested != "stop" else "stop"
            return self._info(job)

    def unpause(self, key: str | os.PathLike) -> JobInfo:
        """Let a paused job continue (or cancel a pause not yet taken)."""
        with self._lock:
            job = self._job(key)
            if job.status in ("running", "paused"):
                job.control.request_continue()
                if job.requested == "pause":
                    job.requested = None
            return self._info(job)

    def stop(self, key: str | os.PathLike) -> JobInfo:
        """Checkpoint and stop a job (status `stopped`); a queued job leaves the queue untrained."""
        with self._lock:
            job = self._job(key)
            if job.status == "queued":
                self._finish_queued(job)
            elif job.status in ("running", "paused"):
                job.control.request_stop()
                job.requested = "stop"
            return self._info(job)

    def step(self, key: str | os.PathLike) -> JobInfo:
        """One training step of a paused job, which then stays paused (GAN Lab's step mode): its
        metrics row and live preview follow at once."""
        with self._lock:
            job = self._job(key)
            if job.status != "paused":
                raise GMError(f"Run '{job.name}' is not paused; pause it first to train step by step.")
            if job.processes != 1:
                raise GMError(f"Run '{job.name}' trains on {job.processes} processes; step mode is for "
                              f"a job on one process.")
            job.control.request_step()
            return self._info(job)

    def preview(self, key: str | os.PathLike) -> Preview | None:
        """The latest fixed-noise grid drawn from the job's model in memory (None before the first
        and once the job has ended: its samples/ then has the grids); a torchrun job's rank 0 draws
        it into the run folder (gm.runs.shared_preview). Asking keeps previews coming every few
        seconds; nobody asking costs the job nothing."""
        with self._lock:
            job = self._job(key)
            if job.status not in ("running", "paused"):
                return None
            if job.processes != 1:   # a file request and a small PNG read, ordered with the end's cleanup
                return job.preview.want()
            watch = job.preview
        return watch.want()

    # ---- reading -----------------------------------------------------------------------------
    def dataset(self, name: str, data_dir: str | None = None) -> Any:
        """A dataset, loaded once per (name, folder) and shared by the jobs; call it early (e.g.
        from a thread at app start) so the first start does not wait for dSprites to render."""
        key = (name, str(Path(data_dir).expanduser().resolve()) if data_dir else None)
        with self._data_lock:
            if key not in self._datasets:
                self._datasets[key] = load_dataset(name, data_dir)
            return self._datasets[key]

    def warm_up(self, models: tuple[str, ...] = ("vae",), device: str = "auto",
                data_dir: str | None = None) -> None:
        """Do now what a first Start of these models would wait for: load their datasets (dSprites
        renders for about 2 s) and estimate their default config's memory (the estimate builds the
        model on torch's meta device, whose first use imports torch._dynamo: about 5 s). A server
        calls it from a thread at start, so the first visitor's Start begins training at once."""
        for name in models:
            spec = get_spec(name)
            self.dataset(spec.dataset, data_dir)
            _check_memory(spec, spec.config_cls(), resolve_device(device))

    def jobs(self) -> list[JobInfo]:
        """Every job this manager has seen, in the order they were queued."""
        with self._lock:
            return [self._info(job) for job in self._jobs.values()]

    def get(self, key: str | os.PathLike) -> JobInfo:
        with self._lock:
            return self._info(self._job(key))

    def find(self, run_dir: str | os.PathLike) -> JobInfo | None:
        """The job of a run folder, or None when this manager never ran it."""
        with self._lock:
            job = self._jobs.get(str(Path(run_dir).resolve()))
            return self._info(job) if job else None

    def wait(self, key: str | os.PathLike, statuses: tuple[str, ...] = FINAL_STATUSES,
             timeout: float | None = None) -> JobInfo:
        """Block until the job's status is one of `statuses` or `timeout` passes; returns a snapshot."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._changed:
            while True:
                job = self._job(key)
                if job.status in statuses:
                    return self._info(job)
                left = 0.5 if deadline is None else min(0.5, deadline - time.monotonic())
                if left <= 0:
                    return self._info(job)
                self._changed.wait(left)  # short waits keep Ctrl-C responsive in a main thread

    def forget(self, key: str | os.PathLike) -> None:
        """Drop a finished job from the list (its run folder stays)."""
        with self._lock:
            job = self._job(key)
            if job.status in ACTIVE_STATUSES:
                raise GMError(f"Run '{job.name}' is {job.status}; stop it before removing it from the list.")
            del self._jobs[job.key]

    def shutdown(self, timeout: float | None = 60.0) -> bool:
        """Stop every job (checkpoint, `stopped`), empty the queue and join the threads.

        Returns True when every thread ended within `timeout`. The manager refuses new jobs after.
        """
        with self._lock:
            self._closed = True
            for job in list(self._jobs.values()):
                if job.status == "queued":
                    self._finish_queued(job)
                elif job.status in ("running", "paused"):
                    job.control.request_stop()
                    job.requested = "stop"
            threads = [j.thread for j in self._jobs.values() if j.thread is not None]
        deadline = None if timeout is None else time.monotonic() + timeout
        for thread in threads:
            thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
        _MANAGERS.discard(self)
        return not any(t.is_alive() for t in threads)

    def __enter__(self) -> JobManager:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        # After a second Ctrl-C the user wants out now: ask the jobs to stop but do not wait.
        self.shutdown(timeout=0.0 if exc_type is KeyboardInterrupt else 60.0)

    # ---- internals (call with the lock held unless said otherwise) --------------------------
    def _check_open(self) -> None:
        if self._closed:
            raise GMError("The job manager has been shut down; start a new one.")

    def _job(self, key: str | os.PathLike) -> _Job:
        job = self._jobs.get(str(Path(key).resolve()))
        if job is None:
            raise GMError(f"No job for run {key} in this process; start or resume the run first.")
        return job

    def _refuse_active(self, key: str, name: str) -> None:
        job = self._jobs.get(key)
        if job is not None and job.status in ACTIVE_STATUSES:
            raise GMError(f"Run '{name}' is already {job.status}; pause, continue or stop that job "
                          f"instead of starting it again.")

    def _enqueue(self, plan: ResumePlan, listener: Callable[[Progress], None] | None,
                 processes: int = 1) -> JobInfo:
        """Queue a plan (it holds the run's lock; on an error here the lock is given back)."""
        try:
            # A torchrun job takes a device kind's N processes: a queue of its own.
            check_processes(plan.device, processes)
            key = _device_key(plan.device) if processes == 1 else f"{plan.device.type} x{processes}"
            job = _Job(plan, key, listener, processes)
            plan.run.write_state(status="queued", error=None, pid=os.getpid(), host=host_id())
        except BaseException:
            plan.release()
            raise
        self._jobs.pop(job.key, None)  # a finished job of the same run goes to the end of the list
        self._jobs[job.key] = job
        self._dispatch()
        self._changed.notify_all()
        return self._info(job)

    def _finish_queued(self, job: _Job) -> None:
        plan, job.status, job.requested, job.plan = job.plan, "stopped", None, None
        try:
            RunFolder(job.key).write_state(status="stopped")
        except OSError:
            pass
        if plan is not None:
            plan.release()  # never trained: the run is free at once
        self._changed.notify_all()

    def _holding(self, device_key: str) -> int:
        return sum(1 for j in self._jobs.values()
                   if j.device_key == device_key and j.status in ("running", "paused"))

    def _dispatch(self) -> None:
        """Give free device slots to queued jobs, oldest first."""
        for job in self._jobs.values():
            if job.status != "queued":
                continue
            if self._max is not None and self._holding(job.device_key) >= self._max:
                continue
            job.status = "running"
            job.thread = threading.Thread(target=self._work if job.processes == 1 else self._work_processes,
                                          args=(job,), daemon=True,
                                          name=f"gm-job-{job.name}")
            job.thread.start()
            self._changed.notify_all()

    def _info(self, job: _Job) -> JobInfo:
        step = job.step
        if job.status in ("running", "paused") and job.session is not None:
            step = job.session.trainer.step  # an int read: live, no lock needed on the loop's side
        position = None
        if job.status == "queued":
            ahead = []
            for other in self._jobs.values():
                if other is job:
                    break
                if other.status == "queued" and other.device_key == job.device_key:
                    ahead.append(other)
            position = len(ahead)
        return JobInfo(key=job.key, name=job.name, model=job.model, device=job.device_key,
                       status=job.status, step=step, total_steps=job.total_steps, epoch=job.epoch,
                       images_per_sec=job.images_per_sec,
                       eta_seconds=job.eta_seconds if job.status == "running" else None,
                       elapsed=job.elapsed, metrics=dict(job.metrics), error=job.error,
                       requested=job.requested, queue_position=position, notes=job.notes,
                       processes=job.processes)

    # ---- the worker thread (no lock held unless taken) ---------------------------------------
    def _work(self, job: _Job) -> None:
        status, error, session = "failed", None, None
        plan = job.plan
        assert plan is not None
        try:
            # No lock: building a model restores torch's global RNG (gm.models.base.isolated_init)
            # and training never draws from it, so jobs build and train side by side.
            session = open_planned(plan)
            with self._lock:
                job.session = session
                job.step = session.trainer.step
            callbacks = default_callbacks(job.control, lambda p: self._on_progress(job, p),
                                          lambda s: self._on_status(job, s))
            status = train(session, callbacks=[*callbacks, job.preview])
            error = session.error
        except GMError as exc:
            error = str(exc)
        except OSError as exc:
            error = _os_error_message(exc)
        except BaseException as exc:  # a bug: keep the traceback for the server log / terminal
            error = f"{type(exc).__name__}: {exc}"
            traceback.print_exc()
        finally:
            # train() records its own failures and gives the lock back; these happened before or
            # around it, and are written only while this job holds the run (or can take it back).
            if status == "failed" and (session is None or session.error is None) and _holds(plan):
                try:
                    plan.run.write_state(status="failed", error=error)
                except OSError:
                    pass
            plan.release()
            with self._lock:
                job.status, job.error, job.requested = status, error, None
                if session is not None:
                    job.step = session.trainer.step
                    job.elapsed = session.elapsed
                    if status in ("failed", "diverged") and session.last_checkpoint_step is not None:
                        job.step = session.last_checkpoint_step  # where a resume continues from
                job.session, job.plan, job.eta_seconds = None, None, None  # free the model's memory
                self._dispatch()
                self._changed.notify_all()

    def _work_processes(self, job: _Job) -> None:
        """A torchrun subprocess trains the run (gm.runs.torchrun); this thread follows it through
        state.json and metrics.jsonl until it exits. Its rank 0 takes the run's lock, so the plan's
        is given back first."""
        plan = job.plan
        assert plan is not None
        run = plan.run
        status, error = "failed", None
        try:
            run.clear_request()
            args = ["resume", str(run.path), "--quiet", "--device", plan.device.type,
                    "--steps", str(max(1, plan.total_steps - plan.start))]
            for key, value in plan.overrides.items():
                args += ["--set", f"{key}={value}"]
            data_dir = run.read_config().get("data_dir")
            if data_dir:
                args += ["--data-dir", str(data_dir)]
            log_path = run.path / "torchrun.log"
            plan.release()
            with open(log_path, "w", encoding="utf-8") as log:
                proc = subprocess.Popen(torchrun_command(job.processes, args), stdout=log, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL, start_new_session=True)
            with self._lock:
                job.process = proc
            follower = _ProcessFollower(run, plan.start)
            while proc.poll() is None:
                self._follow(job, follower)
                time.sleep(0.5)
            self._follow(job, follower)
            state = run.read_state()
            status = str(state.get("status"))
            error = state.get("error")
            if status not in FINAL_STATUSES:   # it died before saying why: torchrun's log does
                status, error = "failed", _launcher_failure(log_path, proc.returncode)
                with contextlib.suppress(GMError, OSError):
                    lock = take_lock(run)
                    try:
                        run.write_state(status="failed", error=error)
                    finally:
                        lock.release()
        except GMError as exc:
            error = str(exc)
        except OSError as exc:
            error = _os_error_message(exc)
        finally:
            plan.release()
            with self._lock:
                clear_preview(run)   # under the lock preview() asks under: no request comes after it
                job.status, job.error, job.requested, job.process = status, error, None, None
                job.plan, job.eta_seconds = None, None
                self._dispatch()
                self._changed.notify_all()

    def _follow(self, job: _Job, follower: _ProcessFollower) -> None:
        update = follower.poll()
        with self._lock:
            for key, value in update.items():
                setattr(job, key, value)
            if job.status == "paused" and job.requested == "pause":
                job.requested = None
            self._changed.notify_all()

    def _on_progress(self, job: _Job, p: Progress) -> None:
        with self._lock:
            job.step, job.epoch, job.elapsed = p.step, p.epoch, p.elapsed
            job.images_per_sec, job.eta_seconds = p.images_per_sec, p.eta_seconds
            job.metrics = dict(p.metrics)
        if job.listener is not None:
            try:
                job.listener(p)
            except Exception:  # a display bug must not kill the training
                traceback.print_exc()

    def _on_status(self, job: _Job, status: str) -> None:
        with self._lock:
            job.status = status
            if job.session is not None:
                job.step = job.session.trainer.step
            if status == "paused" and job.requested == "pause":
                job.requested = None
            self._changed.notify_all()


class _ProcessFollower:
    """What a torchrun job's run folder says about it: status and step from state.json, the latest
    metrics row and the speed from metrics.jsonl (read incrementally)."""

    def __init__(self, run: RunFolder, start: int) -> None:
        self.run = run
        self.reader = MetricsReader(run.metrics_path)
        self.start = start
        self.images_per_step = _images_per_step(run)
        self.rows: list[dict[str, Any]] = []

    def poll(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        try:
            state = self.run.read_state()
        except GMError:
            state = {}
        if state.get("status") in ("running", "paused"):
            out["status"] = state["status"]
        new = [r for r in self.reader.read_new().records if r["step"] > self.start]
        if new:
            self.rows = (self.rows + new)[-2:]
            last = self.rows[-1]
            out.update(step=int(last["step"]), epoch=float(last.get("epoch") or 0.0),
                       elapsed=float(last.get("time") or 0.0),
                       metrics={k: v for k, v in last.items() if k not in ("step", "epoch", "time")})
            if len(self.rows) == 2:
                a, b = self.rows
                seconds, steps = float(b["time"]) - float(a["time"]), b["step"] - a["step"]
                if seconds > 0 and steps > 0:
                    out["images_per_sec"] = steps * self.images_per_step / seconds
                    total = int(state.get("total_steps") or 0)
                    out["eta_seconds"] = max(0, total - b["step"]) * seconds / steps if total else None
        return out


def _images_per_step(run: RunFolder) -> int:
    """Images of one step over all processes, from config.json (for the speed shown)."""
    values = run.read_config().get("config", {})
    config = SimpleNamespace(batch_size=int(values.get("batch_size") or 1),
                             per_rank_batch=bool(values.get("per_rank_batch")))
    return global_batch_size(config, int(run.read_state().get("processes") or 1))


def _launcher_failure(log_path: Path, code: int | None) -> str:
    """One sentence for a torchrun subprocess that ended without recording a final status."""
    try:
        lines = [x.strip() for x in log_path.read_text(encoding="utf-8", errors="replace").splitlines() if x.strip()]
    except OSError:
        lines = []
    errors = [x for x in lines if x.startswith("error:")]
    detail = errors[-1][len("error:"):].strip() if errors else (lines[-1][:200] if lines else "no output")
    return f"The torchrun processes exited with code {code} before the run started or ended cleanly: {detail}"


def _holds(plan: ResumePlan) -> bool:
    """Whether the plan's lock is held, taking it back if train() gave it up and nobody took it."""
    if plan.lock is None or plan.lock.held:
        return True
    try:
        plan.lock.acquire()
    except GMError:
        return False
    return True


def run_foreground(manager: JobManager, key: str | os.PathLike) -> JobInfo:
    """Wait for a job in the main thread: Ctrl-C or SIGTERM asks it to stop (checkpoint, `stopped`).

    A second Ctrl-C gives up waiting (KeyboardInterrupt); the last checkpoint stays valid.
    """
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, lambda signum, frame: manager.stop(key))
    try:
        interrupted = False
        while True:
            try:
                return manager.wait(key)
            except KeyboardInterrupt:
                if interrupted:
                    raise
                interrupted = True
                manager.stop(key)
                print("\nstopping: saving a checkpoint (Ctrl-C again to quit without it)", file=sys.stderr)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


_MANAGERS: weakref.WeakSet[JobManager] = weakref.WeakSet()


@atexit.register
def _shutdown_all() -> None:
    # Interpreter exit (e.g. the Streamlit server stopped) would kill the daemon threads mid-step:
    # stop them at a checkpoint first.
    for manager in list(_MANAGERS):
        manager.shutdown(timeout=30.0)

"""The hosted demo's policy (``GM_DEMO=1``): who owns which job, how much a visitor may start, and
when a visitor's jobs stop after they leave. Pure Python; the app keeps one :class:`DemoPolicy` per
server process (``st.cache_resource``) and asks it, never the job manager, to start or control jobs.

In demo mode every browser session is an anonymous *visitor* identified by a random owner token
(kept in that session's state). A visitor:

- sees and controls only the jobs and run folders it started or pulled (plus the shipped pretrained
  runs, which are read-only); pause, continue and stop on another visitor's job are refused here,
  whatever the page shows;
- starts at most ``jobs_per_session`` jobs at a time, of at most ``max_steps`` steps each, with
  ``width`` and ``batch_size`` at most ``max_width`` / ``max_batch_size`` and the device left to
  ``auto``; at most ``max_jobs`` jobs are queued or training on the server at once (the job manager
  trains ``max_running`` of them and queues the rest, with a queue position);
- loses its jobs when it leaves: a visitor not seen for ``idle_seconds`` (each page run, poll and
  the reaper's look at the live connections count as "seen") has its jobs stopped at a checkpoint,
  and a job paused for ``idle_seconds`` is stopped too, since a paused job keeps its training slot.

Outside demo mode (``limits=None``) the policy passes everything through: one lab, every tab sees
and drives every job, no caps (the classroom projector, a student's laptop).
"""

from __future__ import annotations

import contextlib
import math
import os
import secrets
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gm.errors import GMError

ACTIVE = ("queued", "running", "paused")
_TRUE = ("1", "true", "yes", "on")


def demo_enabled(env: Mapping[str, str] | None = None) -> bool:
    """GM_DEMO=1 (set by the Dockerfile of the hosted demo)."""
    env = os.environ if env is None else env
    return env.get("GM_DEMO", "").strip().lower() in _TRUE


@dataclass(frozen=True)
class DemoLimits:
    """The hosted demo's caps; each one is an environment variable (see :meth:`from_env`)."""

    max_jobs: int = 4              # GM_DEMO_MAX_JOBS: jobs queued or training on the server at once
    max_running: int = 1           # GM_DEMO_MAX_RUNNING: of those, how many train at the same time
    jobs_per_session: int = 1      # GM_DEMO_JOBS_PER_SESSION: active jobs one visitor may have
    max_steps: int = 3000          # GM_DEMO_MAX_STEPS: steps one job may train
    max_width: float = 1.0         # GM_DEMO_MAX_WIDTH: the models' channel multiplier
    max_batch_size: int = 256      # GM_DEMO_MAX_BATCH: images per step
    idle_seconds: float = 300.0    # GM_DEMO_IDLE_SECONDS: a gone visitor's jobs (and any paused job) stop after this
    max_fid_n: int = 2000          # GM_DEMO_MAX_FID_N: images per FID evaluation

    ENV = {"max_jobs": "GM_DEMO_MAX_JOBS", "max_running": "GM_DEMO_MAX_RUNNING",
           "jobs_per_session": "GM_DEMO_JOBS_PER_SESSION", "max_steps": "GM_DEMO_MAX_STEPS",
           "max_width": "GM_DEMO_MAX_WIDTH", "max_batch_size": "GM_DEMO_MAX_BATCH",
           "idle_seconds": "GM_DEMO_IDLE_SECONDS", "max_fid_n": "GM_DEMO_MAX_FID_N"}

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> DemoLimits:
        """The defaults, with each GM_DEMO_* variable that is set taking its place; a bad value is
        one sentence naming the variable."""
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        defaults = cls()
        for name, var in cls.ENV.items():
            raw = env.get(var, "").strip()
            if not raw:
                continue
            kind = type(getattr(defaults, name))
            try:
                value = kind(raw) if kind is int else float(raw)
            except ValueError:
                raise GMError(f"{var}={raw!r} is not a{'n integer' if kind is int else ' number'}; "
                              f"unset it or give a positive value.") from None
            if not (isinstance(value, int) or math.isfinite(value)) or value <= 0:
                raise GMError(f"{var}={raw!r} must be a positive finite number; unset it for the default "
                              f"({getattr(defaults, name)}).")
            values[name] = value
        return cls(**values)

    def config_caps(self) -> dict[str, float]:
        """Upper bounds on config values (the Train form uses them as its widgets' maxima)."""
        return {"width": self.max_width, "batch_size": self.max_batch_size}


@dataclass
class _Visitor:
    last_seen: float
    session_id: str | None = None
    runs: set[str] = field(default_factory=set)   # run folder keys (absolute paths) it owns


def _key(path: str | os.PathLike) -> str:
    return str(Path(path).resolve())


class DemoPolicy:
    """Ownership, caps and reaping for the jobs of a shared job manager; thread-safe.

    `manager` is a :class:`gm.runs.jobs.JobManager` (anything with its start_run / resume_run /
    pause / unpause / stop / jobs / find). `limits=None` turns the demo rules off (pass-through).
    `clock` gives seconds (monotonic); `connected(session_id)` says whether a browser session is
    still connected (True keeps its visitor seen; None/False: only page runs count).
    """

    def __init__(self, manager: Any, limits: DemoLimits | None = None, *,
                 clock: Callable[[], float] = time.monotonic,
                 connected: Callable[[str], bool | None] | None = None) -> None:
        self.manager = manager
        self.limits = limits
        self._clock = clock
        self._connected = connected
        self._lock = threading.RLock()
        self._visitors: dict[str, _Visitor] = {}
        self._owner_of: dict[str, str] = {}         # run key -> owner token
        self._paused_since: dict[str, float] = {}   # run key -> when the reaper first saw it paused
        self._reserved = 0                          # starts admitted but not yet queued
        self._reserved_by: dict[str, int] = {}
        self._stop_reaper = threading.Event()
        self._reaper: threading.Thread | None = None

    @property
    def demo(self) -> bool:
        return self.limits is not None

    @staticmethod
    def new_owner() -> str:
        """A fresh visitor token (unguessable: it is the only thing that proves ownership)."""
        return secrets.token_urlsafe(18)

    # ---- visitors ----------------------------------------------------------------------------
    def touch(self, owner: str, session_id: str | None = None) -> None:
        """The visitor is here now (every page run and poll calls this)."""
        with self._lock:
            visitor = self._visitor(owner)
            visitor.last_seen = self._clock()
            if session_id:
                visitor.session_id = session_id

    def owns(self, owner: str, run_dir: str | os.PathLike) -> bool:
        with self._lock:
            return self._owner_of.get(_key(run_dir)) == owner

    def owned(self, owner: str) -> set[str]:
        """The run folder keys (absolute paths) this visitor started, resumed or pulled."""
        with self._lock:
            visitor = self._visitors.get(owner)
            return set(visitor.runs) if visitor else set()

    def may_see(self, owner: str, run_dir: str | os.PathLike) -> bool:
        """Outside demo mode every run; in demo mode only the visitor's own (the pages add the
        read-only pretrained runs themselves)."""
        return not self.demo or self.owns(owner, run_dir)

    def claim(self, owner: str, run_dir: str | os.PathLike) -> None:
        """Record that `owner` made this run folder (e.g. pulled it from the Hub)."""
        with self._lock:
            key = _key(run_dir)
            previous = self._owner_of.get(key)
            if previous is not None and previous != owner and previous in self._visitors:
                self._visitors[previous].runs.discard(key)
            self._owner_of[key] = owner
            self._visitor(owner).runs.add(key)

    # ---- jobs --------------------------------------------------------------------------------
    def jobs(self, owner: str) -> list[Any]:
        """The jobs this visitor may see (all of them outside demo mode), in queue order."""
        every = self.manager.jobs()
        if not self.demo:
            return every
        mine = self.owned(owner)
        return [j for j in every if j.key in mine]

    def find(self, owner: str, run_dir: str | os.PathLike) -> Any | None:
        """The job of a run folder if this visitor may see it, else None."""
        if not self.may_see(owner, run_dir):
            return None
        return self.manager.find(run_dir)

    def start_run(self, owner: str, model: str, config: Any = None, *, steps: int | None = None,
                  epochs: float | None = None, device: str = "auto", **kwargs: Any) -> Any:
        """JobManager.start_run within the caps; the new job belongs to `owner`."""
        if self.demo:
            self._check_length(steps, epochs)
            self._check_device(device)
            self._check_processes(kwargs.get("processes", 1))
            self._check_config(config)
        with self._admitted(owner):
            info = self.manager.start_run(model, config, steps=steps, epochs=epochs, device=device, **kwargs)
            self.claim(owner, info.key)
        return info

    def resume_run(self, owner: str, run_dir: str | os.PathLike, *, steps: int | None = None,
                   epochs: float | None = None, device: str | None = None,
                   overrides: dict[str, Any] | None = None, **kwargs: Any) -> Any:
        """JobManager.resume_run of one of the visitor's own runs, within the caps."""
        if self.demo:
            self._check_mine(owner, run_dir)
            self._check_length(steps, epochs, run_dir=run_dir)
            self._check_device(device)
            self._check_processes(kwargs.get("processes", 1))
            self._check_config(overrides)
        with self._admitted(owner):
            info = self.manager.resume_run(run_dir, steps=steps, epochs=epochs, device=device,
                                           overrides=overrides, **kwargs)
            self.claim(owner, info.key)
        return info

    def pause(self, owner: str, key: str | os.PathLike) -> Any:
        self._check_mine(owner, key)
        return self.manager.pause(key)

    def unpause(self, owner: str, key: str | os.PathLike) -> Any:
        self._check_mine(owner, key)
        return self.manager.unpause(key)

    def stop(self, owner: str, key: str | os.PathLike) -> Any:
        self._check_mine(owner, key)
        return self.manager.stop(key)

    def step(self, owner: str, key: str | os.PathLike) -> Any:
        self._check_mine(owner, key)
        return self.manager.step(key)

    def preview(self, owner: str, key: str | os.PathLike) -> Any:
        """The job's live preview: anybody who may see the job may watch it."""
        return self.manager.preview(key)

    def may_control(self, owner: str, key: str | os.PathLike) -> bool:
        return not self.demo or self.owns(owner, key)

    def active_count(self) -> int:
        return sum(1 for j in self.manager.jobs() if j.status in ACTIVE)

    # ---- reaping -----------------------------------------------------------------------------
    def reap(self) -> list[str]:
        """Stop the jobs of visitors gone for `idle_seconds` and the jobs paused that long; returns
        the keys asked to stop. A no-op outside demo mode."""
        if not self.demo:
            return []
        idle = self.limits.idle_seconds
        with self._lock:
            sessions = {o: v.session_id for o, v in self._visitors.items() if v.session_id}
        here = {o for o, sid in sessions.items() if self._probe(sid)} if self._connected else set()
        with self._lock:
            now = self._clock()
            for owner in here & self._visitors.keys():
                self._visitors[owner].last_seen = now
            gone = {owner for owner, v in self._visitors.items() if now - v.last_seen > idle}
        to_stop: list[str] = []
        jobs = self.manager.jobs()
        with self._lock:
            for job in jobs:
                if job.status != "paused":
                    self._paused_since.pop(job.key, None)
                if job.status not in ACTIVE:
                    continue
                since = self._paused_since.setdefault(job.key, now) if job.status == "paused" else now
                if self._owner_of.get(job.key) in gone or now - since > idle:
                    to_stop.append(job.key)
        stopped = []
        for key in to_stop:
            try:
                self.manager.stop(key)
                stopped.append(key)
            except GMError:  # it ended meanwhile
                pass
        with self._lock:  # forget visitors long gone whose jobs have all ended
            active = {j.key for j in self.manager.jobs() if j.status in ACTIVE}
            for owner in [o for o, v in self._visitors.items() if now - v.last_seen > max(86400.0, 10 * idle)]:
                if not (self._visitors[owner].runs & active):
                    for key in self._visitors.pop(owner).runs:
                        if self._owner_of.get(key) == owner:
                            del self._owner_of[key]
        return stopped

    def start_reaper(self, interval: float | None = None) -> None:
        """Reap from a daemon thread every `interval` seconds (default: a tenth of idle_seconds,
        between 1 and 30), so jobs stop even when no visitor loads a page."""
        if not self.demo or self._reaper is not None:
            return
        every = interval if interval is not None else min(30.0, max(1.0, self.limits.idle_seconds / 10))

        def loop() -> None:
            while not self._stop_reaper.wait(every):
                try:
                    self.reap()
                except Exception:  # a reaper that dies would let abandoned jobs run on; keep going
                    import traceback
                    traceback.print_exc()

        self._reaper = threading.Thread(target=loop, daemon=True, name="gm-demo-reaper")
        self._reaper.start()

    def close(self) -> None:
        """Stop the reaper thread (the jobs are the manager's to shut down)."""
        self._stop_reaper.set()
        if self._reaper is not None:
            self._reaper.join(timeout=5)
            self._reaper = None

    # ---- internals ---------------------------------------------------------------------------
    def _visitor(self, owner: str) -> _Visitor:
        if not owner:
            raise GMError("This browser session has no visitor id; reload the page.")
        visitor = self._visitors.get(owner)
        if visitor is None:
            visitor = self._visitors[owner] = _Visitor(last_seen=self._clock())
        return visitor

    def _probe(self, session_id: str) -> bool:
        try:
            return bool(self._connected(session_id))
        except Exception:
            return False

    def _check_mine(self, owner: str, run_dir: str | os.PathLike) -> None:
        if self.demo and not self.owns(owner, run_dir):
            # The same sentence whether the run exists or not: nothing about other visitors leaks.
            raise GMError(f"Run '{Path(run_dir).name}' is not one of yours; in the hosted demo you can "
                          f"only control the runs you started in this browser tab.")

    def _check_length(self, steps: int | None, epochs: float | None,
                      run_dir: str | os.PathLike | None = None) -> None:
        cap = self.limits.max_steps
        if epochs is not None:
            raise GMError(f"In the hosted demo a run's length is given in steps (at most {cap:,}).")
        if steps is None and run_dir is not None:  # a resume to the run's own length
            from gm.runs.folder import RunFolder
            state = RunFolder(run_dir).read_state()
            total, done = state.get("total_steps"), state.get("step")
            if isinstance(total, int) and isinstance(done, int) and 0 <= total - done <= cap:
                return
            raise GMError(f"Give the number of steps to train (at most {cap:,} in the hosted demo).")
        if steps is None:
            raise GMError(f"Give the number of steps to train (at most {cap:,} in the hosted demo).")
        if not isinstance(steps, int) or steps < 1 or steps > cap:
            raise GMError(f"The hosted demo trains at most {cap:,} steps per job; got {steps}. "
                          f"Run gm on your own machine for longer runs.")

    @staticmethod
    def _check_device(device: str | None) -> None:
        if device not in (None, "auto"):
            raise GMError("The hosted demo picks the device itself; leave the device on 'auto'.")

    @staticmethod
    def _check_processes(processes: int) -> None:
        if processes != 1:
            raise GMError("The hosted demo trains each run in one process; set processes to 1.")

    def _check_config(self, config: Any) -> None:
        if config is None:
            return
        from dataclasses import asdict, is_dataclass
        values = asdict(config) if is_dataclass(config) else dict(config)
        for name, cap in self.limits.config_caps().items():
            if name not in values:
                continue
            try:
                value = float(values[name])
            except (TypeError, ValueError):
                continue  # the config check itself gives the sentence for a malformed value
            if not value <= cap:  # NaN fails too
                raise GMError(f"In the hosted demo {name} is at most {cap:g}; got {values[name]}.")

    @contextlib.contextmanager
    def _admitted(self, owner: str) -> Iterator[None]:
        """Reserve one job slot for `owner` within the caps while the manager queues the job
        (loading a dataset can take seconds: other visitors are not blocked meanwhile)."""
        with self._lock:
            self._visitor(owner)
            if self.demo:
                self._check_caps(owner)
            self._reserved += 1
            self._reserved_by[owner] = self._reserved_by.get(owner, 0) + 1
        try:
            yield
        finally:
            with self._lock:
                self._reserved -= 1
                self._reserved_by[owner] -= 1
                if not self._reserved_by[owner]:
                    del self._reserved_by[owner]

    def _check_caps(self, owner: str) -> None:
        lim = self.limits
        jobs = self.manager.jobs()
        mine = self._visitors[owner].runs
        own_active = sum(1 for j in jobs if j.status in ACTIVE and j.key in mine) + self._reserved_by.get(owner, 0)
        if own_active >= lim.jobs_per_session:
            raise GMError(f"You already have {own_active} job(s) queued or training (the hosted demo allows "
                          f"{lim.jobs_per_session} per visitor); stop one or wait for it to finish.")
        total = sum(1 for j in jobs if j.status in ACTIVE) + self._reserved
        if total >= lim.max_jobs:
            raise GMError(f"The hosted demo is busy: {total} jobs are queued or training (at most "
                          f"{lim.max_jobs}); try again in a few minutes.")

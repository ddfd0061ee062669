"""Background tasks with progress and cancel (evaluations started from the app).

A task is a function ``fn(progress, cancel)`` run in a daemon thread: it reports
``progress(done, total, eta_seconds)`` and polls ``cancel`` (a threading.Event). The runner keeps
the latest task per key (e.g. a run folder) so any browser tab can watch or cancel it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from gm.errors import GMError

TaskFn = Callable[[Callable[[int, int, "float | None"], None], threading.Event], Any]


@dataclass
class TaskState:
    key: str
    label: str
    status: str = "running"          # running | done | failed | cancelled
    done: int = 0
    total: int = 0
    eta_seconds: float | None = None
    started: float = field(default_factory=time.time)
    result: Any = None
    error: str | None = None

    @property
    def active(self) -> bool:
        return self.status == "running"

    @property
    def fraction(self) -> float:
        return min(1.0, self.done / self.total) if self.total else 0.0


class TaskRunner:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tasks: dict[str, tuple[TaskState, threading.Event, threading.Thread]] = {}

    def start(self, key: str, label: str, fn: TaskFn) -> TaskState:
        with self._lock:
            old = self._tasks.get(key)
            if old is not None and old[0].active:
                raise GMError(f"'{old[0].label}' is still running for this run; wait for it or cancel it.")
            state, cancel = TaskState(key, label), threading.Event()

            def progress(done: int, total: int, eta: float | None = None) -> None:
                state.done, state.total, state.eta_seconds = done, total, eta

            def work() -> None:
                try:
                    state.result = fn(progress, cancel)
                    state.status = "cancelled" if cancel.is_set() else "done"
                except GMError as exc:
                    state.status, state.error = ("cancelled" if cancel.is_set() else "failed"), str(exc)
                except Exception as exc:  # shown to the user; the app keeps running
                    state.status, state.error = "failed", f"{type(exc).__name__}: {exc}"

            thread = threading.Thread(target=work, name=f"gm-task-{label}", daemon=True)
            self._tasks[key] = (state, cancel, thread)
            thread.start()
            return state

    def get(self, key: str) -> TaskState | None:
        with self._lock:
            entry = self._tasks.get(key)
            return entry[0] if entry else None

    def cancel(self, key: str) -> None:
        with self._lock:
            entry = self._tasks.get(key)
        if entry is not None:
            entry[1].set()

    def shutdown(self, timeout: float = 30.0) -> None:
        with self._lock:
            entries = list(self._tasks.values())
        for _, cancel, _ in entries:
            cancel.set()
        for _, _, thread in entries:
            thread.join(timeout)

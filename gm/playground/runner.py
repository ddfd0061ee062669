"""A background thread that steps a Playground at a chosen speed, with pause, resume and single steps.

The page keeps drawing ``playground.snapshot()`` while the runner trains; the playground's lock
makes each snapshot see whole steps. The runner steps in small chunks so a snapshot never waits
longer than one chunk (about 50 ms at full speed).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from gm.playground.session import Playground

MAX_CHUNK_SECONDS = 0.05   # at full speed, step for about this long before letting a snapshot in
WATCH_SECONDS = 1.0        # how often a training runner asks `watch` whether anyone still looks


class Runner:
    """Steps ``playground`` in a daemon thread.

    ``steps_per_second``: a target speed, or None for as fast as the CPU allows ("max").
    ``max_steps``: stop (pause) when the playground reaches this step; None runs until stopped.
    The runner starts paused; ``resume()`` starts training, ``pause()`` holds it, ``step_once(n)``
    runs n steps while paused (step mode), ``stop()`` ends the thread. A step that raises pauses
    the runner and leaves the exception in ``error``. ``idle_exit``: after this many seconds
    paused the thread ends by itself (``alive`` turns False; the playground keeps its state), so
    a page whose visitor left holds no thread; the page then starts a new Runner when needed.
    ``watch``: asked about once a second while training (from the runner's thread); when it
    returns False the runner pauses, e.g. the browser tab that drew it was closed, so nobody's
    CPU trains a picture no one sees.
    """

    def __init__(self, playground: Playground, steps_per_second: float | None = None,
                 max_steps: int | None = None, idle_exit: float | None = None,
                 watch: Callable[[], bool] | None = None):
        self.playground = playground
        self.idle_exit = idle_exit            # seconds paused after which the thread ends (None: never)
        self.watch = watch
        self.steps_per_second = steps_per_second
        self.max_steps = max_steps
        self._running = threading.Event()   # set: training; clear: paused
        self._stopped = threading.Event()
        self._busy = threading.Lock()        # held while the thread decides on and runs a chunk
        self.error: BaseException | None = None   # what stopped training, for the page to show
        self._thread = threading.Thread(target=self._loop, name="gm-playground", daemon=True)
        self._thread.start()

    # ---- controls ----------------------------------------------------------------------------
    @property
    def paused(self) -> bool:
        return not self._running.is_set()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def resume(self) -> None:
        self.error = None   # a new try
        self._running.set()

    def pause(self) -> None:
        """Hold training; returns once a chunk in flight has finished, so no step runs after it."""
        self._running.clear()
        if threading.current_thread() is not self._thread:
            with self._busy:
                pass

    def set_speed(self, steps_per_second: float | None) -> None:
        """A new target speed (None: as fast as possible); takes effect within one chunk."""
        if steps_per_second is not None and steps_per_second <= 0:
            raise ValueError("steps_per_second must be positive (or None for full speed)")
        self.steps_per_second = steps_per_second

    def step_once(self, n: int = 1) -> None:
        """Pause, then run exactly ``n`` steps in the caller's thread (the step mode's button)."""
        self.pause()
        self.playground.step(n)

    def stop(self, timeout: float | None = 5.0) -> None:
        """End the thread (waiting up to ``timeout`` s); the playground keeps its state."""
        self._stopped.set()    # a paused loop sees it within its 0.1 s wait
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout)

    # ---- the loop ----------------------------------------------------------------------------
    def _watched(self) -> bool:
        try:
            return bool(self.watch())
        except Exception:   # a check that fails says nothing about the viewer: keep training
            return True

    def _remaining(self) -> int | None:
        if self.max_steps is None:
            return None
        return self.max_steps - self.playground.steps

    def _loop(self) -> None:
        seconds_per_step = 0.005      # a first guess, refined by measurement
        paused_since = watched = time.monotonic()
        while not self._stopped.is_set():
            if not self._running.wait(timeout=0.1):
                if self.idle_exit is not None and time.monotonic() - paused_since > self.idle_exit:
                    self._stopped.set()
                continue
            paused_since = time.monotonic()
            if self.watch is not None and paused_since - watched >= WATCH_SECONDS:
                watched = paused_since
                if not self._watched():
                    self._running.clear()
                    continue
            with self._busy:
                # Checked under the lock pause() waits on: a pause either finds this chunk running
                # (and waits for it) or is seen here.
                if self._stopped.is_set() or not self._running.is_set():
                    continue
                remaining = self._remaining()
                if remaining is not None and remaining <= 0:
                    self._running.clear()
                    continue
                speed = self.steps_per_second
                n = max(1, int(MAX_CHUNK_SECONDS / seconds_per_step))
                if speed is not None:
                    n = max(1, min(n, int(speed * MAX_CHUNK_SECONDS)))
                if remaining is not None:
                    n = min(n, remaining)
                start = time.perf_counter()
                try:
                    self.playground.step(n)
                except Exception as exc:   # kept for the page; the thread must not die silently
                    self.error = exc
                    self._running.clear()
                    continue
                took = time.perf_counter() - start
            seconds_per_step = 0.8 * seconds_per_step + 0.2 * took / n
            if speed is not None:
                # Sleep off what is left of this chunk's share of time; stop() interrupts the wait.
                self._stopped.wait(max(0.0, n / speed - took))

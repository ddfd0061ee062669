"""Live samples of a job whose model lives in other processes (torchrun), through its run folder.

A one-process job draws its preview in memory (callbacks.LivePreview). A torchrun job's app side
(JobManager.preview) instead touches ``live-preview.wanted``; while that file was touched within
the last ``linger`` seconds, rank 0 redraws the fixed-noise grid every ``every`` seconds into
``live-preview.png`` (written atomically, with its step in a PNG text field), and the app reads
it back. Nobody asking costs the job one ``stat`` every half second; both files go at the job's end
(the saved grids in samples/ are the record). No checkpoint is written.
"""

from __future__ import annotations

import io
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from gm.images import make_grid
from gm.runs.atomic import write_bytes_atomic
from gm.runs.callbacks import Callback, Preview
from gm.runs.folder import RunFolder

if TYPE_CHECKING:
    from gm.runs.loop import Loop
    from gm.runs.session import Session

PREVIEW_FILE = "live-preview.png"
REQUEST_FILE = "live-preview.wanted"
_STEP_FIELD = "gm-step"


def request_preview(run: RunFolder) -> None:
    """Ask the job's rank 0 for previews for the next `linger` seconds (best effort)."""
    try:
        (run.path / REQUEST_FILE).write_bytes(b"")
    except OSError:   # a read-only or vanished folder: no preview, never an error on the page
        pass


def read_preview(run: RunFolder) -> Preview | None:
    """The latest preview rank 0 wrote, or None (none yet, or a file this cannot read)."""
    path = run.path / PREVIEW_FILE
    try:
        made = path.stat().st_mtime
        with Image.open(path) as image:
            image.load()
            step = int(image.text[_STEP_FIELD])
            pixels = np.asarray(image)
    except (OSError, KeyError, ValueError, SyntaxError, Image.DecompressionBombError):
        return None
    return Preview(step, pixels, made)


def clear_preview(run: RunFolder) -> None:
    """Remove both files (the job ended: its samples/ has the grids)."""
    for name in (PREVIEW_FILE, REQUEST_FILE):
        try:
            (run.path / name).unlink()
        except OSError:
            pass


class PreviewReader:
    """JobManager's side for a torchrun job: the same ``want()`` as LivePreview."""

    def __init__(self, run: RunFolder) -> None:
        self.run = run

    def want(self) -> Preview | None:
        request_preview(self.run)
        return read_preview(self.run)


class RunFolderPreview(Callback):
    """Rank 0 of a torchrun job draws the fixed-noise grid into the run folder while asked.

    Drawn between two steps, as SampleGrids draws on rank 0: the other ranks wait for it at the
    next step's all-reduce. A failed write (a full disk) skips that preview; training goes on.
    """

    def __init__(self, every: float = 2.0, linger: float = 10.0, check: float = 0.5) -> None:
        self.every, self.linger, self.check = every, linger, check
        self._checked = float("-inf")   # time.monotonic() of the last look at the request file
        self._drawn = float("-inf")     # time.time() of the last preview written

    def _asked_at(self, run: RunFolder) -> float | None:
        try:
            return (run.path / REQUEST_FILE).stat().st_mtime
        except OSError:
            return None

    def _wanted(self, run: RunFolder) -> bool:
        asked = self._asked_at(run)
        return asked is not None and time.time() - asked <= self.linger

    def on_step_end(self, loop: Loop, step: int, metrics: dict[str, Any]) -> None:
        session = loop.session
        now = time.monotonic()
        if not session.is_main or now - self._checked < self.check:
            return
        self._checked = now
        if self._wanted(session.run) and time.time() - self._drawn >= self.every:
            self.draw(session)

    def on_pause(self, loop: Loop) -> None:
        if loop.session.is_main and self._wanted(loop.session.run):
            self.draw(loop.session)   # a paused job shows its current state

    def on_end(self, loop: Loop, status: str) -> None:
        if loop.session.is_main:
            clear_preview(loop.session.run)

    def draw(self, session: Session) -> None:
        images, nrow = session.trainer.sample_grid()
        pixels = make_grid(images, nrow)
        info = PngInfo()
        info.add_text(_STEP_FIELD, str(session.trainer.step))
        buffer = io.BytesIO()
        Image.fromarray(pixels).save(buffer, format="PNG", pnginfo=info, compress_level=1)
        try:
            write_bytes_atomic(Path(session.run.path) / PREVIEW_FILE, buffer.getvalue())
        except OSError:
            return
        self._drawn = time.time()

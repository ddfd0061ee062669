"""Live reading of metrics.jsonl: only what was appended since the last call, and downsampling.

A polling page keeps one :class:`MetricsHistory` per run it shows (in its session state: readers
are per viewer and not thread-safe). Each poll reads the bytes after the last complete line it saw;
a partially written last line is left for the next poll, and a damaged line (not UTF-8 JSON, a step
that is not a whole number) is skipped. A resume rewrites metrics.jsonl (dropping
lines after its checkpoint) under a new inode; the reader notices and starts over, and says so.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from gm.runs.schema import metrics_record, parse_line

AXES = ("step", "epoch", "time")
_TAIL = 256  # bytes before the offset remembered to recognise an in-place rewrite


@dataclass
class MetricsUpdate:
    records: list[dict[str, Any]]
    reset: bool = False  # the file was replaced or truncated: `records` is the whole history


class MetricsReader:
    """Incremental reader of one metrics.jsonl (a byte offset and the bytes just before it)."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.offset = 0
        self._inode: int | None = None
        self._tail = b""

    def read_new(self) -> MetricsUpdate:
        """Complete lines appended since the last call (all of them after a reset)."""
        try:
            fh = open(self.path, "rb")
        except FileNotFoundError:
            reset = self.offset > 0
            self._forget()
            return MetricsUpdate([], reset)
        with fh:
            st = os.fstat(fh.fileno())
            reset = bool(self.offset) and (st.st_ino != self._inode or st.st_size < self.offset
                                           or not self._tail_matches(fh))
            if reset:
                self._forget()
            self._inode = st.st_ino
            fh.seek(self.offset)
            data = fh.read()
        end = data.rfind(b"\n")
        if end < 0:
            return MetricsUpdate([], reset)
        complete = data[:end + 1]
        self.offset += len(complete)
        self._tail = (self._tail + complete)[-_TAIL:]
        return MetricsUpdate(_parse(complete), reset)

    def _tail_matches(self, fh) -> bool:
        if not self._tail:
            return True
        fh.seek(self.offset - len(self._tail))
        return fh.read(len(self._tail)) == self._tail

    def _forget(self) -> None:
        self.offset, self._inode, self._tail = 0, None, b""


def _parse(data: bytes) -> list[dict[str, Any]]:
    """The valid records among complete lines (gm.runs.schema.metrics_record): a line torn by a crash
    and then appended to, bytes that are not UTF-8, or a step that is not a whole number are skipped,
    the rest kept."""
    out = []
    for line in data.split(b"\n"):
        record = parse_line(line, metrics_record)
        if record is not None:
            out.append(record)
    return out


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def series(records: list[dict[str, Any]], key: str, x: str = "step") -> tuple[list[float], list[float]]:
    """(xs, ys) of one scalar metric; records without a finite value for it are skipped."""
    xs, ys = [], []
    for r in records:
        if _number(r.get(key)) and _number(r.get(x)):
            xs.append(r[x])
            ys.append(r[key])
    return xs, ys


def downsample(xs: list[float], ys: list[float], max_points: int = 2000) -> tuple[list[float], list[float]]:
    """At most `max_points` points that keep the first, the last and each bucket's min and max.

    Min/max buckets (rather than a stride) keep spikes visible: a divergence or a GAN collapse
    stays on the plot however long the run.
    """
    n = len(xs)
    if n <= max_points:
        return list(xs), list(ys)
    if max_points < 4:
        keep = [0, n - 1][:max(max_points, 1)]
        return [xs[i] for i in keep], [ys[i] for i in keep]
    y = np.asarray(ys, dtype=np.float64)
    buckets = (max_points - 2) // 2
    edges = np.linspace(1, n - 1, buckets + 1).astype(np.int64)
    keep = {0, n - 1}
    for lo, hi in zip(edges[:-1], edges[1:]):
        if hi > lo:
            keep.add(int(lo + np.argmin(y[lo:hi])))
            keep.add(int(lo + np.argmax(y[lo:hi])))
    order = sorted(keep)
    return [xs[i] for i in order], [ys[i] for i in order]


def scalar_keys(records: list[dict[str, Any]]) -> list[str]:
    """Metric names with numeric values, in first-seen order (axes excluded)."""
    seen: dict[str, None] = {}
    for r in records:
        for k, v in r.items():
            if k not in AXES and k not in seen and isinstance(v, (int, float)) and not isinstance(v, bool):
                seen[k] = None
    return list(seen)


@dataclass
class MetricsHistory:
    """Every record of one run, kept current by a MetricsReader; one per viewer."""

    path: Path
    records: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.path = Path(self.path)
        self._reader = MetricsReader(self.path)

    def update(self) -> bool:
        """Read what is new; True when the records changed."""
        new = self._reader.read_new()
        if new.reset:
            self.records = new.records
            return True
        self.records.extend(new.records)
        return bool(new.records)

    def series(self, keys: list[str] | None = None, x: str = "step",
               max_points: int = 2000) -> dict[str, tuple[list[float], list[float]]]:
        """{metric: (xs, ys)} downsampled to at most `max_points` per series."""
        keys = keys if keys is not None else scalar_keys(self.records)
        return {k: downsample(*series(self.records, k, x), max_points=max_points) for k in keys}

"""Numbers read off a run folder, for explanations that talk about what is on screen.

"KL rose from 0.4 to a peak of 30.1 nats at step 510 and ended at 26.8" is only true of one run;
these functions compute such facts from metrics.jsonl, eval.jsonl (or a pretrained run's
metrics.json) and the saved sample grids, so the walkthrough's sentences follow the run it shows.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from gm.runs.folder import RunFolder


@dataclass(frozen=True)
class Curve:
    """A logged metric's shape: first window, peak and trough, and the mean of the last 10%."""

    first: float
    last: float            # mean over the last 10% of logged windows (the curve's end, less noisy)
    peak: float
    peak_step: int
    low: float
    low_step: int
    steps: int             # step of the last logged window


def curve(records: list[dict[str, Any]], key: str) -> Curve | None:
    rows = [r for r in records if isinstance(r.get(key), (int, float)) and np.isfinite(r[key])]
    if not rows:
        return None
    values = np.array([r[key] for r in rows], dtype=float)
    steps = [int(r.get("step", 0)) for r in rows]
    tail = values[-max(1, len(values) // 10):]
    hi, lo = int(values.argmax()), int(values.argmin())
    return Curve(first=float(values[0]), last=float(tail.mean()), peak=float(values[hi]), peak_step=steps[hi],
                 low=float(values[lo]), low_step=steps[lo], steps=steps[-1])


def curves(run: RunFolder, keys: tuple[str, ...]) -> dict[str, Curve]:
    records = run.read_metrics()
    out = {}
    for key in keys:
        c = curve(records, key)
        if c is not None:
            out[key] = c
    return out


@dataclass(frozen=True)
class Measured:
    value: float
    n: int | None = None
    step: int | None = None
    stats_key: str | None = None


# eval.jsonl (metric, features) -> the flat name evaluate() returns and the app shows.
_FLAT = {("fid", "classifier"): "fid_classifier", ("fid", "inception"): "fid_inception",
         ("precision", "classifier"): "precision", ("recall", "classifier"): "recall",
         ("classes_covered", "classifier"): "classes_covered", ("kl_to_uniform", "classifier"): "kl_to_uniform",
         ("acgan_accuracy", "classifier"): "acgan_accuracy", ("mig", "encoder"): "mig",
         ("fid_offline", "offline"): "fid_offline", ("recognisable_share", "offline"): "recognisable_share",
         ("recognisable_share_real", "offline"): "recognisable_share_real",
         ("recognisable_ratio", "offline"): "recognisable_ratio",
         ("classes_recognised", "offline"): "classes_recognised",
         ("within_class_diversity", "offline"): "within_class_diversity",
         ("recall", "offline"): "recall_offline", ("coverage", "offline"): "coverage_offline",
         ("recognised_as_requested", "offline"): "recognised_as_requested"}


def evaluations(run: RunFolder) -> dict[str, Measured]:
    """The newest measurement of each number: eval.jsonl lines (newest wins), over the summary a
    shipped pretrained run carries in metrics.json (measured when it was built)."""
    out: dict[str, Measured] = {}
    summary_path = run.path / "metrics.json"
    if summary_path.is_file():
        try:
            summary = json.loads(summary_path.read_text(encoding="utf-8"))
        except ValueError:
            summary = {}
        n, step = summary.get("eval_n"), summary.get("steps")
        for name in set(_FLAT.values()):
            if isinstance(summary.get(name), (int, float)):
                out[name] = Measured(float(summary[name]), n, step)
    for line in run.read_eval():
        name = _FLAT.get((line.get("metric"), line.get("features")))
        if name and isinstance(line.get("value"), (int, float)):
            out[name] = Measured(float(line["value"]), line.get("n"), line.get("step"), line.get("stats_key"))
    return out


def stage_grids(run: RunFolder, k: int = 3) -> list[tuple[int, Path]]:
    """The early, middle and final saved sample grids (fewer when fewer were saved)."""
    from gm.pretrained import spread
    return spread(run.sample_grids(), k)


def config_of(run: RunFolder) -> dict[str, Any]:
    try:
        return run.read_config()
    except Exception:  # a damaged run shows as missing, never crashes the walkthrough
        return {}


def trained_steps(run: RunFolder) -> int:
    return int(run.read_state().get("step") or 0)

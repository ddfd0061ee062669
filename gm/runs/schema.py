"""What every file gm reads must hold: one schema per file kind, checked in one place.

Each reader (run folders, checkpoints' meta.json, metrics and eval lines, stats sidecars, Hub
exports) goes through this module, so a damaged file always ends in the same kind of sentence:

    state.json of run 'my-vae' is damaged: 'step' is "x" (a string), not a whole number;
    delete state.json to reset the run's status (checkpoints and metrics stay) ...

Whole files (config.json, state.json, meta.json, a stats sidecar, a Hub export's config.json) raise
:class:`DamagedFile`, a :class:`gm.errors.GMError` that also carries the file and the short reason
(the app's run lists show ``damaged: <reason>``). Lines of metrics.jsonl and eval.jsonl are checked
one by one and a bad line is skipped (:func:`metrics_record`, :func:`eval_record`): one hand-edited
or torn line must not hide the rest of a run's history.

A schema lists the fields gm itself reads; other keys are kept as they are (newer gm versions and
other tools may add some), but a known key with a value of the wrong type is damage.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gm.errors import GMError

MAX_JSON_BYTES = 16 * 2 ** 20  # config/state/meta files gm writes are a few KB; a bigger one is not ours

# A problem is a short phrase ("holds a list, not a JSON object"); None means the value is fine.
Check = Callable[[Any], "str | None"]


class DamagedFile(GMError):
    """A file gm reads does not hold what its schema says. ``str(exc)`` is the full sentence;
    ``reason`` is the short "<file>: <what>" the app shows as ``damaged: <reason>``."""

    def __init__(self, message: str, *, file: str = "", what: str = "") -> None:
        super().__init__(message)
        self.file = file
        self.what = what

    @property
    def reason(self) -> str:
        return f"{self.file} {self.what}"


# ---- value checks -----------------------------------------------------------------------------------
def _show(value: Any) -> str:
    text = json.dumps(value) if _jsonable(value) else repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _jsonable(value: Any) -> bool:
    try:
        json.dumps(value)
        return True
    except (TypeError, ValueError):
        return False


_KIND = {dict: "an object", list: "a list", str: "a string", bool: "true/false", int: "a whole number",
         float: "a number", type(None): "null"}


def kind_of(value: Any) -> str:
    return _KIND.get(type(value), type(value).__name__)


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    """A finite int or float (not a bool)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


MAX_WHOLE = 2 ** 53  # steps, counts, pids: a larger number is not one gm (or a float64 JSON reader) wrote


def whole(minimum: int = 0, maximum: int = MAX_WHOLE) -> Check:
    def check(v: Any) -> str | None:
        if not is_int(v):
            return f"is {_show(v)} ({kind_of(v)}), not a whole number"
        if v < minimum:
            return f"is {v}, below {minimum}"
        return f"is {_show(v)}, above {maximum:,}" if v > maximum else None
    return check


def number(minimum: float | None = None) -> Check:
    def check(v: Any) -> str | None:
        if not is_number(v):
            return f"is {_show(v)} ({kind_of(v)}), not a finite number"
        return f"is {v}, below {minimum}" if minimum is not None and v < minimum else None
    return check


def text(choices: tuple[str, ...] | None = None) -> Check:
    def check(v: Any) -> str | None:
        if not isinstance(v, str):
            return f"is {_show(v)} ({kind_of(v)}), not a string"
        if choices is not None and v not in choices:
            return f"is {_show(v)}, not one of {', '.join(choices)}"
        return None
    return check


def flag(v: Any) -> str | None:
    return None if isinstance(v, bool) else f"is {_show(v)} ({kind_of(v)}), not true/false"


def obj(v: Any) -> str | None:
    return None if isinstance(v, dict) else f"is {_show(v)} ({kind_of(v)}), not an object"


def list_of(item: Check, length: int | None = None) -> Check:
    def check(v: Any) -> str | None:
        if not isinstance(v, list):
            return f"is {_show(v)} ({kind_of(v)}), not a list"
        if length is not None and len(v) != length:
            return f"has {len(v)} entries, not {length}"
        for x in v:
            problem = item(x)
            if problem:
                return f"holds {_show(x)}, which {problem}"
        return None
    return check


@dataclass(frozen=True)
class Field:
    check: Check
    required: bool = False
    nullable: bool = False


def problem_of(value: Any, schema: dict[str, Field]) -> str | None:
    """The first way `value` breaks `schema` ("holds a list, not a JSON object", "'step' is ..."),
    or None when it is a valid object of that schema."""
    if not isinstance(value, dict):
        return f"holds {kind_of(value)}, not a JSON object"
    for name, f in schema.items():
        if name not in value:
            if f.required:
                return f"lacks '{name}'"
            continue
        v = value[name]
        if v is None:
            if f.nullable:
                continue
            return f"has '{name}': null"
        problem = f.check(v)
        if problem:
            return f"'{name}' {problem}"
    return None


def nested(schema: dict[str, Field]) -> Check:
    def check(v: Any) -> str | None:
        return problem_of(v, schema)
    return check


# ---- the schemas ------------------------------------------------------------------------------------
STATUSES = ("created", "queued", "running", "paused", "finished", "stopped", "failed", "diverged")

DATA_SHAPE = {
    "image_shape": Field(list_of(whole(1), 3), required=True),
    "max_value": Field(whole(1), required=True),
    "num_classes": Field(whole(0), nullable=True),
    "size": Field(whole(0), nullable=True),
    "domains": Field(list_of(text()), nullable=True),
}

CONFIG = {  # <run>/config.json (gm.models.loading.run_config writes it)
    "model": Field(text(), required=True),
    "dataset": Field(text(), nullable=True),
    "family": Field(text(), nullable=True),
    "config": Field(obj),  # every hyperparameter; optional (readers default to {}), an object when there
    "device": Field(text(), nullable=True),
    "data_dir": Field(text(), nullable=True),
    "data_shape": Field(nested(DATA_SHAPE), nullable=True),
    "gm_version": Field(text(), nullable=True),
    "created": Field(text(), nullable=True),
    "weights_only": Field(flag, nullable=True),
    "pretrained": Field(flag, nullable=True),
}

BEST = {"step": Field(whole(0), required=True), "name": Field(text(), required=True),
        "by": Field(text(), nullable=True), "value": Field(number(), nullable=True)}

STATE = {  # <run>/state.json (RunFolder.write_state)
    "status": Field(text(STATUSES), required=True),
    "step": Field(whole(0), required=True),
    "epoch": Field(number(0), nullable=True),
    "total_steps": Field(whole(0), nullable=True),
    "last_checkpoint": Field(text(), nullable=True),
    "best_checkpoint": Field(nested(BEST), nullable=True),
    "error": Field(text(), nullable=True),
    "elapsed": Field(number(0), nullable=True),
    "updated": Field(text(), nullable=True),
    "device": Field(text(), nullable=True),
    "pid": Field(whole(0), nullable=True),
    "host": Field(text(), nullable=True),
    "diverged_step": Field(whole(0), nullable=True),
    "diverged_metric": Field(text(), nullable=True),
    "source": Field(text(), nullable=True),
    "processes": Field(whole(1), nullable=True),   # torchrun processes training it (null: one)
}

META = {  # <run>/checkpoints/step-<N>/meta.json (gm.runs.checkpoint)
    "step": Field(whole(0), required=True),
    "format": Field(whole(1), required=True),
}

STATS_KEY = {  # <cache>/stats/<entry>.json beside its .npz (gm.metrics.stats.make_key)
    "dataset": Field(text(), required=True),
    "split": Field(text(), required=True),
    "n": Field(whole(1), required=True),
    "seed": Field(whole(0), required=True),
    "features": Field(text(), required=True),
    "extractor": Field(text(), nullable=True),
    "weights": Field(text(), nullable=True),
    "data": Field(text(), nullable=True),
    "format": Field(whole(1), nullable=True),
}

HUB_CONFIG = {  # config.json of a Hub export (gm.hub.stage): a run config plus the checkpoint's step
    **CONFIG,
    "config": Field(obj, required=True),
    "dataset": Field(text(), required=True),
    "data_shape": Field(nested(DATA_SHAPE), required=True),
    "step": Field(whole(0), nullable=True),
}

_AXES = {"step": Field(whole(0), required=True), "epoch": Field(number(0), nullable=True),
         "time": Field(number(0), nullable=True)}


def _metric_value(v: Any) -> bool:
    if v is None or isinstance(v, (bool, int, float, str)):
        return True
    return isinstance(v, list) and all(x is None or (isinstance(x, (int, float)) and not isinstance(x, bool))
                                       for x in v)


def metrics_record(value: Any) -> str | None:
    """Why one parsed metrics.jsonl line is not a record ("'step' is ...") or None when it is: an
    object with a whole-number step >= 0, finite epoch/time, and scalar or flat-list metrics."""
    problem = problem_of(value, _AXES)
    if problem:
        return problem
    for k, v in value.items():
        if not _metric_value(v):
            return f"'{k}' is {kind_of(v)}, not a number or a list of numbers"
    return None


EVAL = {  # <run>/eval.jsonl, one line per measured number (gm.metrics.evaluate)
    "metric": Field(text(), required=True),
    "value": Field(lambda v: None if isinstance(v, (int, float)) and not isinstance(v, bool)
                   else f"is {_show(v)} ({kind_of(v)}), not a number", nullable=True),
    "step": Field(whole(0), nullable=True),
    "n": Field(whole(0), nullable=True),
    "features": Field(text(), nullable=True),
    "stats_key": Field(text(), nullable=True),
    "time": Field(text(), nullable=True),
    "seed": Field(whole(0), nullable=True),
}


def eval_record(value: Any) -> str | None:
    return problem_of(value, EVAL)


# ---- parsing ----------------------------------------------------------------------------------------
def parse_json(data: bytes) -> tuple[Any, str | None]:
    """(value, None), or (None, problem) for bytes that are not UTF-8 JSON. Never raises: a
    pathological file (deep nesting, a 10,000-digit number, a UTF-16 BOM) is a problem too."""
    try:
        textual = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return None, f"is not UTF-8 text (byte {exc.start})"
    try:
        return json.loads(textual), None
    except RecursionError:
        return None, "is nested too deeply to be JSON gm wrote"
    except ValueError as exc:
        return None, f"is not valid JSON ({str(exc).split(':')[0]})"


def parse_line(line: bytes, check: Callable[[Any], str | None]) -> dict[str, Any] | None:
    """One JSON-lines record, or None when the line is not valid (bad bytes, bad JSON, wrong types)."""
    if not line.strip():
        return None
    value, problem = parse_json(line)
    if problem is None and check(value) is None:
        return value
    return None


@dataclass(frozen=True)
class FileKind:
    """How to name a file in a sentence, and what to tell the user to do when it is damaged."""

    name: str            # "state.json"
    schema: dict[str, Field]
    advice: str          # "delete state.json to reset the run's status ..." ({path} is filled in)


CONFIG_FILE = FileKind("config.json", CONFIG,
                       "fix it by hand or delete the run folder {folder}")
STATE_FILE = FileKind("state.json", STATE,
                      "delete {path} to reset the run's status (its checkpoints and metrics stay; "
                      "`python -m gm resume {folder} --steps N` then continues from the newest checkpoint)")
META_FILE = FileKind("meta.json", META, "delete the checkpoint folder {folder} to fall back to an earlier one")
STATS_FILE = FileKind("stats key", STATS_KEY,
                      "delete {path} (the statistics are then used without it) or recompute them with "
                      "`python -m gm stats`")
HUB_FILE = FileKind("config.json", HUB_CONFIG, "re-push the run with a current gm (`python -m gm push`)")


def damaged(kind: FileKind, what: str, *, owner: str, path: Path | str, folder: Path | str | None = None
            ) -> DamagedFile:
    """The one sentence for a damaged file: '<file> of <owner> is damaged: <what>; <advice>.'"""
    advice = kind.advice.format(path=path, folder=folder if folder is not None else Path(path).parent)
    return DamagedFile(f"{kind.name} of {owner} is damaged: {what}; {advice}.", file=kind.name, what=what)


def check_value(kind: FileKind, value: Any, *, owner: str, path: Path | str,
                folder: Path | str | None = None) -> dict[str, Any]:
    """`value` (already parsed) if it fits `kind`'s schema, else DamagedFile."""
    problem = problem_of(value, kind.schema)
    if problem:
        raise damaged(kind, problem, owner=owner, path=path, folder=folder)
    return value


def read_file(kind: FileKind, path: str | os.PathLike, *, owner: str,
              folder: Path | str | None = None) -> dict[str, Any]:
    """Read, parse and check one JSON file of `kind`; DamagedFile (a GMError) says what is wrong."""
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > MAX_JSON_BYTES:
            raise damaged(kind, f"is {size / 2 ** 20:.0f} MB, far larger than any {kind.name} gm writes",
                          owner=owner, path=path, folder=folder)
        data = path.read_bytes()
    except OSError as exc:
        raise damaged(kind, f"cannot be read ({exc.strerror or type(exc).__name__})", owner=owner, path=path,
                      folder=folder) from None
    value, problem = parse_json(data)
    if problem:
        raise damaged(kind, problem, owner=owner, path=path, folder=folder)
    return check_value(kind, value, owner=owner, path=path, folder=folder)

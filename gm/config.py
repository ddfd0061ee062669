"""Config dataclasses: one source of truth for the CLI (--set key=value), the UI form and config.json.

Every field is declared with :func:`option`, which records a help text and optional bounds or
choices in the field's metadata; the CLI parser, the app's form generator and config validation all
read the same metadata.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from dataclasses import dataclass, field
from typing import Any

from gm.errors import GMError

MAX_SEED = 2 ** 32 - 1   # numpy's limit; torch's generators take it, and seed x 1,000,003 + epoch stays in 64 bits
MAX_INT = 2 ** 53        # a larger whole number (a 25-digit --steps) is a typo, and overflows torch's int64


NO_VALUE = object()


def option(default: Any, help: str, *, min: float | None = None, max: float | None = None,
           choices: tuple[Any, ...] | None = None, ui: bool = True, before: Any = NO_VALUE) -> Any:
    """Declare a config field with its help text (and optional bounds / choices).

    `before`: what a run saved before this field existed was trained with, when that differs from the
    new default (a saved config.json lacking the key gets it: see ``from_dict(saved=True)``), so an
    old run rebuilds the networks and recipe it was trained with.
    """
    meta = {"help": help, "min": min, "max": max, "choices": choices, "ui": ui}
    if before is not NO_VALUE:
        meta["before"] = before
    return field(default=default, metadata=meta)


@dataclass
class TrainConfig:
    """Fields every model shares: batching, seeding and how often to log, sample and checkpoint."""

    batch_size: int = option(64, "Images per training step.", min=1, max=4096)
    seed: int = option(0, "Seed for weights, data order and sampling noise.", min=0, max=MAX_SEED)
    log_every: int = option(10, "Log metrics (mean over the window) every this many steps.", min=1)
    sample_every: int = option(500, "Save a sample grid every this many steps (and at the end).", min=1)
    checkpoint_every: int = option(1000, "Checkpoint every this many steps (and at the end/stop).", min=1)
    checkpoint_seconds: float = option(600.0, "Also checkpoint when this many seconds have passed since the last one.", min=1)
    keep_checkpoints: int = option(3, "How many recent checkpoints to keep (the best one is always kept).", min=1)
    # Speed options (README, "Performance"). Defaults are the papers' exact fp32 eager settings; a
    # config.json written before these fields existed loads with these defaults.
    precision: str = option("fp32", "Arithmetic of the forward passes: 'fp32' (exact, the papers' setting) "
                                    "or 'bf16' (autocast bfloat16; losses stay fp32): faster on recent "
                                    "GPUs, slower on most CPUs.", choices=("fp32", "bf16"))
    channels_last: bool = option(False, "Channels-last memory layout for images and convolution weights "
                                        "(faster convolutions on GPUs, with bf16 above all; no gain on CPUs).")
    compile: bool = option(False, "Compile the networks with torch.compile: faster steps on a GPU after "
                                  "a first step that compiles for a minute or more; needs a C++ compiler "
                                  "on CPUs.")

    # Several processes (torchrun; README "Several GPUs or machines"). Ignored on one process.
    per_rank_batch: bool = option(False, "Under torchrun, batch_size is each process's batch (the global batch "
                                         "is N x batch_size) instead of the global batch split over the N "
                                         "processes.")
    sync_bn: bool = option(False, "Under torchrun, batch norm computes its statistics over all processes' "
                                  "images (SyncBatchNorm) instead of each process's own.")

    def domain_split(self) -> str | None:
        """The dataset's domain split a model trains on (e.g. dSprites by "shape"), or None for one
        domain. Models of several domains return their config field here; the loop then draws
        unpaired batches from every domain."""
        return None

    def batches_at(self, step: int) -> int:
        """Real batches the training step after `step` consumes (critic schedules override this);
        a pure function of the config, so epochs convert to steps before any trainer exists."""
        return 1


def fields_of(config_cls: type) -> list[dataclasses.Field]:
    return list(dataclasses.fields(config_cls))


def field_type(config_cls: type, f: dataclasses.Field) -> type:
    """The concrete Python type of a field (resolving `from __future__ import annotations`)."""
    hints = typing.get_type_hints(config_cls)
    return hints[f.name]


def to_dict(config: Any) -> dict[str, Any]:
    return dataclasses.asdict(config)


def _coerce(name: str, typ: type, value: Any) -> Any:
    """Convert a JSON or command-line value to the field's type, or raise a clear GMError."""
    try:
        if typ is bool:
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in ("1", "true", "yes", "on"):
                return True
            if text in ("0", "false", "no", "off"):
                return False
            raise ValueError
        if typ is int:
            if isinstance(value, bool):
                raise ValueError
            if isinstance(value, float) and not value.is_integer():  # also NaN and +-inf
                raise ValueError
            if isinstance(value, str) and len(value.strip()) > 30:
                raise ValueError  # int() of a 100,000-digit string takes seconds (and is never meant)
            return int(str(value).strip()) if isinstance(value, str) else int(value)
        if typ is float:
            if isinstance(value, bool) or (isinstance(value, str) and len(value.strip()) > 60):
                raise ValueError
            return float(value)
        if typ is str:
            return str(value)
    except (TypeError, ValueError):
        shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:36] + "...'"
        raise GMError(f"'{name}' must be a {typ.__name__}, got {shown}.") from None
    return value


def _check(config_cls: type, f: dataclasses.Field, value: Any) -> None:
    meta = f.metadata
    if meta.get("choices") is not None and value not in meta["choices"]:
        raise GMError(f"'{f.name}' must be one of {', '.join(map(str, meta['choices']))}; got {value!r}.")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if isinstance(value, float) and not math.isfinite(value):  # nan, inf: never a setting
            raise GMError(f"'{f.name}' must be a finite number; got {value}.")
        shown = value if abs(value) < 10 ** 15 else f"a {len(str(int(abs(value))))}-digit number"
        if meta.get("min") is not None and value < meta["min"]:
            raise GMError(f"'{f.name}' must be at least {meta['min']}; got {shown}.")
        if meta.get("max") is not None and value > meta["max"]:
            raise GMError(f"'{f.name}' must be at most {meta['max']}; got {shown}.")
        if isinstance(value, int) and abs(value) > MAX_INT:
            raise GMError(f"'{f.name}' must be at most {MAX_INT:,}; got {shown}.")


def from_dict(config_cls: type, values: dict[str, Any], *, model: str = "", saved: bool = False) -> Any:
    """Build and validate a config from a dict (config.json, a Hub config, a UI form).

    ``saved``: the dict was written by a run (config.json, a checkpoint, a Hub upload), so a key it
    lacks is a field added since: it gets the field's ``before`` value when it declares one."""
    known = {f.name: f for f in fields_of(config_cls)}
    if saved:
        values = {**{name: f.metadata["before"] for name, f in known.items()
                     if "before" in f.metadata and name not in values}, **values}
    unknown = sorted(set(values) - set(known))
    if unknown:
        where = f" of model '{model}'" if model else ""
        raise GMError(f"Unknown config key{'s' if len(unknown) > 1 else ''}{where}: {', '.join(unknown)}; "
                      f"valid keys are {', '.join(known)}.")
    kwargs = {}
    for name, value in values.items():
        f = known[name]
        kwargs[name] = _coerce(name, field_type(config_cls, f), value)
        _check(config_cls, f, kwargs[name])
    config = config_cls(**kwargs)
    validate = getattr(config, "validate", None)
    if validate is not None:
        validate()
    return config


def parse_overrides(pairs: list[str]) -> dict[str, str]:
    """Turn ['lr=1e-4', 'width=2'] into {'lr': '1e-4', 'width': '2'}."""
    out: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise GMError(f"--set takes key=value, got {pair!r}.")
        out[key.strip()] = value.strip()
    return out


def with_overrides(config: Any, overrides: dict[str, Any], *, model: str = "") -> Any:
    """A copy of `config` with some fields replaced, validated like from_dict."""
    merged = to_dict(config)
    known = {f.name for f in fields_of(type(config))}
    unknown = sorted(set(overrides) - known)
    if unknown:
        where = f" of model '{model}'" if model else ""
        raise GMError(f"Unknown config key{'s' if len(unknown) > 1 else ''}{where}: {', '.join(unknown)}; "
                      f"valid keys are {', '.join(sorted(known))}.")
    merged.update(overrides)
    return from_dict(type(config), merged, model=model)


def describe(config_cls: type) -> list[dict[str, Any]]:
    """Field descriptions for help texts and UI forms: name, type, default, help, bounds."""
    out = []
    defaults = config_cls()
    for f in fields_of(config_cls):
        out.append({
            "name": f.name,
            "type": field_type(config_cls, f).__name__,
            "default": getattr(defaults, f.name),
            "help": f.metadata.get("help", ""),
            "min": f.metadata.get("min"),
            "max": f.metadata.get("max"),
            "choices": f.metadata.get("choices"),
            "ui": f.metadata.get("ui", True),
        })
    return out

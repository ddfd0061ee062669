"""The run folder: the contract between training, the CLI and the app.

    <runs-dir>/<run-name>/
      config.json     model, dataset, every hyperparameter, seed, device, gm version
      state.json      status, step, epoch, total steps, last checkpoint, error message
      metrics.jsonl   one JSON object per logged step: {"step", "epoch", "time", <metric>: value, ...}
      checkpoints/    step-<N>/ (see gm.runs.checkpoint)
      samples/        step-<N>.png sample grids from a fixed noise seed
      eval.jsonl      evaluations (FID and friends)
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
import re
from pathlib import Path
from typing import Any

from gm.errors import GMError
from gm.runs.atomic import read_json, write_json_atomic

STATUSES = ("created", "queued", "running", "paused", "finished", "stopped", "failed", "diverged")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


def default_runs_dir() -> Path:
    """`GM_RUNS_DIR` when set, else checkpoints/runs next to the gm package (the repo's default)."""
    env = os.environ.get("GM_RUNS_DIR")
    if env:
        return Path(env).expanduser()
    return Path(__file__).resolve().parents[2] / "checkpoints" / "runs"


def check_run_name(name: str) -> str:
    """Run names are plain file names: letters, digits, '.', '_' and '-', not starting with a dot."""
    if not _NAME.match(name or "") or ".." in name:
        raise GMError(f"Invalid run name {name!r}: use letters, digits, '.', '_' and '-' only "
                      f"(at most 100, not starting with '.' or '-').")
    return name


def _clean(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None if math.isnan(value) else (1e308 if value > 0 else -1e308)
    return value


class RunFolder:
    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)

    # ---- creation / opening -------------------------------------------------------------
    @classmethod
    def create(cls, runs_dir: str | os.PathLike, name: str | None, config: dict[str, Any]) -> RunFolder:
        runs_dir = Path(runs_dir)
        if name is None:
            stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
            base = f"{config['model']}-{stamp}"
            name, i = base, 1
            while (runs_dir / name).exists():
                i += 1
                name = f"{base}-{i}"
        check_run_name(name)
        path = runs_dir / name
        if path.exists():
            raise GMError(f"A run named '{name}' already exists in {runs_dir}; pick another --name or "
                          f"resume it with `python -m gm resume {path}`.")
        try:
            path.mkdir(parents=True)
        except OSError as exc:
            raise GMError(f"Cannot create run folder {path} ({exc.strerror}); choose a writable --runs-dir.") from None
        run = cls(path)
        (path / "checkpoints").mkdir()
        (path / "samples").mkdir()
        write_json_atomic(path / "config.json", config)
        run.write_state(status="created", step=0, epoch=0.0, total_steps=None, last_checkpoint=None,
                        error=None, elapsed=0.0)
        (path / "metrics.jsonl").touch()
        return run

    @classmethod
    def open(cls, path: str | os.PathLike) -> RunFolder:
        path = Path(path)
        if not (path / "config.json").is_file():
            raise GMError(f"No run at {path} (no config.json); list runs with `python -m gm runs`.")
        return cls(path)

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def checkpoints_dir(self) -> Path:
        return self.path / "checkpoints"

    @property
    def samples_dir(self) -> Path:
        return self.path / "samples"

    @property
    def metrics_path(self) -> Path:
        return self.path / "metrics.jsonl"

    # ---- config and state ---------------------------------------------------------------
    def read_config(self) -> dict[str, Any]:
        try:
            return read_json(self.path / "config.json")
        except (OSError, ValueError) as exc:
            raise GMError(f"{self.path / 'config.json'} cannot be read ({exc}); the run folder is damaged.") from None

    def read_state(self) -> dict[str, Any]:
        try:
            return read_json(self.path / "state.json")
        except (OSError, ValueError):
            return {"status": "failed", "step": 0, "error": "state.json missing or unreadable"}

    def write_state(self, **updates: Any) -> dict[str, Any]:
        state = self.read_state() if (self.path / "state.json").exists() else {}
        state.update({k: _clean(v) for k, v in updates.items()})
        state["updated"] = _dt.datetime.now().isoformat(timespec="seconds")
        write_json_atomic(self.path / "state.json", state)
        return state

    # ---- metrics ------------------------------------------------------------------------
    def append_metrics(self, records: list[dict[str, Any]]) -> None:
        if not records:
            return
        text = "".join(json.dumps({k: _clean(v) for k, v in r.items()}) + "\n" for r in records)
        with open(self.metrics_path, "a", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()

    def read_metrics(self) -> list[dict[str, Any]]:
        """Every complete metrics line (a torn last line from a crash is ignored)."""
        out = []
        if not self.metrics_path.exists():
            return out
        with open(self.metrics_path, encoding="utf-8") as fh:
            for line in fh:
                if not line.endswith("\n"):
                    break
                try:
                    out.append(json.loads(line))
                except ValueError:
                    continue
        return out

    def truncate_metrics_after(self, step: int) -> None:
        """Drop lines logged after `step` (and a torn last line): a resumed run re-logs them exactly."""
        if not self.metrics_path.exists():
            return
        keep = [r for r in self.read_metrics() if int(r.get("step", 0)) <= step]
        text = "".join(json.dumps(r) + "\n" for r in keep)
        from gm.runs.atomic import write_bytes_atomic
        write_bytes_atomic(self.metrics_path, text.encode())

    def append_eval(self, record: dict[str, Any]) -> None:
        with open(self.path / "eval.jsonl", "a", encoding="utf-8") as fh:
            fh.write(json.dumps({k: _clean(v) for k, v in record.items()}) + "\n")

    def read_eval(self) -> list[dict[str, Any]]:
        path = self.path / "eval.jsonl"
        if not path.exists():
            return []
        out = []
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                continue
        return out

    def sample_grids(self) -> list[tuple[int, Path]]:
        """Saved sample grids, oldest first."""
        out = []
        if self.samples_dir.is_dir():
            for p in self.samples_dir.glob("step-*.png"):
                try:
                    out.append((int(p.stem.split("-", 1)[1]), p))
                except ValueError:
                    continue
        return sorted(out)


def list_runs(runs_dir: str | os.PathLike | None = None) -> list[RunFolder]:
    runs_dir = Path(runs_dir) if runs_dir else default_runs_dir()
    if not runs_dir.is_dir():
        return []
    return sorted((RunFolder(p) for p in runs_dir.iterdir() if (p / "config.json").is_file()),
                  key=lambda r: r.name)

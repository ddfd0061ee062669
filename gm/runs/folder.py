"""The run folder: the contract between training, the CLI and the app.

    <runs-dir>/<run-name>/
      config.json     model, dataset, every hyperparameter, seed, device, gm version
      state.json      status, step, epoch, total steps, last checkpoint, error message
      metrics.jsonl   one JSON object per logged step: {"step", "epoch", "time", <metric>: value, ...}
      checkpoints/    step-<N>/ (see gm.runs.checkpoint)
      samples/        step-<N>.png sample grids from a fixed noise seed
      eval.jsonl      evaluations (FID and friends)
      control.json    {"request": "pause" | "continue" | "stop"}: how the app reaches a run trained by
                      another process (a torchrun job); rank 0 reads it before every step
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
from gm.runs import schema
from gm.runs.atomic import write_json_atomic
from gm.runs.schema import STATUSES, DamagedFile  # noqa: F401  (STATUSES: re-exported, as before)

CONTROL_REQUESTS = ("pause", "continue", "stop")
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

    # ---- config and state ----------------------------------------------------------------
    @property
    def owner(self) -> str:
        """How sentences name this run: "run 'my-vae'"."""
        return f"run '{self.name}'"

    def read_config(self) -> dict[str, Any]:
        """config.json, checked against gm.runs.schema.CONFIG; DamagedFile (a GMError) if it is not."""
        return schema.read_file(schema.CONFIG_FILE, self.path / "config.json", owner=self.owner,
                                folder=self.path)

    def read_state(self) -> dict[str, Any]:
        """state.json, checked against gm.runs.schema.STATE; DamagedFile (a GMError) if it is damaged.
        A missing state.json (a crash right after the folder was created) reads as a failed run at
        step 0, which `resume --steps N` continues."""
        path = self.path / "state.json"
        if not path.exists():
            return {"status": "failed", "step": 0, "error": "state.json is missing; resume the run with --steps N."}
        return schema.read_file(schema.STATE_FILE, path, owner=self.owner, folder=self.path)

    def damage(self) -> DamagedFile | None:
        """Why this run cannot be used (its config.json or state.json is damaged), or None.
        Listings call this per run, so one damaged folder is shown as damaged and the rest work."""
        try:
            self.read_config()
            self.read_state()
        except DamagedFile as exc:
            return exc
        return None

    def write_state(self, **updates: Any) -> dict[str, Any]:
        try:
            state = self.read_state() if (self.path / "state.json").exists() else {}
        except DamagedFile:  # the writer owns the run now: a damaged state.json is replaced, not merged
            state = {}
        state = {"status": "failed", "step": 0, **state}  # the schema's required fields are always there
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
        """Every valid metrics line (gm.runs.schema.metrics_record): a torn last line from a crash,
        a line that is not UTF-8 JSON and a line whose step is not a whole number are skipped."""
        return _read_lines(self.metrics_path, schema.metrics_record, complete_only=True)

    def last_logged_step(self) -> int | None:
        """The step of the newest complete, valid metrics line (read from the file's end), or None."""
        try:
            with open(self.metrics_path, "rb") as fh:
                fh.seek(0, os.SEEK_END)
                size = fh.tell()
                fh.seek(max(0, size - 8192))
                tail = fh.read()
        except OSError:
            return None
        for line in reversed(tail.split(b"\n")[1 if size > 8192 else 0:]):
            record = schema.parse_line(line, schema.metrics_record) if line.strip() else None
            if record is not None:
                return int(record["step"])
        return None

    def live_step(self, state: dict[str, Any] | None = None) -> int | None:
        """The step a run has reached: state.json's step is the last checkpoint's, so while the run
        trains (here or in another process) the newest logged step is later."""
        state = self.read_state() if state is None else state
        step = state.get("step")
        if state.get("status") in ("running", "paused"):
            logged = self.last_logged_step()
            if logged is not None and (step is None or logged > step):
                return logged
        return step

    def truncate_metrics_after(self, step: int) -> None:
        """Keep the valid lines up to `step`: a resumed run re-logs the later ones exactly, and lines
        that are not valid records (torn, not UTF-8, a step that is not a whole number) are dropped."""
        if not self.metrics_path.exists():
            return
        keep = [r for r in self.read_metrics() if r["step"] <= step]
        text = "".join(json.dumps(r) + "\n" for r in keep)
        from gm.runs.atomic import write_bytes_atomic
        write_bytes_atomic(self.metrics_path, text.encode())

    def append_eval(self, record: dict[str, Any]) -> None:
        with open(self.path / "eval.jsonl", "a", encoding="utf-8") as fh:
            fh.write(json.dumps({k: _clean(v) for k, v in record.items()}) + "\n")

    def read_eval(self) -> list[dict[str, Any]]:
        """Every valid eval.jsonl line (gm.runs.schema.eval_record); damaged lines are skipped."""
        return _read_lines(self.path / "eval.jsonl", schema.eval_record, complete_only=False)

    @property
    def control_path(self) -> Path:
        return self.path / "control.json"

    def request(self, action: str) -> None:
        """Ask whoever trains this run, from outside its process, to pause, continue or stop."""
        if action not in CONTROL_REQUESTS:
            raise GMError(f"A run can be asked to {', '.join(CONTROL_REQUESTS)}; got {action!r}.")
        write_json_atomic(self.control_path, {"request": action})

    def read_request(self) -> str | None:
        """The latest request in control.json, or None (no file, or one that is not a request)."""
        try:
            data = json.loads(self.control_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        request = data.get("request") if isinstance(data, dict) else None
        return request if request in CONTROL_REQUESTS else None

    def clear_request(self) -> None:
        """Forget an old request (a new session must not obey the previous one's stop)."""
        try:
            self.control_path.unlink()
        except FileNotFoundError:
            pass

    def sample_grids(self) -> list[tuple[int, Path]]:
        """Saved sample grids that are readable PNG files, oldest first (a damaged one is skipped)."""
        out = []
        if self.samples_dir.is_dir():
            for p in self.samples_dir.glob("step-*.png"):
                step = p.stem.split("-", 1)[1]
                if step.isdigit() and readable_png(p):
                    out.append((int(step), p))
        return sorted(out)


def _read_lines(path: Path, check, *, complete_only: bool) -> list[dict[str, Any]]:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise GMError(f"{path} cannot be read ({exc.strerror}); check its permissions.") from None
    if complete_only and not data.endswith(b"\n"):
        data = data[:data.rfind(b"\n") + 1]  # a torn last line: the writer was killed mid-line
    out = []
    for line in data.split(b"\n"):
        record = schema.parse_line(line, check)
        if record is not None:
            out.append(record)
    return out


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_png_checked: dict[tuple[str, int, int], bool] = {}


def readable_png(path: Path) -> bool:
    """Whether `path` is a complete PNG that decodes (checked once per file version: path, size,
    mtime). Pages show grids straight from disk, so a damaged one must never reach them."""
    try:
        st = path.stat()
    except OSError:
        return False
    key = (str(path), st.st_size, st.st_mtime_ns)
    if key not in _png_checked:
        _png_checked[key] = _decodes(path)
        if len(_png_checked) > 4096:
            _png_checked.clear()
    return _png_checked[key]


def _decodes(path: Path) -> bool:
    from PIL import Image
    try:
        with open(path, "rb") as fh:
            if fh.read(8) != _PNG_SIGNATURE:
                return False
        with Image.open(path) as img:
            if img.width * img.height > 64 * 2 ** 20:  # a grid is at most a few megapixels
                return False
            img.load()
        return True
    except Exception:  # PIL raises many kinds for truncated or corrupt data
        return False


def list_runs(runs_dir: str | os.PathLike | None = None) -> list[RunFolder]:
    """Every run folder (a folder with a config.json) by name, damaged ones included: check
    `run.damage()` per run before reading it, so one damaged folder never hides the others."""
    runs_dir = Path(runs_dir) if runs_dir else default_runs_dir()
    if not runs_dir.is_dir():
        return []
    return sorted((RunFolder(p) for p in runs_dir.iterdir() if (p / "config.json").is_file()),
                  key=lambda r: r.name)

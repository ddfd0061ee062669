"""The training loop, top to bottom: batch -> train_step -> log -> sample -> checkpoint.

One loop serves the CLI (foreground) and the job manager (background thread). It never touches a UI:
it writes the run folder and reports progress through a callback. Control (pause/stop) is checked
every step, so both take effect within one training step.
"""

from __future__ import annotations

import datetime as _dt
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from gm import __version__
from gm.config import from_dict, to_dict
from gm.data import Batcher, load_dataset
from gm.device import resolve_device
from gm.errors import GMError
from gm.images import make_grid, save_png
from gm.registry import get_spec
from gm.runs.checkpoint import (
    latest_checkpoint,
    load_checkpoint,
    prune_checkpoints,
    save_checkpoint,
)
from gm.runs.folder import RunFolder


class Control:
    """Thread-safe pause/stop requests, shared by a job's owner and its training loop."""

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._running = threading.Event()
        self._running.set()

    def request_stop(self) -> None:
        self._stop.set()
        self._running.set()

    def request_pause(self) -> None:
        self._running.clear()

    def request_continue(self) -> None:
        self._running.set()

    @property
    def stop_requested(self) -> bool:
        return self._stop.is_set()

    @property
    def pause_requested(self) -> bool:
        return not self._running.is_set()

    def wait_while_paused(self, timeout: float = 0.2) -> None:
        self._running.wait(timeout)


class Diverged(Exception):
    def __init__(self, step: int, metric: str, value: float) -> None:
        super().__init__(f"'{metric}' became {value} at step {step}")
        self.step, self.metric, self.value = step, metric, value


@dataclass
class Progress:
    step: int
    total_steps: int
    epoch: float
    images_per_sec: float
    eta_seconds: float | None
    elapsed: float
    metrics: dict[str, Any] = field(default_factory=dict)


@dataclass
class Session:
    """Everything a run needs in memory: folder, config, trainer, batcher."""

    run: RunFolder
    spec: Any
    config: Any
    trainer: Any
    batcher: Batcher
    device: torch.device
    total_steps: int
    elapsed: float = 0.0
    last_checkpoint_step: int | None = None


def run_config(model: str, config: Any, device: str, data_dir: str | None, dataset) -> dict[str, Any]:
    spec = get_spec(model)
    shape = {"image_shape": list(dataset.image_shape), "max_value": dataset.max_value,
             "num_classes": dataset.num_classes, "size": len(dataset)}
    return {"model": model, "dataset": spec.dataset, "family": spec.family, "config": to_dict(config),
            "device": device, "data_dir": data_dir, "data_shape": shape, "gm_version": __version__,
            "created": _dt.datetime.now().isoformat(timespec="seconds")}


def steps_for_epochs(epochs: float, dataset_size: int, batch_size: int) -> int:
    return max(1, math.ceil(epochs * (dataset_size // batch_size)))


def new_session(model: str, config: Any, *, runs_dir, name: str | None = None, device: str = "auto",
                data_dir: str | None = None, steps: int | None = None, epochs: float | None = None,
                dataset=None) -> Session:
    """Create a run folder and a fresh trainer for it."""
    spec = get_spec(model)
    dev = resolve_device(device)
    dataset = dataset if dataset is not None else load_dataset(spec.dataset, data_dir)
    total = _total_steps(steps, epochs, len(dataset), config.batch_size)
    run = RunFolder.create(runs_dir, name, run_config(model, config, device, data_dir, dataset))
    run.write_state(total_steps=total, device=str(dev))
    return _build(run, spec, config, dataset, dev, total)


def _total_steps(steps: int | None, epochs: float | None, n: int, batch: int) -> int:
    if steps is not None and epochs is not None:
        raise GMError("Give either --steps or --epochs, not both.")
    if steps is not None:
        if steps < 1:
            raise GMError(f"--steps must be at least 1; got {steps}.")
        return steps
    if epochs is not None:
        if epochs <= 0:
            raise GMError(f"--epochs must be positive; got {epochs}.")
        return steps_for_epochs(epochs, n, batch)
    return steps_for_epochs(1, n, batch)


def _build(run: RunFolder, spec, config, dataset, dev: torch.device, total: int) -> Session:
    trainer = spec.trainer_cls(config, dataset, dev)
    batcher = Batcher(dataset, config.batch_size, config.seed, dev, with_labels=trainer.uses_labels)
    return Session(run=run, spec=spec, config=config, trainer=trainer, batcher=batcher, device=dev,
                   total_steps=total)


def open_session(path, *, steps: int | None = None, epochs: float | None = None,
                 device: str | None = None, data_dir: str | None = None,
                 overrides: dict[str, Any] | None = None) -> Session:
    """Rebuild a run from its folder and latest checkpoint; `steps`/`epochs` are added on top."""
    run = RunFolder.open(path)
    cfg = run.read_config()
    spec = get_spec(cfg.get("model", "?"))
    values = dict(cfg.get("config", {}))
    values.update(overrides or {})
    config = from_dict(spec.config_cls, values, model=spec.name)
    dev = resolve_device(device or cfg.get("device") or "auto")
    dataset = load_dataset(spec.dataset, data_dir or cfg.get("data_dir"))
    state = run.read_state()
    found = latest_checkpoint(run.checkpoints_dir)
    start = found[0] if found else 0
    prior_total = int(state.get("total_steps") or 0)
    if steps is not None or epochs is not None:
        total = start + _total_steps(steps, epochs, len(dataset), config.batch_size)
    elif prior_total > start:
        total = prior_total
    else:
        raise GMError(f"Run '{run.name}' already reached step {start} of {prior_total}; pass --steps or "
                      f"--epochs to train further.")
    session = _build(run, spec, config, dataset, dev, total)
    if found:
        weights, tstate, step = load_checkpoint(found[1])
        session.trainer.load_weights(weights)
        session.trainer.load_state_dict(tstate["trainer"])
        session.batcher.load_state_dict(tstate["batcher"])
        session.elapsed = float(tstate.get("elapsed", 0.0))
        session.last_checkpoint_step = step
    run.truncate_metrics_after(start)
    if overrides:
        cfg["config"] = to_dict(config)
        from gm.runs.atomic import write_json_atomic
        write_json_atomic(run.path / "config.json", cfg)
    run.write_state(total_steps=total, step=start, error=None, device=str(dev))
    return session


def checkpoint(session: Session) -> None:
    t = session.trainer
    state = {"trainer": t.state_dict(), "batcher": session.batcher.state_dict(),
             "elapsed": session.elapsed}
    path = save_checkpoint(session.run.checkpoints_dir, t.step, t.weights(), state)
    session.last_checkpoint_step = t.step
    prune_checkpoints(session.run.checkpoints_dir, session.config.keep_checkpoints)
    session.run.write_state(step=t.step, epoch=session.batcher.epoch_float,
                            last_checkpoint=path.name, elapsed=session.elapsed)


def save_samples(session: Session) -> None:
    images, nrow = session.trainer.sample_grid()
    save_png(session.run.samples_dir / f"step-{session.trainer.step}.png", make_grid(images, nrow))


def _draw(batcher: Batcher, k: int) -> tuple[torch.Tensor, torch.Tensor | None]:
    if k == 1:
        return batcher.next()
    parts = [batcher.next() for _ in range(k)]
    images = torch.cat([p[0] for p in parts])
    labels = torch.cat([p[1] for p in parts]) if parts[0][1] is not None else None
    return images, labels


class _Window:
    """Per-step metrics kept on the device until the next log; one host sync per flush."""

    def __init__(self) -> None:
        self.steps: list[int] = []
        self.scalars: list[dict[str, Any]] = []
        self.vectors: dict[str, torch.Tensor] = {}

    def add(self, step: int, metrics: dict[str, Any]) -> None:
        self.steps.append(step)
        row = {}
        for k, v in metrics.items():
            if isinstance(v, torch.Tensor) and v.dim() > 0:
                self.vectors[k] = v
            else:
                row[k] = v
        self.scalars.append(row)

    def flush(self) -> dict[str, Any] | None:
        """Mean of each scalar over the window; raises Diverged at the first non-finite value."""
        if not self.steps:
            return None
        keys = list(dict.fromkeys(k for row in self.scalars for k in row))
        table = torch.full((len(self.scalars), len(keys)), float("nan"), dtype=torch.float64)
        present = torch.zeros_like(table, dtype=torch.bool)
        cells = []
        for i, row in enumerate(self.scalars):
            for j, k in enumerate(keys):
                if k in row:
                    present[i, j] = True
                    if isinstance(row[k], torch.Tensor):
                        cells.append((i, j, row[k]))
                    else:
                        table[i, j] = float(row[k])
        if cells:  # one device->host copy for the whole window
            values = torch.stack([v.detach().float().reshape(()) for _, _, v in cells]).cpu()
            for (i, j, _), value in zip(cells, values.tolist()):
                table[i, j] = value
        bad = present & ~torch.isfinite(table)
        if bool(bad.any()):
            i, j = bad.nonzero()[0].tolist()
            raise Diverged(self.steps[i], keys[j], float(table[i, j]))
        means = torch.where(present, table, 0.0).sum(0) / present.sum(0).clamp(min=1)
        record: dict[str, Any] = dict(zip(keys, means.tolist()))
        for k, v in self.vectors.items():
            vals = v.detach().float().cpu()
            if not bool(torch.isfinite(vals).all()):
                raise Diverged(self.steps[-1], k, float("nan"))
            record[k] = vals.tolist()
        self.steps, self.scalars, self.vectors = [], [], {}
        return record


def train(session: Session, control: Control | None = None,
          on_progress: Callable[[Progress], None] | None = None) -> str:
    """Train until total_steps, a stop request or an error; returns the final status.

    Statuses: finished, stopped (stop request or Ctrl-C, checkpointed), diverged (non-finite metric:
    nothing after the last good checkpoint is saved), failed (an exception; its message in state.json).
    """
    control = control or Control()
    run, t, cfg = session.run, session.trainer, session.config
    window = _Window()
    t.train(True)
    run.write_state(status="running", error=None, total_steps=session.total_steps)
    start_wall = time.perf_counter() - session.elapsed
    last_ckpt_wall = time.perf_counter()
    rate_t, rate_step = time.perf_counter(), t.step
    images_seen, rate_images = 0, 0
    ips = 0.0

    def flush() -> None:
        nonlocal rate_t, rate_step, rate_images, ips
        record = window.flush()
        if record is None:
            return
        now = time.perf_counter()
        session.elapsed = now - start_wall
        if images_seen > rate_images:
            ips = (images_seen - rate_images) / max(now - rate_t, 1e-9)
        rate_t, rate_step, rate_images = now, t.step, images_seen
        row = {"step": t.step, "epoch": round(session.batcher.epoch_float, 6),
               "time": round(session.elapsed, 4), **record}
        run.append_metrics([row])
        if on_progress is not None:
            remaining = session.total_steps - t.step
            eta = remaining * t.images_per_step() / ips if ips > 0 else None
            on_progress(Progress(t.step, session.total_steps, session.batcher.epoch_float, ips, eta,
                                 session.elapsed, record))

    def save_all() -> None:
        flush()
        checkpoint(session)

    status = "finished"
    try:
        while t.step < session.total_steps:
            if control.pause_requested and not control.stop_requested:
                save_all()
                run.write_state(status="paused")
                while control.pause_requested and not control.stop_requested:
                    control.wait_while_paused()
                start_wall = time.perf_counter() - session.elapsed
                rate_t, rate_step, rate_images = time.perf_counter(), t.step, images_seen
                run.write_state(status="running")
            if control.stop_requested:
                status = "stopped"
                break
            epoch_before = session.batcher.epoch
            images, labels = _draw(session.batcher, t.batches_per_step())
            window.add(t.step + 1, t.train_step(images, labels))
            images_seen += images.shape[0]
            if t.step % cfg.log_every == 0:
                flush()
            epoch_done = session.batcher.position >= session.batcher.batches_per_epoch * cfg.batch_size
            if t.step % cfg.sample_every == 0 or epoch_done or session.batcher.epoch != epoch_before:
                save_samples(session)  # at least once per epoch: early / middle / final grids
            due = t.step % cfg.checkpoint_every == 0
            if due or time.perf_counter() - last_ckpt_wall >= cfg.checkpoint_seconds:
                save_all()
                last_ckpt_wall = time.perf_counter()
    except KeyboardInterrupt:
        status = "stopped"
    except Diverged as exc:
        run.write_state(status="diverged", error=f"Training diverged: {exc}. The last good checkpoint is "
                        f"step {session.last_checkpoint_step}; resume with a lower learning rate.",
                        diverged_step=exc.step, diverged_metric=exc.metric)
        return "diverged"
    except GMError as exc:
        run.write_state(status="failed", error=str(exc))
        return "failed"
    except Exception as exc:  # disk full, CUDA OOM, a bug: recorded, never swallowed silently
        run.write_state(status="failed", error=f"{type(exc).__name__}: {exc}")
        raise
    try:
        save_all()
        if status == "finished" and not any(s == t.step for s, _ in run.sample_grids()):
            save_samples(session)
    except Diverged as exc:
        run.write_state(status="diverged", error=f"Training diverged: {exc}. The last good checkpoint is "
                        f"step {session.last_checkpoint_step}; resume with a lower learning rate.",
                        diverged_step=exc.step, diverged_metric=exc.metric)
        return "diverged"
    except Exception as exc:
        run.write_state(status="failed", error=f"{type(exc).__name__}: {exc}")
        raise
    run.write_state(status=status)
    return status


def load_for_inference(path, device: str = "auto", checkpoint_path=None):
    """(trainer, run) with the latest (or given) checkpoint's weights, in eval mode, for sampling."""
    run = RunFolder.open(path)
    cfg = run.read_config()
    spec = get_spec(cfg.get("model", "?"))
    config = from_dict(spec.config_cls, cfg.get("config", {}), model=spec.name)
    dev = resolve_device(device)
    from gm.data.base import ImageDataset
    meta = cfg.get("data_shape")
    dataset = load_dataset(spec.dataset, cfg.get("data_dir")) if meta is None else ImageDataset(
        name=spec.dataset, images=torch.zeros((1, *meta["image_shape"]), dtype=torch.uint8),
        max_value=meta["max_value"], num_classes=meta["num_classes"])
    trainer = spec.trainer_cls(config, dataset, dev)
    if checkpoint_path is None:
        found = latest_checkpoint(run.checkpoints_dir)
        if found is None:
            raise GMError(f"Run '{run.name}' has no checkpoint yet; train it first.")
        checkpoint_path = found[1]
    weights, _, _ = load_checkpoint(checkpoint_path)
    trainer.load_weights(weights)
    trainer.train(False)
    return trainer, run

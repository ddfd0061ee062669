"""The training loop, top to bottom: batch -> train_step -> log -> sample -> checkpoint.

One loop serves the CLI (foreground) and the job manager (background thread). It never touches a UI:
it writes the run folder and reports progress through a callback. Control (pause/stop) is checked
every step, so both take effect within one training step.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import math
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from gm import __version__
from gm.config import from_dict, to_dict
from gm.data import Batcher, load_dataset
from gm.device import resolve_device, tune_host_allocator
from gm.errors import GMError
from gm.images import make_grid, save_png
from gm.registry import get_spec
from gm.runs.atomic import write_json_atomic
from gm.runs.checkpoint import (
    is_complete,
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


def host_id() -> str:
    """This machine, as state.json records it next to the training pid: a hash, so a run folder
    shared or pushed to the Hub does not carry the host's name."""
    return hashlib.sha256(socket.gethostname().encode()).hexdigest()[:12]


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
    best: dict[str, Any] | None = None      # {"name", "step", "by", "value"} of the best checkpoint
    error: str | None = None                # why the run failed or diverged (also in state.json)
    # Score of the rows logged since the last checkpoint (see checkpoint_score).
    score_by: str = ""
    score_sum: float = 0.0
    score_count: int = 0


def run_config(model: str, config: Any, device: str, data_dir: str | None, dataset) -> dict[str, Any]:
    spec = get_spec(model)
    shape = {"image_shape": list(dataset.image_shape), "max_value": dataset.max_value,
             "num_classes": dataset.num_classes, "size": len(dataset)}
    return {"model": model, "dataset": spec.dataset, "family": spec.family, "config": to_dict(config),
            "device": device, "data_dir": data_dir, "data_shape": shape, "gm_version": __version__,
            "created": _dt.datetime.now().isoformat(timespec="seconds")}


def steps_for_epochs(epochs: float, dataset_size: int, batch_size: int, batches_per_step: int = 1) -> int:
    """Steps that make `epochs` passes over the data (a WGAN step eats n_critic real batches)."""
    return max(1, math.ceil(epochs * (dataset_size // batch_size) / max(1, batches_per_step)))


def _batches_per_step(config: Any) -> int:
    # Trainers with critic iterations take n_critic real batches per step (see batches_per_step()).
    return int(getattr(config, "n_critic", 1) or 1)


def create_run(model: str, config: Any, *, runs_dir, name: str | None = None, device: str = "auto",
               data_dir: str | None = None, steps: int | None = None, epochs: float | None = None,
               dataset=None) -> tuple[RunFolder, int]:
    """Create a run folder (config.json, state.json with total_steps) without building a trainer.

    Returns (run, total_steps). The job manager creates folders this way at once (so a bad name fails
    in the caller) and builds the trainer later, when the job gets its device.
    """
    spec = get_spec(model)
    dev = resolve_device(device)
    dataset = dataset if dataset is not None else load_dataset(spec.dataset, data_dir)
    total = _total_steps(steps, epochs, len(dataset), config.batch_size, _batches_per_step(config))
    if config.batch_size > len(dataset):
        raise GMError(f"batch_size {config.batch_size} is larger than the dataset ({len(dataset)} images).")
    run = RunFolder.create(runs_dir, name, run_config(model, config, device, data_dir, dataset))
    run.write_state(total_steps=total, device=str(dev))
    return run, total


def new_session(model: str, config: Any, *, runs_dir, name: str | None = None, device: str = "auto",
                data_dir: str | None = None, steps: int | None = None, epochs: float | None = None,
                dataset=None) -> Session:
    """Create a run folder and a fresh trainer for it."""
    spec = get_spec(model)
    dev = resolve_device(device)
    dataset = dataset if dataset is not None else load_dataset(spec.dataset, data_dir)
    run, total = create_run(model, config, runs_dir=runs_dir, name=name, device=device, data_dir=data_dir,
                            steps=steps, epochs=epochs, dataset=dataset)
    return _build(run, spec, config, dataset, dev, total)


def _total_steps(steps: int | None, epochs: float | None, n: int, batch: int, per_step: int = 1) -> int:
    if steps is not None and epochs is not None:
        raise GMError("Give either --steps or --epochs, not both.")
    if steps is not None:
        if steps < 1:
            raise GMError(f"--steps must be at least 1; got {steps}.")
        return steps
    if epochs is not None:
        if epochs <= 0:
            raise GMError(f"--epochs must be positive; got {epochs}.")
        return steps_for_epochs(epochs, n, batch, per_step)
    return steps_for_epochs(1, n, batch, per_step)


def _build(run: RunFolder, spec, config, dataset, dev: torch.device, total: int) -> Session:
    trainer = spec.trainer_cls(config, dataset, dev)
    trainer.apply_performance_options()
    batcher = Batcher(dataset, config.batch_size, config.seed, dev, with_labels=trainer.uses_labels)
    return Session(run=run, spec=spec, config=config, trainer=trainer, batcher=batcher, device=dev,
                   total_steps=total)


@dataclass
class ResumePlan:
    """A checked resume of a run folder: everything decided, nothing built or written yet."""

    run: RunFolder
    spec: Any
    config: Any
    device: torch.device
    dataset: Any
    checkpoint: tuple[int, Path] | None   # (step, folder) of the checkpoint to load; None = from scratch
    start: int
    total_steps: int
    overrides: dict[str, Any]
    base_config: Any = None               # the config before the overrides (None without any)


def plan_resume(path, *, steps: int | None = None, epochs: float | None = None,
                device: str | None = None, data_dir: str | None = None,
                overrides: dict[str, Any] | None = None, dataset=None) -> ResumePlan:
    """Check that a run can be resumed (config, overrides, device, length); raises GMError if not."""
    run = RunFolder.open(path)
    cfg = run.read_config()
    if cfg.get("weights_only"):  # shipped pretrained runs and Hub pulls carry no optimizer state
        raise GMError(f"Run '{run.name}' holds weights only (pretrained or from the Hub) and cannot be "
                      f"resumed; train a new run of {cfg.get('model', 'this model')} instead.")
    spec = get_spec(cfg.get("model", "?"))
    values = dict(cfg.get("config", {}))
    values.update(overrides or {})
    config = from_dict(spec.config_cls, values, model=spec.name)
    dev = resolve_device(device or cfg.get("device") or "auto")
    if dataset is None:
        dataset = load_dataset(spec.dataset, data_dir or cfg.get("data_dir"))
    state = run.read_state()
    found = latest_checkpoint(run.checkpoints_dir)
    start = found[0] if found else 0
    prior_total = int(state.get("total_steps") or 0)
    if steps is not None or epochs is not None:
        total = start + _total_steps(steps, epochs, len(dataset), config.batch_size,
                                     _batches_per_step(config))
    elif prior_total > start:
        total = prior_total
    else:
        raise GMError(f"Run '{run.name}' already reached step {start} of {prior_total}; pass --steps or "
                      f"--epochs to train further.")
    if config.batch_size > len(dataset):
        raise GMError(f"batch_size {config.batch_size} is larger than the dataset ({len(dataset)} images).")
    base = from_dict(spec.config_cls, cfg.get("config", {}), model=spec.name) if overrides else None
    return ResumePlan(run=run, spec=spec, config=config, device=dev, dataset=dataset, checkpoint=found,
                      start=start, total_steps=total, overrides=dict(overrides or {}), base_config=base)


def _optimizer_hparams(trainer: Any) -> dict[str, list[dict[str, Any]]]:
    return {name: [{k: v for k, v in group.items() if k != "params"} for group in opt.param_groups]
            for name, opt in trainer.optimizers().items()}


def _same(a: Any, b: Any) -> bool:
    try:
        return bool(a == b)
    except Exception:  # e.g. tensors of different shapes
        return False


def _checkpoint_config(plan: ResumePlan, tstate: dict[str, Any]) -> Any:
    """The config a checkpoint was trained with: stored in it (newer checkpoints), else config.json
    before this resume's overrides; None when it cannot be rebuilt (then nothing is restored)."""
    stored = tstate.get("config")
    if isinstance(stored, dict):
        try:
            return from_dict(plan.spec.config_cls, stored, model=plan.spec.name)
        except GMError:
            pass
    return plan.base_config


def _restore_overridden_hparams(trainer: Any, base: dict[str, list[dict[str, Any]]],
                                fresh: dict[str, list[dict[str, Any]]]) -> None:
    """Loading optimizer state brings back the checkpoint's lr, betas, ...: put back the ones the
    overrides changed (fresh optimizers of the new config differ from those of the old one `base`)
    and keep the others as loaded (e.g. an lr that a schedule has moved)."""
    for name, opt in trainer.optimizers().items():
        for i, group in enumerate(opt.param_groups):
            old = base[name][i] if name in base and i < len(base[name]) else {}
            for key, value in fresh[name][i].items():
                if not _same(old.get(key), value):
                    group[key] = value


def open_planned(plan: ResumePlan) -> Session:
    """Build the trainer of a plan, load its checkpoint and drop metrics logged after it."""
    run = plan.run
    session = _build(run, plan.spec, plan.config, plan.dataset, plan.device, plan.total_steps)
    if plan.checkpoint is not None:
        weights, tstate, step = load_checkpoint(plan.checkpoint[1])
        fresh, base = _optimizer_hparams(session.trainer), None
        trained_with = _checkpoint_config(plan, tstate)
        if trained_with is not None and to_dict(trained_with) != to_dict(plan.config):
            # Built before the checkpoint's RNG state is loaded: building a trainer seeds torch.
            base = _optimizer_hparams(plan.spec.trainer_cls(trained_with, plan.dataset, torch.device("cpu")))
        session.trainer.load_weights(weights)
        session.trainer.load_state_dict(tstate["trainer"])
        if base is not None:
            _restore_overridden_hparams(session.trainer, base, fresh)
        session.batcher.load_state_dict(tstate["batcher"])
        session.elapsed = float(tstate.get("elapsed", 0.0))
        session.last_checkpoint_step = step
    state = run.read_state()
    best = state.get("best_checkpoint")
    # The best-so-far must be a checkpoint that still exists and is not newer than where we restart.
    if isinstance(best, dict) and int(best.get("step", -1)) <= plan.start and \
            is_complete(run.checkpoints_dir / str(best.get("name"))):
        session.best = best
    run.truncate_metrics_after(plan.start)
    if plan.overrides:
        cfg = run.read_config()
        cfg["config"] = to_dict(plan.config)
        write_json_atomic(run.path / "config.json", cfg)
    run.write_state(total_steps=plan.total_steps, step=plan.start, error=None, device=str(plan.device),
                    best_checkpoint=session.best)
    return session


def open_session(path, *, steps: int | None = None, epochs: float | None = None,
                 device: str | None = None, data_dir: str | None = None,
                 overrides: dict[str, Any] | None = None, dataset=None) -> Session:
    """Rebuild a run from its folder and latest checkpoint; `steps`/`epochs` are added on top."""
    return open_planned(plan_resume(path, steps=steps, epochs=epochs, device=device, data_dir=data_dir,
                                    overrides=overrides, dataset=dataset))


def checkpoint_score(trainer: Any, family: str, record: dict[str, Any]) -> tuple[str, float] | None:
    """(name, value) ranking a checkpoint by one logged record, lower is better; None = no ranking.

    VAE family: the negative ELBO, recon + kl. It equals `loss` for the plain VAE and, unlike `loss`,
    stays comparable when β changes (β-VAE, ControlVAE). GANs: None; their losses say little about
    sample quality (a ranking by FID would cost an evaluation per checkpoint), so only the newest are
    kept. A trainer may define its own ``checkpoint_score(record)`` returning the same pair.
    """
    own = getattr(trainer, "checkpoint_score", None)
    if callable(own):
        return own(record)
    if family == "vae":
        if isinstance(record.get("recon"), (int, float)) and isinstance(record.get("kl"), (int, float)):
            return "recon+kl", float(record["recon"]) + float(record["kl"])
        if isinstance(record.get("loss"), (int, float)):
            return "loss", float(record["loss"])
    return None


def checkpoint(session: Session) -> None:
    """Save the current step (unless it is already saved) and prune: keep the newest and the best."""
    t, run = session.trainer, session.run
    name = f"step-{t.step}"
    # Re-saving a step that is on disk (stop or pause right after a periodic save, or right after a
    # resume) would only refresh `elapsed`, and replacing a folder is the one non-atomic moment.
    if not (session.last_checkpoint_step == t.step and is_complete(run.checkpoints_dir / name)):
        state = {"trainer": t.state_dict(), "batcher": session.batcher.state_dict(),
                 "elapsed": session.elapsed, "config": to_dict(session.config)}
        save_checkpoint(run.checkpoints_dir, t.step, t.weights(), state)
        session.last_checkpoint_step = t.step
        if session.score_count:
            by, total = session.score_by, session.score_sum
            value = total / session.score_count
            if session.best is None or value <= float(session.best["value"]):
                session.best = {"name": name, "step": t.step, "by": by, "value": value}
        session.score_sum, session.score_count = 0.0, 0
    protect = {int(session.best["step"])} if session.best else set()
    prune_checkpoints(run.checkpoints_dir, session.config.keep_checkpoints, protect=protect)
    run.write_state(step=t.step, epoch=session.batcher.epoch_float, last_checkpoint=name,
                    elapsed=session.elapsed, best_checkpoint=session.best)


def save_samples(session: Session) -> None:
    images, nrow = session.trainer.sample_grid()
    save_png(session.run.samples_dir / f"step-{session.trainer.step}.png", make_grid(images, nrow))


def _ended_epoch(batcher: Batcher, epoch_before: int, drawn: int) -> bool:
    """Did this step finish an epoch? (one sample grid per epoch: early / middle / final grids)

    An epoch ends when its last full batch is drawn (position reaches the end). A step that draws
    several batches (critic iterations) can also cross the boundary midway: then the epoch changed
    and fewer than `drawn` images were drawn in the new one. A step whose very first draw starts
    the new epoch crossed nothing new: the previous step already ended that epoch.
    """
    if batcher.position >= batcher.batches_per_epoch * batcher.batch_size:
        return True
    return batcher.epoch != epoch_before and batcher.position < drawn


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
        # Plain Python floats after one device->host copy: a table of small tensors cost more per
        # log than the copy itself (0.17 ms a step on a CPU, a sizeable part of the loop's own work).
        cells = [(i, k, v) for i, row in enumerate(self.scalars) for k, v in row.items()
                 if isinstance(v, torch.Tensor)]
        rows: list[dict[str, float]] = [{k: float(v) for k, v in row.items() if not isinstance(v, torch.Tensor)}
                                        for row in self.scalars]
        if cells:  # one device->host copy for the whole window
            values = torch.stack([v.detach().float().reshape(()) for _, _, v in cells]).cpu().tolist()
            for (i, k, _), value in zip(cells, values):
                rows[i][k] = value
        keys = list(dict.fromkeys(k for row in self.scalars for k in row))
        for step, row, original in zip(self.steps, rows, self.scalars):
            for k in keys:
                if k in original and not math.isfinite(row[k]):
                    raise Diverged(step, k, row[k])
        record: dict[str, Any] = {}
        for k in keys:
            present = [row[k] for row in rows if k in row]
            record[k] = sum(present) / len(present)
        for k, v in self.vectors.items():
            vals = v.detach().float().cpu()
            if not bool(torch.isfinite(vals).all()):
                raise Diverged(self.steps[-1], k, float("nan"))
            record[k] = vals.tolist()
        self.steps, self.scalars, self.vectors = [], [], {}
        return record


def _record_failure(session: Session, status: str, error: str, **extra: Any) -> str:
    """Note a failed/diverged run in memory and, when the disk still allows it, in state.json."""
    session.error = error
    try:
        session.run.write_state(status=status, error=error, **extra)
    except OSError:
        pass  # the disk that just failed may refuse this too; the job manager still holds the message
    return status


def _os_error_message(exc: OSError) -> str:
    what = exc.strerror or str(exc)
    where = f" ({exc.filename})" if exc.filename else ""
    return (f"Could not write the run folder: {what}{where}. Free disk space or fix permissions, "
            f"then resume the run from its last checkpoint.")


def train(session: Session, control: Control | None = None,
          on_progress: Callable[[Progress], None] | None = None,
          on_status: Callable[[str], None] | None = None) -> str:
    """Train until total_steps, a stop request or an error; returns the final status.

    Statuses: finished, stopped (stop request or Ctrl-C, checkpointed), diverged (non-finite metric:
    nothing after the last good checkpoint is saved), failed (disk full, no permission, a GMError or
    an exception, which is re-raised; the message is in state.json and `session.error`).
    ``on_status`` hears "running" and "paused" as they happen (from the training thread).

    Checkpoints: every `checkpoint_every` steps, whenever `checkpoint_seconds` have passed since the
    last one (so a crash loses at most that much training time), on pause, on stop and at the end.
    """
    control = control or Control()
    run, t, cfg = session.run, session.trainer, session.config
    tune_host_allocator()  # once per process: no page faults for the same activations every step
    window = _Window()
    t.train(True)
    run.write_state(status="running", error=None, total_steps=session.total_steps, pid=os.getpid(),
                    host=host_id())
    if on_status is not None:
        on_status("running")
    start_wall = time.perf_counter() - session.elapsed
    last_ckpt_wall = time.perf_counter()
    rate_t, rate_step = time.perf_counter(), t.step
    images_seen, rate_images = 0, 0
    ips = 0.0
    family = getattr(session.spec, "family", "")

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
        scored = checkpoint_score(t, family, record)
        if scored is not None:
            session.score_by = scored[0]
            session.score_sum += scored[1]
            session.score_count += 1
        if on_progress is not None:
            remaining = session.total_steps - t.step
            eta = remaining * t.images_per_step() / ips if ips > 0 else None
            on_progress(Progress(t.step, session.total_steps, session.batcher.epoch_float, ips, eta,
                                 session.elapsed, record))

    def save_all() -> None:
        nonlocal last_ckpt_wall
        flush()
        checkpoint(session)
        last_ckpt_wall = time.perf_counter()

    status = "finished"
    try:
        try:
            while t.step < session.total_steps:
                if control.pause_requested and not control.stop_requested:
                    save_all()
                    run.write_state(status="paused")
                    if on_status is not None:
                        on_status("paused")
                    while control.pause_requested and not control.stop_requested:
                        control.wait_while_paused()
                    start_wall = time.perf_counter() - session.elapsed
                    rate_t, rate_step, rate_images = time.perf_counter(), t.step, images_seen
                    last_ckpt_wall = time.perf_counter()  # paused time is not training time at risk
                    if control.stop_requested:
                        status = "stopped"
                        break
                    run.write_state(status="running")
                    if on_status is not None:
                        on_status("running")
                if control.stop_requested:
                    status = "stopped"
                    break
                epoch_before = session.batcher.epoch
                images, labels = _draw(session.batcher, t.batches_per_step())
                window.add(t.step + 1, t.train_step(images, labels))
                images_seen += images.shape[0]
                if t.step % cfg.log_every == 0:
                    flush()
                if t.step % cfg.sample_every == 0 or _ended_epoch(session.batcher, epoch_before, images.shape[0]):
                    save_samples(session)  # at least once per epoch: early / middle / final grids
                due = t.step % cfg.checkpoint_every == 0
                if due or time.perf_counter() - last_ckpt_wall >= cfg.checkpoint_seconds:
                    save_all()
        except KeyboardInterrupt:
            status = "stopped"
        save_all()
        if status == "finished" and not any(s == t.step for s, _ in run.sample_grids()):
            save_samples(session)
    except Diverged as exc:
        last = session.last_checkpoint_step
        where = (f"the last good checkpoint is step {last}; resume it" if last is not None else
                 "there is no checkpoint before it; resume to start over")
        return _record_failure(session, "diverged", f"Training diverged: {exc}; {where} with other "
                               f"settings (e.g. a lower lr).", diverged_step=exc.step,
                               diverged_metric=exc.metric)
    except GMError as exc:
        return _record_failure(session, "failed", str(exc))
    except OSError as exc:  # disk full, permission denied: the environment, not a bug
        return _record_failure(session, "failed", _os_error_message(exc))
    except torch.OutOfMemoryError:
        return _record_failure(session, "failed", f"Out of memory on {session.device}; resume with a "
                               f"smaller batch_size or width, or on another device.")
    except Exception as exc:  # a bug: recorded, never swallowed silently
        _record_failure(session, "failed", f"{type(exc).__name__}: {exc}")
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

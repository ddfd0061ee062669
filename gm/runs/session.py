"""Sessions: a run folder with its trainer and batcher built, fresh (`new_session`; `plan_new`
creates the folder) or resumed from its newest good checkpoint (`plan_resume` checks everything
first, `open_planned` builds and loads).

One trainer per run: planning takes the run's lock (gm.runs.lock) before it reads anything, the
plan hands it to the session, and ``gm.runs.loop.train`` gives it back when it returns (or
``Session.close()`` / a failed open does). Whoever takes the lock first tidies what a killed writer
left in the checkpoints folder. The training loop (gm.runs.loop) drives a session; nothing here trains.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import torch

from gm.config import from_dict, to_dict
from gm.data import Batcher, load_dataset
from gm.data.domains import DomainBatcher, make_batcher
from gm.device import resolve_device
from gm.errors import GMError
from gm.models.loading import data_info_for
from gm.models.loading import run_config as model_run_config
from gm.registry import get_spec
from gm.runs.atomic import write_json_atomic
from gm.runs.checkpoint import (
    checkpoint_processes,
    clean_partial_checkpoints,
    is_complete,
    latest_good_checkpoint,
    load_checkpoint,
    set_aside,
)
from gm.runs.folder import RunFolder
from gm.runs.lock import RunLock

if TYPE_CHECKING:
    from gm.runs.distributed import Group

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass
class Session:
    """Everything a run needs in memory: folder, config, trainer, batcher."""

    run: RunFolder
    spec: Any
    config: Any
    trainer: Any
    batcher: Batcher | DomainBatcher
    device: torch.device
    total_steps: int
    elapsed: float = 0.0
    last_checkpoint_step: int | None = None
    best: dict[str, Any] | None = None      # {"name", "step", "by", "value"} of the best checkpoint
    error: str | None = None                # why the run failed or diverged (also in state.json)
    lock: RunLock | None = None             # the run's training lock, held until train() returns
    notes: list[str] = field(default_factory=list)  # warnings of the open (a damaged checkpoint skipped)
    group: Group | None = None              # the torchrun process group (gm.runs.torchrun), else None
    checkpoint_ranks: dict[str, Any] | None = None   # the loaded checkpoint's processes (world size, RNGs)

    @property
    def is_main(self) -> bool:
        """Whether this process writes the run folder (always, except torchrun's ranks other than 0)."""
        return self.group is None or self.group.is_main

    def on_main(self, fn: Callable[[], T]) -> T | None:
        """fn() where the run folder is written: here on one process; under torchrun on rank 0, with
        a failure there raised on every rank (gm.runs.distributed.Group.on_main)."""
        return fn() if self.group is None else self.group.on_main(fn)

    def close(self) -> None:
        """Give the run's lock back without training (train() does it itself when it returns)."""
        if self.lock is not None:
            self.lock.release()


def take_lock(run: RunFolder, lock: RunLock | None = None) -> RunLock:
    """Hold the run's training lock (taken now unless `lock` holds it already; a GMError naming the
    holder if another trainer has it), then tidy what a killed writer left in its checkpoints."""
    lock = lock if lock is not None else RunLock(run.path, run.name)
    fresh = not lock.held
    lock.acquire()
    if fresh:
        try:
            for note in clean_partial_checkpoints(run.checkpoints_dir):
                log.info("run '%s': %s", run.name, note)
        except BaseException:
            lock.release()
            raise
    return lock


def run_config(model: str, config: Any, device: str, data_dir: str | None, dataset) -> dict[str, Any]:
    spec = get_spec(model)
    return model_run_config(model, config, data_info_for(dataset, spec.dataset, config), device=device,
                            data_dir=data_dir)


def steps_for_epochs(epochs: float, dataset_size: int, batch_size: int, config: Any = None) -> int:
    """Steps that make `epochs` passes over the data, following the config's critic schedule
    (``config.batches_at(step)`` real batches per step: n_critic, WGAN's boost)."""
    target = epochs * (dataset_size // batch_size)
    if config is None:
        return max(1, math.ceil(target))
    steps, drawn = 0, 0
    while drawn < target:
        drawn += max(1, int(config.batches_at(steps)))
        steps += 1
    return max(1, steps)


def create_run(model: str, config: Any, *, runs_dir, name: str | None = None, device: str = "auto",
               data_dir: str | None = None, steps: int | None = None, epochs: float | None = None,
               dataset=None, processes: int = 1) -> tuple[RunFolder, int]:
    """Create a run folder (config.json, state.json with total_steps) without building a trainer or
    taking its lock: to train it, use :func:`plan_new`, which locks the new folder at once.
    `processes`: how many torchrun processes will train it (epochs count their global batch).

    Returns (run, total_steps).
    """
    spec = get_spec(model)
    dev = resolve_device(device)
    dataset = dataset if dataset is not None else load_dataset(spec.dataset, data_dir)
    total = _total_steps(steps, epochs, len(dataset), config, processes)
    if config.batch_size > len(dataset):
        raise GMError(f"batch_size {config.batch_size} is larger than the dataset ({len(dataset)} images).")
    run = RunFolder.create(runs_dir, name, run_config(model, config, device, data_dir, dataset))
    run.write_state(total_steps=total, device=str(dev))
    return run, total


def plan_new(model: str, config: Any, *, runs_dir, name: str | None = None, device: str = "auto",
             data_dir: str | None = None, steps: int | None = None, epochs: float | None = None,
             dataset=None, processes: int = 1) -> ResumePlan:
    """Create a run folder (create_run), take its lock and plan its first session, from step 0."""
    spec = get_spec(model)
    dev = resolve_device(device)
    dataset = dataset if dataset is not None else load_dataset(spec.dataset, data_dir)
    run, total = create_run(model, config, runs_dir=runs_dir, name=name, device=device, data_dir=data_dir,
                            steps=steps, epochs=epochs, dataset=dataset, processes=processes)
    return ResumePlan(run=run, spec=spec, config=config, device=dev, dataset=dataset, checkpoint=None,
                      start=0, total_steps=total, overrides={}, lock=take_lock(run))


def new_session(model: str, config: Any, *, runs_dir, name: str | None = None, device: str = "auto",
                data_dir: str | None = None, steps: int | None = None, epochs: float | None = None,
                dataset=None) -> Session:
    """Create a run folder and a fresh trainer for it (holding its lock until train() returns)."""
    return _open_or_release(plan_new(model, config, runs_dir=runs_dir, name=name, device=device,
                                     data_dir=data_dir, steps=steps, epochs=epochs, dataset=dataset))


def _total_steps(steps: int | None, epochs: float | None, n: int, config: Any, processes: int = 1) -> int:
    if steps is not None and epochs is not None:
        raise GMError("Give either --steps or --epochs, not both.")
    if steps is not None:
        if steps < 1:
            raise GMError(f"--steps must be at least 1; got {steps}.")
        return steps
    if epochs is not None:
        if not math.isfinite(epochs) or epochs <= 0:
            raise GMError(f"--epochs must be a positive, finite number; got {epochs}.")
        return steps_for_epochs(epochs, n, global_batch_size(config, processes), config)
    return steps_for_epochs(1, n, global_batch_size(config, processes), config)


def global_batch_size(config: Any, processes: int = 1) -> int:
    """Images per batch over all processes: the config's batch_size, or N times it with
    per_rank_batch (each of N torchrun processes takes batch_size)."""
    per_rank = processes > 1 and getattr(config, "per_rank_batch", False)
    return int(config.batch_size) * (processes if per_rank else 1)


def _build(run: RunFolder, spec, config, dataset, dev: torch.device, total: int,
           group: Group | None = None) -> Session:
    model = spec.build_model(config, data_info_for(dataset, spec.dataset, config)).to(dev)
    trainer = spec.build_trainer(model)
    trainer.apply_performance_options()
    # One domain: the Batcher of old (its order and resume state unchanged); a split: unpaired
    # batches from every domain. Under torchrun every rank walks the same global batches and keeps
    # its shard of each.
    world, rank = (group.world_size, group.rank) if group is not None else (1, 0)
    batcher = make_batcher(dataset, global_batch_size(config, world), config.seed, dev, with_labels=trainer.wants_labels,
                           with_factor_classes=trainer.wants_factor_classes, domains=config.domain_split(),
                           shard=(rank, world))
    return Session(run=run, spec=spec, config=config, trainer=trainer, batcher=batcher, device=dev,
                   total_steps=total, group=group)


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
    lock: RunLock | None = None           # the run's training lock, held from planning on
    damaged: list[Path] = field(default_factory=list)   # newer checkpoints that failed verification
    notes: list[str] = field(default_factory=list)      # warning lines for the user (damage skipped)

    def release(self) -> None:
        """Give the run's lock back (a plan that will not be opened)."""
        if self.lock is not None:
            self.lock.release()


def refuse_weights_only(run: RunFolder) -> dict[str, Any]:
    """A run's config.json, unless the run holds weights only (a shipped pretrained run, a Hub pull:
    no optimizer state, maybe a read-only folder): those are refused before any lock is taken."""
    cfg = run.read_config()
    if cfg.get("weights_only"):
        raise GMError(f"Run '{run.name}' holds weights only (pretrained or from the Hub) and cannot be "
                      f"resumed; train a new run of {cfg.get('model', 'this model')} instead.")
    return cfg


def plan_resume(path, *, steps: int | None = None, epochs: float | None = None,
                device: str | None = None, data_dir: str | None = None,
                overrides: dict[str, Any] | None = None, dataset=None,
                lock: RunLock | None = None, processes: int = 1) -> ResumePlan:
    """Check that a run can be resumed (config, overrides, device, length); raises GMError if not.

    Takes the run's lock first (or uses `lock`, held by the caller), so nothing is read while another
    trainer owns the run; the plan holds it (``plan.release()`` when it will not be opened). On a
    GMError the lock is given back unless the caller passed it. Resumes from the newest checkpoint
    that verifies; damaged newer ones are skipped with a warning line in ``plan.notes``.
    """
    run = RunFolder.open(path)
    if lock is None:
        refuse_weights_only(run)
    held = take_lock(run, lock)
    try:
        return _plan_resume(run, held, steps=steps, epochs=epochs, device=device, data_dir=data_dir,
                            overrides=overrides, dataset=dataset, processes=processes)
    except BaseException:
        if lock is None:
            held.release()
        raise


def _plan_resume(run: RunFolder, lock: RunLock, *, steps, epochs, device, data_dir, overrides,
                 dataset, processes: int) -> ResumePlan:
    cfg = refuse_weights_only(run)
    spec = get_spec(cfg.get("model", "?"))
    values = dict(cfg.get("config", {}))
    values.update(overrides or {})
    config = from_dict(spec.config_cls, values, model=spec.name, saved=True)
    dev = resolve_device(device or cfg.get("device") or "auto")
    if dataset is None:
        dataset = load_dataset(spec.dataset, data_dir or cfg.get("data_dir"))
    state = run.read_state()
    notes: list[str] = []
    damaged: list[Path] = []
    found = latest_good_checkpoint(run.checkpoints_dir, notes, damaged)
    start = found[0] if found else 0
    if found is not None:
        written_on, per_rank = checkpoint_processes(found[1])
        same_batches = processes == 1 or per_rank == bool(getattr(config, "per_rank_batch", False))
        if written_on != processes or not same_batches:
            notes.append(f"Step {start} was trained on {written_on} process(es); continuing on {processes} "
                         f"works but is not bit-exact (the data shards and the sums of gradients differ).")
    prior_total = int(state.get("total_steps") or 0)
    if steps is not None or epochs is not None:
        total = start + _total_steps(steps, epochs, len(dataset), config, processes)
    elif prior_total > start:
        total = prior_total
    else:
        raise GMError(f"Run '{run.name}' already reached step {start} of {prior_total}; pass --steps or "
                      f"--epochs to train further.")
    if config.batch_size > len(dataset):
        raise GMError(f"batch_size {config.batch_size} is larger than the dataset ({len(dataset)} images).")
    base = from_dict(spec.config_cls, cfg.get("config", {}), model=spec.name, saved=True) if overrides else None
    return ResumePlan(run=run, spec=spec, config=config, device=dev, dataset=dataset, checkpoint=found,
                      start=start, total_steps=total, overrides=dict(overrides or {}), base_config=base,
                      lock=lock, damaged=damaged, notes=notes)


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
            return from_dict(plan.spec.config_cls, stored, model=plan.spec.name, saved=True)
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


def open_planned(plan: ResumePlan, group: Group | None = None) -> Session:
    """Build the trainer of a plan, load its checkpoint and drop metrics logged after it (and set
    aside the damaged checkpoints newer than it). The session takes over the plan's lock; on an
    error the lock stays with the plan (its owner releases it).

    Under torchrun (`group`), every rank builds and loads; only rank 0, which holds the lock,
    writes (the other ranks' plans hold no lock)."""
    run = plan.run
    if plan.lock is not None and not plan.lock.held:
        raise GMError(f"The plan to train run '{run.name}' no longer holds its lock; plan it again.")
    session = _build(run, plan.spec, plan.config, plan.dataset, plan.device, plan.total_steps, group)
    if not session.is_main:
        if plan.checkpoint is not None:
            _load_into(session, plan)
        session.notes = list(plan.notes) + session.notes
        return session
    if plan.checkpoint is not None:
        _load_into(session, plan)
    for path in plan.damaged:  # the run continues from an earlier step: these are not its future
        if path.exists():
            set_aside(path)
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
                    best_checkpoint=session.best,
                    last_checkpoint=f"step-{plan.start}" if plan.checkpoint is not None else None)
    session.lock, session.notes = plan.lock, list(plan.notes) + session.notes
    return session


def _load_into(session: Session, plan: ResumePlan) -> None:
    """The plan's checkpoint into the session's trainer and batcher (optimizer settings that the
    resume's overrides changed are kept as overridden)."""
    assert plan.checkpoint is not None
    weights, tstate, step = load_checkpoint(plan.checkpoint[1])
    fresh, base = _optimizer_hparams(session.trainer), None
    trained_with = _checkpoint_config(plan, tstate)
    if trained_with is not None and to_dict(trained_with) != to_dict(plan.config):
        old = plan.spec.build_model(trained_with, data_info_for(plan.dataset, plan.spec.dataset, trained_with))
        base = _optimizer_hparams(plan.spec.build_trainer(old))
    session.trainer.load_weights(weights)
    session.trainer.load_state_dict(tstate["trainer"])
    if base is not None:
        _restore_overridden_hparams(session.trainer, base, fresh)
    session.batcher.load_state_dict(tstate["batcher"])
    session.elapsed = float(tstate.get("elapsed", 0.0))
    session.last_checkpoint_step = step
    session.checkpoint_ranks = tstate.get("ranks")


def _open_or_release(plan: ResumePlan) -> Session:
    try:
        return open_planned(plan)
    except BaseException:
        plan.release()
        raise


def open_session(path, *, steps: int | None = None, epochs: float | None = None,
                 device: str | None = None, data_dir: str | None = None,
                 overrides: dict[str, Any] | None = None, dataset=None) -> Session:
    """Rebuild a run from its folder and newest good checkpoint; `steps`/`epochs` are added on top.
    The session holds the run's lock until train() returns (or ``session.close()``)."""
    return _open_or_release(plan_resume(path, steps=steps, epochs=epochs, device=device, data_dir=data_dir,
                                        overrides=overrides, dataset=dataset))

"""``gm train`` / ``gm resume`` as one of torchrun's processes.

Every rank runs this; rank 0 plans the run (creates or checks the folder, takes its lock) and
tells the others where it is; every rank then builds the model and loads the same checkpoint, and
the ranks train together (gm.runs.distributed: sharded batches, shared noise, averaged gradients)
with only rank 0 writing. Ctrl-C or SIGTERM on any rank (torchrun passes them on) and the app's
requests in control.json stop or pause all ranks at the same step; the stop checkpoints first.

A checkpoint records how many processes wrote it and each one's noise RNG: a resume on as many
processes continues bit-exactly; on another number (or on one process) it continues, and says it
is not bit-exact.
"""

from __future__ import annotations

import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

from gm.config import from_dict, to_dict
from gm.data import load_dataset
from gm.errors import GMError
from gm.registry import get_spec
from gm.runs.callbacks import (
    Callback,
    Checkpointer,
    Control,
    MetricsLogger,
    Progress,
    ProgressReporter,
    SampleGrids,
    SharedPauseStop,
)
from gm.runs.distributed import Group, RankFailed, exit_rank, join, leave
from gm.runs.folder import RunFolder
from gm.runs.loop import train
from gm.runs.session import ResumePlan, Session, open_planned, plan_new, plan_resume
from gm.runs.shared_preview import RunFolderPreview

PROCESS_STARTED = time.time()   # requests in control.json older than this were for another session


def _essentials(plan: ResumePlan) -> dict[str, Any]:
    """What the other ranks need to rebuild rank 0's plan (no lock, nothing written)."""
    return {"run": str(plan.run.path), "model": plan.spec.name, "config": to_dict(plan.config),
            "checkpoint": (plan.checkpoint[0], str(plan.checkpoint[1])) if plan.checkpoint else None,
            "start": plan.start, "total_steps": plan.total_steps, "overrides": plan.overrides,
            "base_config": to_dict(plan.base_config) if plan.base_config is not None else None,
            "notes": list(plan.notes)}


def _follower_plan(info: dict[str, Any], group: Group, data_dir: str | None) -> ResumePlan:
    run = RunFolder.open(info["run"])
    spec = get_spec(info["model"])
    config = from_dict(spec.config_cls, info["config"], model=spec.name, saved=True)
    base = info["base_config"]
    dataset = load_dataset(spec.dataset, data_dir or run.read_config().get("data_dir"))
    found = info["checkpoint"]
    return ResumePlan(run=run, spec=spec, config=config, device=group.device, dataset=dataset,
                      checkpoint=(int(found[0]), Path(found[1])) if found else None, start=int(info["start"]),
                      total_steps=int(info["total_steps"]), overrides=dict(info["overrides"]),
                      base_config=from_dict(spec.config_cls, base, model=spec.name, saved=True) if base else None,
                      notes=list(info["notes"]))


def _open(group: Group, plan_on_main: Callable[[], ResumePlan], data_dir: str | None) -> Session:
    """Rank 0 plans (a failure there stops every rank), all ranks open; a failure on any rank
    stops all of them before the first step."""
    plan = group.on_main(plan_on_main)
    info = group.broadcast_object(_essentials(plan) if plan is not None else None)
    if plan is None:
        plan = _follower_plan(info, group, data_dir)
    session: Session | None = None
    error: BaseException | None = None
    try:
        session = open_planned(plan, group)
    except Exception as exc:  # noqa: BLE001 (every rank must hear of it before raising)
        error = exc
    if group.any([error is not None])[0]:
        if group.is_main:
            plan.release()
        if error is not None:
            raise error
        raise RankFailed("Another process could not open the run")
    assert session is not None
    _restore_rank_state(session, group)
    session.trainer.distribute(group)
    return session


def _restore_rank_state(session: Session, group: Group) -> None:
    """Each rank's own noise RNG from a checkpoint written by as many processes (a checkpoint of
    another number of processes gave a note when it was loaded: gm.runs.session)."""
    ranks = session.checkpoint_ranks or {}
    rngs = ranks.get("noise_rng")
    if rngs and int(ranks.get("world_size", 1)) == group.world_size and len(rngs) == group.world_size:
        session.trainer.noise.set_state(rngs[group.rank])


def _callbacks(control: Control, on_progress: Callable[[Progress], None] | None,
               group: Group) -> list[Callback]:
    callbacks: list[Callback] = [SharedPauseStop(control, since=PROCESS_STARTED), MetricsLogger(), SampleGrids(),
                                 Checkpointer(), RunFolderPreview()]
    if on_progress is not None and group.is_main:
        callbacks.append(ProgressReporter(on_progress))
    return callbacks


def _stop_on_signals(control: Control) -> dict[int, Any]:
    """Ctrl-C and SIGTERM ask for a stop (checkpoint, then `stopped`) instead of raising mid-step:
    the ranks must stop at the same step, which SharedPauseStop agrees on."""
    def handler(signum: int, frame: Any) -> None:
        control.request_stop()
    return {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}


def run(kind: str, *, device: str, data_dir: str | None, on_progress: Callable[[Progress], None] | None,
        plan_on_main: Callable[[str, int], ResumePlan]) -> NoReturn:
    """Train one run on this rank, then end the process with its exit code (0 done or stopped, 1
    failed or diverged, 2 a user's error, said once by rank 0). ``plan_on_main(device, processes)``
    is called on rank 0 only (plan_new or plan_resume)."""
    group = join(device)
    code = 1
    try:
        code = _run(kind, group, data_dir=data_dir, on_progress=on_progress, plan_on_main=plan_on_main)
    except GMError as exc:
        if group.is_main:   # every rank that meets it stops; rank 0 says it, as gm.cli does
            print(f"error: {exc}", file=sys.stderr)
        code = 2
    finally:
        leave(group)
    exit_rank(code)


def _run(kind: str, group: Group, *, data_dir: str | None, on_progress: Callable[[Progress], None] | None,
         plan_on_main: Callable[[str, int], ResumePlan]) -> int:
    # No barrier at the end: every rank has made the same collectives by then, and a rank that failed
    # alone (out of memory) must not wait for peers that are waiting for it; its exit fails theirs.
    control = Control()
    previous = _stop_on_signals(control)
    try:
        try:
            session = _open(group, lambda: plan_on_main(str(group.device), group.world_size), data_dir)
        except RankFailed:
            return 1   # rank 0 says why
        if group.is_main:
            for note in session.notes:
                print(f"note: {note}", file=sys.stderr)
            verb = "run" if kind == "train" else f"resuming from step {session.trainer.step}:"
            print(f"{verb} {session.run.path.resolve()}  ({session.total_steps} steps on {group.world_size} "
                  f"processes, {group.backend}, {group.device.type})", file=sys.stderr)
        status = train(session, callbacks=_callbacks(control, on_progress, group))
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if group.is_main:
        if on_progress is not None and sys.stderr.isatty():
            sys.stderr.write("\n")
        print(f"{status}: {session.run.path.resolve()} at step {session.trainer.step}")
        if status in ("failed", "diverged"):
            print(session.error or "", file=sys.stderr)
    return 1 if status in ("failed", "diverged") else 0


def train_new(model: str, config: Any, *, runs_dir, name: str | None, device: str, data_dir: str | None,
              steps: int | None, epochs: float | None, on_progress: Callable[[Progress], None] | None) -> NoReturn:
    """``gm train`` under torchrun."""
    return run("train", device=device, data_dir=data_dir, on_progress=on_progress,
               plan_on_main=lambda dev, n: plan_new(model, config, runs_dir=runs_dir, name=name, device=dev,
                                                    data_dir=data_dir, steps=steps, epochs=epochs, processes=n))


def resume(run_dir, *, steps: int | None, epochs: float | None, device: str | None, data_dir: str | None,
           overrides: dict[str, Any], on_progress: Callable[[Progress], None] | None) -> NoReturn:
    """``gm resume`` under torchrun."""
    return run("resume", device=device or "auto", data_dir=data_dir, on_progress=on_progress,
               plan_on_main=lambda dev, n: plan_resume(run_dir, steps=steps, epochs=epochs, device=dev,
                                                       data_dir=data_dir, overrides=overrides, processes=n))

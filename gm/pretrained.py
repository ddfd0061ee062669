"""Shipped pretrained weights: build them with the project's own loop, find them, export them small.

    python -m gm.pretrained build [--device cuda|cpu] [--out checkpoints/pretrained] [--models vae,gan]

``checkpoints/pretrained/<model>/`` is a plain *run folder* (see gm.runs.folder), so
``gm.load_model``, the CLI (`sample`, `eval`) and every page of the app use it unchanged:

    config.json                     the training run's config.json (device "auto", no data_dir)
    state.json                      status "finished", step N
    metrics.jsonl                   the training log (Monitor page curves)
    eval.jsonl                      classifier FID, coverage, ... of the shipped weights (n = 1000)
    checkpoints/step-N/             model.safetensors (float16: half the size, no visible change; the
                                    trainer casts back to float32 on load), an empty training state
    samples/step-N.png, samples.png the sample grid
    metrics.json                    summary: steps, training seconds, device, fid_classifier, coverage

The optimizer state is dropped (it would triple the size), so a pretrained run samples, explores and
evaluates but does not resume; train a new run to go further.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from gm.errors import GMError
from gm.runs.atomic import write_json_atomic
from gm.runs.checkpoint import load_checkpoint, save_checkpoint
from gm.runs.folder import RunFolder


@dataclass(frozen=True)
class Entry:
    """One shipped pretrained run: its folder name, the model, its config overrides and length."""

    name: str
    model: str
    steps: int
    overrides: tuple[tuple[str, Any], ...] = ()


# Generator/optimizer steps per run: enough for recognisable digits and sprites in about a minute of
# an H100 each, or a few minutes of one CPU core (a time cap per run stops earlier on slower
# machines). ControlVAE ships at both of the assignment's set points, so the walkthrough can put
# their KL curves on one chart.
ENTRIES: dict[str, Entry] = {e.name: e for e in (
    Entry("vae", "vae", 4000),
    Entry("betavae", "betavae", 4000),
    Entry("controlvae", "controlvae", 4000, (("kl_target", 8.0),)),
    Entry("controlvae-kl14", "controlvae", 4000, (("kl_target", 14.0),)),
    Entry("gan", "gan", 4000),
    Entry("dcgan", "dcgan", 3000),
    Entry("wgan", "wgan", 3000),
    Entry("wgan-gp", "wgan-gp", 3000),
    Entry("ssgan", "ssgan", 3000),
    Entry("acgan", "acgan", 3000),
)}
EVAL_N = 1000
GRIDS_KEPT = 3   # early, middle and final sample grids (the assignment's three stages)


def default_dir() -> Path:
    """`GM_PRETRAINED_DIR` when set, else checkpoints/pretrained next to the gm package (tracked in git,
    unlike checkpoints/runs)."""
    import os
    env = os.environ.get("GM_PRETRAINED_DIR")
    if env:
        return Path(env).expanduser()
    return Path(__file__).resolve().parents[1] / "checkpoints" / "pretrained"


def pretrained_runs(folder: str | Path | None = None) -> list[RunFolder]:
    """The shipped pretrained run folders, in the order of ENTRIES (registry order)."""
    folder = Path(folder) if folder else default_dir()
    return [RunFolder(folder / name) for name in ENTRIES if (folder / name / "config.json").is_file()]


def find_pretrained(name: str, folder: str | Path | None = None) -> RunFolder | None:
    """The shipped run `name` (an ENTRIES key such as "gan" or "controlvae-kl14"), if present."""
    folder = Path(folder) if folder else default_dir()
    return RunFolder(folder / name) if (folder / name / "config.json").is_file() else None


def spread(items: list, k: int) -> list:
    """k items evenly spread from first to last (all of them when there are k or fewer)."""
    if len(items) <= k:
        return list(items)
    if k <= 1:
        return [items[-1]]
    picks = sorted({round(i * (len(items) - 1) / (k - 1)) for i in range(k)})
    return [items[i] for i in picks]


def half_weights(weights: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """float32 -> float16 (integers such as batch-norm counters stay as they are)."""
    return {k: v.half() if v.dtype == torch.float32 else v for k, v in weights.items()}


def export_run(src: str | Path, dest: str | Path, *, seconds: float, device: str) -> RunFolder:
    """Copy a finished training run into a slim pretrained run folder (fp16 weights, no optimizer)."""
    from gm.runs.checkpoint import latest_good_checkpoint

    src_run = RunFolder.open(src)
    found = latest_good_checkpoint(src_run.checkpoints_dir)
    if found is None:
        raise GMError(f"Run '{src_run.name}' has no checkpoint to export.")
    step, ckpt = found
    weights, _, _ = load_checkpoint(ckpt)
    dest = Path(dest)
    if dest.exists():
        shutil.rmtree(dest)
    (dest / "samples").mkdir(parents=True)
    cfg = src_run.read_config()
    cfg.update({"device": "auto", "data_dir": None, "pretrained": True, "weights_only": True})
    write_json_atomic(dest / "config.json", cfg)
    save_checkpoint(dest / "checkpoints", step, half_weights(weights), {"elapsed": seconds})
    grids = src_run.sample_grids()
    for grid_step, path in spread(grids, GRIDS_KEPT):  # early / middle / final
        shutil.copyfile(path, dest / "samples" / f"step-{grid_step}.png")
    if grids:
        shutil.copyfile(grids[-1][1], dest / "samples.png")
    rows = src_run.read_metrics()
    every = max(1, len(rows) // 500)  # the curves' shape, in a few kB
    kept = [r for i, r in enumerate(rows) if i % every == 0 or i == len(rows) - 1]
    (dest / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in kept), encoding="utf-8")
    run = RunFolder(dest)
    run.write_state(status="finished", step=step, total_steps=step, epoch=0.0, error=None,
                    elapsed=round(seconds, 1), last_checkpoint=f"step-{step}", device=device)
    return run


def build_one(entry: Entry, out: Path, work: Path, *, device: str, data_dir: str | None,
              steps: int, max_seconds: float, eval_n: int = EVAL_N) -> dict[str, Any]:
    from gm.config import from_dict, to_dict
    from gm.metrics.evaluate import evaluate
    from gm.registry import get_spec
    from gm.runs.loop import Control, new_session, train

    model = entry.model
    spec = get_spec(model)
    values = {**to_dict(spec.config_cls()), **dict(entry.overrides), "checkpoint_every": steps}
    config = from_dict(spec.config_cls, values, model=model)
    session = new_session(model, config, runs_dir=work, name=entry.name, device=device,
                          data_dir=data_dir, steps=steps)
    control = Control()
    timer = threading.Timer(max_seconds, control.request_stop)  # a cap for slower machines
    timer.start()
    start = time.perf_counter()
    try:
        status = train(session, control)
    finally:
        timer.cancel()
    seconds = time.perf_counter() - start
    if status not in ("finished", "stopped"):
        raise GMError(f"Training {model} ended '{status}': {session.error}")
    run = export_run(session.run.path, out / entry.name, seconds=seconds, device=str(session.device))
    result = evaluate(run.path, n=eval_n, device=device, data_dir=data_dir, inception=False)
    summary = {"name": entry.name, "model": model, "dataset": spec.dataset, "steps": session.trainer.step,
               "train_seconds": round(seconds, 1), "device": str(session.device), "eval_n": eval_n,
               "fid_classifier": round(float(result["fid_classifier"]), 3),
               "classes_covered": result.get("classes_covered"),
               "kl_to_uniform": result.get("kl_to_uniform"),
               "precision": result.get("precision"), "recall": result.get("recall")}
    for key in ("mig", "acgan_accuracy"):
        if key in result:
            summary[key] = result[key]
    write_json_atomic(out / entry.name / "metrics.json", summary)
    return summary


def build(out: str | Path | None = None, *, device: str = "auto", data_dir: str | None = None,
          models: list[str] | None = None, max_seconds: float = 60.0, scale: float = 1.0,
          log=print) -> list[dict[str, Any]]:
    """Train every (or the given) pretrained run and export it to `out`; returns the metrics.json
    summaries. `models` are ENTRIES names ("gan", "controlvae-kl14", ...)."""
    import tempfile

    out = Path(out) if out else default_dir()
    out.mkdir(parents=True, exist_ok=True)
    names = models or list(ENTRIES)
    unknown = [n for n in names if n not in ENTRIES]
    if unknown:
        raise GMError(f"Unknown pretrained run {', '.join(unknown)}; choose from {', '.join(ENTRIES)}.")
    summaries = []
    with tempfile.TemporaryDirectory(prefix="gm-pretrained-") as tmp:
        for name in names:
            entry = ENTRIES[name]
            steps = max(1, int(entry.steps * scale))
            summary = build_one(entry, out, Path(tmp), device=device, data_dir=data_dir, steps=steps,
                                max_seconds=max_seconds)
            log(json.dumps(summary))
            sys.stdout.flush()
            summaries.append(summary)
    return summaries


def folder_size(folder: str | Path | None = None) -> int:
    folder = Path(folder) if folder else default_dir()
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m gm.pretrained", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="train every model and export checkpoints/pretrained/<model>/")
    b.add_argument("--device", default="auto")
    b.add_argument("--out", help="output folder (default checkpoints/pretrained)")
    b.add_argument("--data-dir", help="dataset folder (default $GM_DATA_DIR)")
    b.add_argument("--models", help="comma-separated subset of the pretrained runs (default: all of "
                                    f"{', '.join(ENTRIES)})")
    b.add_argument("--max-seconds", type=float, default=60.0, help="training time cap per model")
    b.add_argument("--scale", type=float, default=1.0, help="multiply every model's step count")
    sub.add_parser("list", help="list the shipped pretrained runs and their metrics")
    args = p.parse_args(argv)
    try:
        if args.command == "build":
            build(args.out, device=args.device, data_dir=args.data_dir,
                  models=args.models.split(",") if args.models else None,
                  max_seconds=args.max_seconds, scale=args.scale)
            out = Path(args.out) if args.out else default_dir()
            print(f"{out}: {folder_size(out) / 1e6:.1f} MB")
        else:
            for run in pretrained_runs():
                m = run.path / "metrics.json"
                print(run.path, m.read_text() if m.is_file() else "")
    except GMError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

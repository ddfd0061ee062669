"""Shipped pretrained weights: build them with the project's own loop, find them, export them small.

    python -m gm.pretrained build [--device cuda|cpu] [--out checkpoints/pretrained] [--models vae,gan]
    python -m gm.pretrained evaluate | table | list

``checkpoints/pretrained/<model>/`` is a plain *run folder* (see gm.runs.folder), so
``gm.load_model``, the CLI (`sample`, `eval`) and every page of the app use it unchanged:

    config.json                     the training run's config.json (device "auto", no data_dir)
    state.json                      status "finished", step N
    metrics.jsonl                   the training log (Monitor page curves)
    checkpoints/step-N/             model.safetensors (float16: half the size, no visible change; cast
                                    back to float32 on load) with only what sampling reads (no GAN
                                    discriminator; a weight average instead of G), no training state
    samples/step-N.png, samples.png the early, middle and final grids; the final one
    metrics.json                    steps, training seconds, device and every figure of
                                    `gm eval RUN --n 1000 --split test` (held-out digits)

The optimizer state and the networks only training reads are dropped, so a pretrained run samples,
explores and evaluates but does not resume; train a new run to go further (`build --continue`
starts from a shipped run's weights with fresh optimizers). `table` prints the README's table.
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
    # A deliberate failure (mode collapse, convergence failure) kept for the walkthrough's failures
    # step: listed among the pretrained runs, never shown as its model's card on Home.
    failure: bool = False


# Generator/optimizer steps per run: enough for recognisable digits and sprites in about a minute of
# an H100 each, or a few minutes of one CPU core (a time cap per run stops earlier on slower
# machines). ControlVAE ships at both of the assignment's set points, so the walkthrough can put
# their KL curves on one chart.
ENTRIES: dict[str, Entry] = {e.name: e for e in (
    Entry("vae", "vae", 4000),
    Entry("betavae", "betavae", 4000),
    Entry("controlvae", "controlvae", 4000, (("kl_target", 8.0),)),
    Entry("controlvae-kl14", "controlvae", 4000, (("kl_target", 14.0),)),
    Entry("gan", "gan", 15000, (("ema", 0.999),)),
    Entry("dcgan", "dcgan", 3000),
    Entry("wgan", "wgan", 3000),
    Entry("wgan-gp", "wgan-gp", 5000, (("ema", 0.999),)),
    Entry("ssgan", "ssgan", 6000, (("ema", 0.999),)),
    Entry("acgan", "acgan", 7500, (("ema", 0.999),)),
    # The walkthrough's failures step. Convergence failure: LSGAN with D at the paper's 2e-4 on these
    # networks (a quarter of that is lsgan's default) separates real from fake within 100 steps and
    # G never recovers. Mode collapse: the first shipped ACGAN's recipe (the class as a 10-d input
    # embedding, D's class head also trained on fakes): every class covered, one image per class.
    # Image-to-image translation on dSprites shapes (the walkthrough's translation step reproduces
    # the papers' table with them): CycleGAN needs one model per pair of domains, StarGAN one for all.
    # CycleGAN at width 0.125 peaks within 500-1,000 steps and then drifts (its translations move and
    # grow halos: measured in BENCHMARKS.md), so its learning rates decay to 0 from step 500 to 1,000.
    Entry("cyclegan-square-ellipse", "cyclegan", 1000, (("source", "square"), ("target", "ellipse"),
                                                        ("decay_start", 500), ("decay_end", 1000))),
    Entry("cyclegan-square-heart", "cyclegan", 1000, (("source", "square"), ("target", "heart"),
                                                      ("decay_start", 500), ("decay_end", 1000))),
    Entry("cyclegan-ellipse-heart", "cyclegan", 1000, (("source", "ellipse"), ("target", "heart"),
                                                       ("decay_start", 500), ("decay_end", 1000))),
    # StarGAN: the official schedule compressed: constant for 10,000 steps, then linear to 0 at 14,000.
    Entry("stargan", "stargan", 14000, (("decay_start", 10000), ("decay_end", 14000))),
    Entry("failure-convergence", "lsgan", 1500, (("lr_d", 2e-4),), failure=True),
    Entry("failure-mode-collapse", "acgan", 3000, (("conditioning", "input"), ("fake_class_loss", True)),
          failure=True),
)}
# Issue 17's targets (gm.metrics.quality.ZOO_TARGETS) that a shipped run does not meet yet, as
# measured by `python -m gm eval checkpoints/pretrained/NAME --n 1000 --split test`; the README's
# pretrained table says why. tests/test_zoo.py fails when a run misses a target not listed here, and
# when a listed one is met (then remove it).
KNOWN_SHORTFALLS: dict[str, tuple[str, ...]] = {
    "gan": ("recognisable_ratio",),                                   # 0.88: levels off from step 11,000
    "dcgan": ("classes_recognised", "recognisable_ratio", "recall"),  # not retrained (CPU budget)
    "wgan-gp": ("recognisable_ratio", "recall"),                      # 0.48 and 0.29 at 5,000 steps: grey strokes
    "ssgan": ("recognisable_ratio",),                                 # 0.62 at 5,554 of 6,000 steps
    "wgan": ("classes_recognised",),                                  # not retrained: one grey blob
}
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


def is_failure_example(run: RunFolder, folder: str | Path | None = None) -> bool:
    """Is `run` one of the shipped deliberate failures (never a default pick or a model's card)?"""
    folder = Path(folder) if folder else default_dir()
    entry = ENTRIES.get(run.path.name)
    try:
        shipped = run.path.resolve().parent == folder.resolve()
    except OSError:
        return False
    return bool(shipped and entry is not None and entry.failure)


def showcase_runs(folder: str | Path | None = None) -> dict[str, RunFolder]:
    """Model name -> the shipped run that stands for it on Home: the entry named after the model, else
    its first other entry; failure examples never stand for a model."""
    out: dict[str, RunFolder] = {}
    for run in pretrained_runs(folder):
        entry = ENTRIES[run.name]
        if entry.failure:
            continue
        if entry.model not in out or run.name == entry.model:
            out[entry.model] = run
    return out


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
    from gm.models.loading import load_model
    weights = load_model(src_run.path, device="cpu", checkpoint=ckpt).sampling_weights(weights)
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


def continue_weights(session: Any, previous: str | Path) -> dict[str, Any]:
    """Start a fresh session from an earlier run's weights (a shipped run keeps no optimizer state, so
    the optimizers start afresh): same networks, the step count carried on. A weight average the
    earlier run did not keep starts as a copy of its G. Returns {"steps", "seconds"} of the earlier run."""
    from gm.models.loading import load_model

    before = load_model(previous, device="cpu")
    model = session.trainer.model
    weights = {k: v.float() if v.is_floating_point() else v for k, v in before.state_dict().items()}
    mine = model.state_dict()
    # Absent may be: a weight average the earlier run did not keep, and the networks a shipped run
    # leaves out (training_only: a GAN's D, which then starts afresh like the optimizers).
    absent = [k for k in mine if k not in weights and not k.startswith(("generator_average.", *model.training_only()))]
    extra = [k for k in weights if k not in mine or tuple(weights[k].shape) != tuple(mine[k].shape)]
    if absent or extra or type(before) is not type(model):
        raise GMError(f"{previous} has other networks than this entry's config; cannot continue from it.")
    model.load_state_dict(weights, strict=False)
    if hasattr(model, "generator_average") and not any(k.startswith("generator_average.") for k in weights):
        model.generator_average.load_state_dict(model.generator.state_dict())
    state = RunFolder(Path(previous)).read_state()
    step = int(state.get("step") or 0)
    session.trainer.step = step
    session.total_steps += step
    return {"steps": step, "seconds": float(state.get("elapsed") or 0.0), "from": Path(previous).name}


def build_one(entry: Entry, out: Path, work: Path, *, device: str, data_dir: str | None,
              steps: int, max_seconds: float, eval_n: int = EVAL_N,
              continue_from: str | Path | None = None) -> dict[str, Any]:
    from gm.config import from_dict, to_dict
    from gm.registry import get_spec
    from gm.runs.loop import Control, new_session, train

    model = entry.model
    spec = get_spec(model)
    values = {**to_dict(spec.config_cls()), **dict(entry.overrides), "checkpoint_every": steps}
    config = from_dict(spec.config_cls, values, model=model)
    session = new_session(model, config, runs_dir=work, name=entry.name, device=device,
                          data_dir=data_dir, steps=steps)
    earlier = continue_weights(session, continue_from) if continue_from else None
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
    if earlier:
        seconds += earlier["seconds"]
    run = export_run(session.run.path, out / entry.name, seconds=seconds, device=str(session.device))
    return write_summary(entry, run, steps=session.trainer.step, seconds=seconds, device=str(session.device),
                         data_dir=data_dir, eval_n=eval_n, continued_from=earlier)


SUMMARY_KEYS = ("fid_classifier", "fid_offline", "classes_covered", "kl_to_uniform", "classes_recognised",
                "recognisable_share", "recognisable_share_real", "recognisable_ratio",
                "within_class_diversity", "precision", "recall", "precision_offline", "recall_offline",
                "density_offline", "coverage_offline", "acgan_accuracy", "recognised_as_requested", "mig",
                # translation runs (gm.metrics.translation)
                "target_accuracy", "content_error", "gt_iou", "gt_l1", "position_error_px", "cycle_l1",
                "parameters", "pairs")


def write_summary(entry: Entry, run: RunFolder, *, steps: int, seconds: float, device: str,
                  data_dir: str | None = None, eval_n: int = EVAL_N,
                  continued_from: dict[str, Any] | None = None) -> dict[str, Any]:
    """Evaluate a shipped run like `gm eval RUN --n 1000 --split test` (held-out real images where
    the dataset has them) and write its metrics.json."""
    from gm.data import get_dataset_spec
    from gm.metrics.evaluate import evaluate

    spec_data = get_dataset_spec(run.read_config()["dataset"])
    split = "test" if "test" in spec_data.splits else "train"
    n = eval_n
    if split == "test":
        from gm.metrics.sources import real_images
        n = min(eval_n, real_images(spec_data.name, 2, 0, split, data_dir).size)
    result = evaluate(run.path, n=n, split=split, device="auto", data_dir=data_dir, inception=False)
    summary = {"name": entry.name, "model": entry.model, "dataset": spec_data.name, "steps": steps,
               "train_seconds": round(seconds, 1), "device": device, "eval_n": n, "eval_split": split,
               "failure_example": entry.failure}
    if continued_from:
        summary["continued_from"] = continued_from
    summary.update({k: result[k] for k in SUMMARY_KEYS if result.get(k) is not None})
    write_json_atomic(run.path / "metrics.json", summary)
    return summary


def build(out: str | Path | None = None, *, device: str = "auto", data_dir: str | None = None,
          models: list[str] | None = None, max_seconds: float = 60.0, scale: float = 1.0,
          continue_shipped: bool = False, log=print) -> list[dict[str, Any]]:
    """Train every (or the given) pretrained run and export it to `out`; returns the metrics.json
    summaries. `models` are ENTRIES names ("gan", "controlvae-kl14", ...). `continue_shipped`: start
    each from the run already in `out` (its weights; the optimizers start afresh) and train the
    entry's steps on top."""
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
            previous = None
            if continue_shipped:
                if not (out / name / "config.json").is_file():
                    raise GMError(f"There is no shipped run {name} in {out} to continue from.")
                done = int(RunFolder(out / name).read_state().get("step") or 0)
                if done >= steps:
                    raise GMError(f"The shipped {name} already has {done} of its {steps} steps.")
                steps -= done   # the entry's steps are the total
                previous = Path(tmp) / "previous" / name
                shutil.copytree(out / name, previous)   # the export replaces out/name
            summary = build_one(entry, out, Path(tmp), device=device, data_dir=data_dir, steps=steps,
                                max_seconds=max_seconds, continue_from=previous)
            log(json.dumps(summary))
            sys.stdout.flush()
            summaries.append(summary)
    return summaries


def reevaluate(name: str, folder: str | Path | None = None, data_dir: str | None = None) -> dict[str, Any]:
    """Measure a shipped run again (today's metrics) and rewrite its metrics.json, keeping how it was
    trained (steps, seconds, device, continued_from)."""
    if name not in ENTRIES:
        raise GMError(f"Unknown pretrained run {name}; choose from {', '.join(ENTRIES)}.")
    run = find_pretrained(name, folder)
    if run is None:
        raise GMError(f"There is no shipped run {name} to evaluate.")
    old = json.loads((run.path / "metrics.json").read_text()) if (run.path / "metrics.json").is_file() else {}
    state = run.read_state()
    return write_summary(ENTRIES[name], run, steps=int(old.get("steps") or state.get("step") or 0),
                         seconds=float(old.get("train_seconds") or state.get("elapsed") or 0.0),
                         device=str(old.get("device") or state.get("device") or "?"), data_dir=data_dir,
                         continued_from=old.get("continued_from"))


def _shown(value: Any, spec: str) -> str:
    return "—" if not isinstance(value, (int, float)) else format(value, spec)


def markdown_table(folder: str | Path | None = None) -> str:
    """The README's table of the shipped MNIST GANs: every figure of issue 17's targets per run."""
    from gm.metrics.quality import ZOO_TARGETS, shortfalls

    head = ("| run | steps | trained on | recognisable (real) | of real | classes recognised | "
            "within-class diversity | recall | coverage (offline) | FID offline | classifier FID | targets |")
    lines = [head, "| " + " | ".join(["---"] * (head.count("|") - 1)) + " |"]
    for run in pretrained_runs(folder):
        entry = ENTRIES[run.name]
        try:
            m = json.loads((run.path / "metrics.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if m.get("dataset") != "mnist":
            continue
        def f(key: str, spec: str = ".2f", m: dict = m) -> str:
            return _shown(m.get(key), spec)
        minutes = m.get("train_seconds", 0) / 60
        where = "H100" if m.get("device") == "cuda" else f"CPU, {minutes:.0f} min"
        if entry.failure:
            verdict = "failure example"
        else:
            missed = shortfalls(m, ZOO_TARGETS[entry.name]) if entry.name in ZOO_TARGETS else []
            verdict = "met" if not missed else "missed: " + ", ".join(x.split()[0] for x in missed)
        extra = f" (asked-for class {f('recognised_as_requested', '.2f')})" if "recognised_as_requested" in m else ""
        lines.append(f"| {run.name} | {m.get('steps')} | {where} | {f('recognisable_share')} "
                     f"({f('recognisable_share_real')}) | {f('recognisable_ratio')}{extra} | "
                     f"{m.get('classes_recognised', '—')}/10 | {f('within_class_diversity')} | {f('recall')} | "
                     f"{f('coverage_offline')} | {f('fid_offline', '.1f')} | {f('fid_classifier', '.1f')} | {verdict} |")
    return "\n".join(lines)


# Issue 18's bar for every shipped translation run, on average over its domain pairs (dSprites
# shapes): the evaluator recognises the requested shape, the translation overlaps the true
# counterpart, and the sprite stays where it was. The README's table also shows the worst pair.
TRANSLATION_TARGETS = {"target_accuracy": (">=", 0.95), "gt_iou": (">=", 0.8), "position_error_px": ("<=", 1.0)}


# The translation targets a shipped run does not meet yet (python -m gm eval checkpoints/pretrained/NAME);
# tests/test_translation_zoo.py fails on any other miss, and when a listed one is met.
KNOWN_TRANSLATION_SHORTFALLS: dict[str, tuple[str, ...]] = {
    "cyclegan-square-ellipse": ("target_accuracy", "gt_iou"),                    # ellipse -> square: rectangles
    "cyclegan-square-heart": ("target_accuracy",),                               # 0.94
    "cyclegan-ellipse-heart": ("target_accuracy", "gt_iou", "position_error_px"),
}


def translation_shortfalls(summary: dict[str, Any]) -> list[str]:
    """The targets a translation run's metrics.json misses on average over its pairs
    ("gt_iou 0.756 < 0.8")."""
    missed = []
    for key, (op, bound) in TRANSLATION_TARGETS.items():
        value = summary.get(key)
        ok = isinstance(value, (int, float)) and (value >= bound if op == ">=" else value <= bound)
        if not ok:
            missed.append(f"{key} {value if value is None else round(value, 3)} {'<' if op == '>=' else '>'} {bound}")
    return missed


def translation_table(folder: str | Path | None = None) -> str:
    """The README's table of the shipped translation runs: per run, the mean over its pairs (the
    worst pair in brackets), the parameters it needs and its CPU training time."""
    head = ("| run | domain pairs | steps | CPU time | target accuracy (worst pair) | ground-truth IoU (worst) | "
            "position error px (worst) | content error | cycle L1 | parameters | targets (on average) |")
    lines = [head, "| " + " | ".join(["---"] * (head.count("|") - 1)) + " |"]
    for run in pretrained_runs(folder):
        try:
            m = json.loads((run.path / "metrics.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        pairs = m.get("pairs") or {}
        if not pairs:
            continue
        def worst(key: str, pick=min, spec: str = ".3f", pairs: dict = pairs) -> str:
            values = [p[key] for p in pairs.values() if isinstance(p.get(key), (int, float))]
            return _shown(pick(values), spec) if values else "—"
        missed = translation_shortfalls(m)
        where = "H100" if m.get("device") == "cuda" else f"{m.get('train_seconds', 0) / 60:.0f} min"
        def both(key: str, pick=min, spec: str = ".3f", m: dict = m) -> str:
            return f"{_shown(m.get(key), spec)} ({worst(key, pick, spec)})"
        lines.append(f"| {run.name} | {len(pairs)} | {m.get('steps')} | {where} | {both('target_accuracy')} | "
                     f"{both('gt_iou')} | {both('position_error_px', max, '.2f')} | "
                     f"{_shown(m.get('content_error'), '.3f')} | {_shown(m.get('cycle_l1'), '.3f')} | "
                     f"{m.get('parameters', 0) / 1e3:,.0f}k | {'met' if not missed else 'missed: ' + '; '.join(missed)} |")
    return "\n".join(lines)


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
    b.add_argument("--continue", dest="continue_shipped", action="store_true",
                   help="start from the shipped run's weights (fresh optimizers) and train up to the "
                        "entry's steps")
    e = sub.add_parser("evaluate", help="re-measure the shipped runs (metrics.json) without training")
    e.add_argument("--models", help="comma-separated subset (default: all)")
    e.add_argument("--data-dir", help="dataset folder (default $GM_DATA_DIR)")
    sub.add_parser("list", help="list the shipped pretrained runs and their metrics")
    sub.add_parser("table", help="print the README's tables of the shipped MNIST GANs and translation runs")
    args = p.parse_args(argv)
    try:
        if args.command == "build":
            build(args.out, device=args.device, data_dir=args.data_dir,
                  models=args.models.split(",") if args.models else None,
                  max_seconds=args.max_seconds, scale=args.scale, continue_shipped=args.continue_shipped)
            out = Path(args.out) if args.out else default_dir()
            print(f"{out}: {folder_size(out) / 1e6:.1f} MB")
        elif args.command == "table":
            print(markdown_table())
            print()
            print(translation_table())
        elif args.command == "evaluate":
            for name in args.models.split(",") if args.models else list(ENTRIES):
                print(json.dumps(reevaluate(name, data_dir=args.data_dir)))
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

"""Training throughput of every model: gm's loop against the pure compute limit and a typical script.

    GM_DATA_DIR=/work/shared/data python -m bench.train_throughput [--models vae,gan] [--steps 30]
        [--repeats 5] [--device cpu|cuda] [--threads 1] [--set key=value ...] [--best]

Three variants per model, at the model's default config, run in one process, interleaved
(bench.harness: every repeat runs each variant once, the order rotating), compared by medians:

- **gm**: the real loop, ``new_session`` + ``train`` with its default callbacks: logging (a metrics
  row every `log_every` steps), sample grids (every `sample_every` steps and at each epoch's end)
  and checkpoints (every `checkpoint_every` steps or `checkpoint_seconds`), the last two as
  subclasses that time their writes. Building the trainer is outside the clock. A short run meets fewer grids and checkpoints than a long one, so the clock is
  the steady state: the time of the steps in the window, minus the grids and checkpoints that fell
  in it, plus each one's measured cost times how often the defaults make it happen per step
  (grids: 1/sample_every + epochs per step; checkpoints: 1/checkpoint_every or, when slower,
  step time / checkpoint_seconds). Images = real images drawn (n_critic batches per WGAN step).
- **compute**: the pure compute limit: the same trainer's ``optimize`` (the networks' forward,
  backward and optimizer steps, with their losses) on a few prepared float batches already on the
  device: no data loading, no logging, one sync at the end.
- **reference**: what people usually write: torchvision ``MNIST(root, transform=Compose([ToTensor(),
  Normalize((0.5,), (0.5,))]))`` (SSGAN: ``Pad(2)`` first, for its 32x32 networks) or a ``Dataset``
  over the rendered dSprites array with ``ToTensor``, a ``DataLoader(batch_size=<the model's batch>,
  shuffle=True, drop_last=True)`` in the same process, the batch moved to the device, the same
  ``optimize`` (same networks and losses, fp32 eager) and every metric fetched with ``.item()``
  each step into Python lists.

Every variant trains a fresh trainer for `--steps` steps and times steps `--warmup-steps`+1 ..
`--steps`, each from the drawing of its batches (the first ones allocate optimizer state and, with
compile, run the compiler); gm's clock stops when the last step's metrics row is written, so it
includes every metrics row of the window.
Each variant also runs once, shorter, before the repeats (oneDNN's kernels for each shape). Batch: each
model's default (64; DCGAN 256, the tutorial's), for all three variants, so they do the same work.
`--set` options (and `--best`: bf16 autocast, channels_last and torch.compile on CUDA) apply to gm
and compute; the reference stays the plain fp32 eager script.

Host allocator: gm's loop keeps freed activations in glibc's heap (gm.device.tune_host_allocator),
which saves a CPU step 15-20% of page faults. That setting is process-wide, so here the compute and
reference variants get it too and the ratios show the loop and the data pipeline alone; a script
run in its own process does not have it. `--own-process-reference` adds a fourth variant, still
interleaved: the same reference run in a fresh interpreter of its own, as a user's script runs
(its start-up and data loading outside the figure). `--allocator default` leaves glibc as it is.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bench.harness import Variant, compare
from gm.config import parse_overrides, with_overrides
from gm.data import Batcher, default_data_dir, load_dataset
from gm.device import resolve_device, tune_host_allocator
from gm.models.base import DataInfo
from gm.registry import MODELS, get_spec
from gm.runs.callbacks import Callback, Checkpointer, SampleGrids, default_callbacks
from gm.runs.loop import Loop, Session, new_session, train

BEST_CUDA = {"precision": "bf16", "channels_last": "true", "compile": "true"}
PERF_FIELDS = ("precision", "channels_last", "compile")


# ---- timing of the loop's periodic extras ---------------------------------------------------
def _now() -> np.ndarray:
    """(wall, CPU of this thread) seconds. One torch thread and an in-process DataLoader do all the
    work in this thread, so its CPU time counts the same work as the wall clock, without the time
    other processes on a shared machine take from it."""
    return np.array([time.perf_counter(), time.thread_time()])


class _Timings:
    """The writes of one of the loop's callbacks (grids, checkpoints): when each began, how long it took."""

    def __init__(self) -> None:
        self.calls: list[tuple[float, np.ndarray]] = []      # (wall start, (wall, cpu) seconds)

    def time(self, write: Any, session: Session) -> None:
        start = _now()
        try:
            write(session)
        finally:
            self.calls.append((start[0], _now() - start))

    def within(self, t0: float, t1: float) -> np.ndarray:
        return sum((s for start, s in self.calls if t0 <= start < t1), np.zeros(2))

    def mean(self) -> np.ndarray:
        return np.mean([s for _, s in self.calls], axis=0) if self.calls else np.zeros(2)


class _TimedGrids(SampleGrids):
    def __init__(self) -> None:
        super().__init__()
        self.timings = _Timings()

    def write(self, session: Session) -> None:
        self.timings.time(super().write, session)


class _TimedCheckpoints(Checkpointer):
    def __init__(self) -> None:
        super().__init__()
        self.timings = _Timings()

    def write(self, session: Session) -> None:
        self.timings.time(super().write, session)


class _Clock(Callback):
    """The clock of gm's variant: from the start of step warm+1 to the moment the last step's
    metrics row is written (listed after the metrics log, so it hears that row after it is on disk)."""

    def __init__(self, warm: int, steps: int) -> None:
        self.warm, self.steps = warm, steps
        self.marks: dict[str, np.ndarray] = {}

    def on_step_start(self, loop: Loop) -> None:
        if loop.step == self.warm:
            _sync(loop.session.device)
            self.marks["start"] = _now()

    def on_log(self, loop: Loop, record: dict[str, Any]) -> None:
        if loop.step == self.steps:
            _sync(loop.session.device)
            self.marks["end"] = _now()


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# ---- the three variants -----------------------------------------------------------------------
def run_gm(model: str, config: Any, dataset: Any, device: str, steps: int, warm: int,
           runs_dir: Path) -> dict[str, Any]:
    # The default callbacks, with grids and checkpoints that time their writes.
    grid_writer, ckpt_writer, clock = _TimedGrids(), _TimedCheckpoints(), _Clock(warm, steps)
    callbacks = default_callbacks(grids=grid_writer, checkpoints=ckpt_writer) + [clock]
    name = f"bench-{model}-{time.monotonic_ns()}"
    session = new_session(model, config, runs_dir=runs_dir, name=name, device=device, steps=steps,
                          dataset=dataset)
    t = session.trainer
    status = train(session, callbacks=callbacks)
    assert status == "finished", (status, session.error)
    grids, ckpts = grid_writer.timings, ckpt_writer.timings
    t0, t1 = clock.marks["start"], clock.marks["end"]
    n = steps - warm
    extras = grids.within(t0[0], t1[0]) + ckpts.within(t0[0], t1[0])
    step_time = (t1 - t0 - extras) / n                       # (wall, cpu) per step, without extras
    b = session.batcher
    grids_per_step = 1 / config.sample_every + t.batches_per_step() / b.batches_per_epoch
    ckpts_per_step = max(1 / config.checkpoint_every, step_time[0] / config.checkpoint_seconds)
    periodic = grids_per_step * grids.mean() + ckpts_per_step * ckpts.mean()
    seconds = n * (step_time + periodic)
    shutil.rmtree(session.run.path, ignore_errors=True)
    images = n * t.images_per_step()
    return {"value": images / seconds[0], "cpu_value": images / seconds[1],
            "grid_ms": 1e3 * grids.mean()[0], "ckpt_ms": 1e3 * ckpts.mean()[0],
            "periodic_share": periodic[0] / (step_time[0] + periodic[0])}


def _fresh_trainer(model: str, config: Any, dataset: Any, device: torch.device, perf: bool):
    spec = get_spec(model)
    trainer = spec.build_trainer(spec.build_model(config, DataInfo.of(dataset, spec.dataset)).to(device))
    if perf:
        trainer.apply_performance_options()
    trainer.train(True)
    return trainer


def run_compute(model: str, config: Any, dataset: Any, device: torch.device, steps: int,
                warm: int) -> dict[str, Any]:
    trainer = _fresh_trainer(model, config, dataset, device, perf=True)
    batcher = Batcher(dataset, config.batch_size, config.seed, device, with_labels=trainer.wants_labels)
    k = trainer.batches_per_step()
    batches = []
    for _ in range(4):
        batch = batcher.draw(k)
        batches.append((trainer.prepare(batch.only()), batch.only_labels()))
    for i in range(warm):
        trainer.optimize(*batches[i % len(batches)])
    _sync(device)
    start = _now()
    for i in range(warm, steps):
        out = trainer.optimize(*batches[i % len(batches)])
    torch.stack([v for v in out.values() if isinstance(v, torch.Tensor) and v.dim() == 0]).sum().item()
    seconds = _now() - start
    images = (steps - warm) * trainer.images_per_step()
    return {"value": images / seconds[0], "cpu_value": images / seconds[1]}


class SpritesArray(torch.utils.data.Dataset):
    """What a dSprites script holds: the (N, 64, 64) uint8 array of np.load(...)['imgs']."""

    def __init__(self, imgs: np.ndarray, transform: Any) -> None:
        self.imgs, self.transform = imgs, transform

    def __len__(self) -> int:
        return len(self.imgs)

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.transform(self.imgs[i].astype(np.float32))


def reference_dataset(model: str, dataset: Any, data_dir: str | None):
    from torchvision import transforms
    from torchvision.datasets import MNIST
    spec = get_spec(model)
    if spec.dataset == "dsprites":
        return SpritesArray(dataset.images[:, 0].numpy(), transforms.ToTensor())
    steps = [transforms.Pad(2)] if model == "ssgan" else []   # its networks are built for 32x32
    steps += [transforms.ToTensor(), transforms.Normalize((0.5,), (0.5,))]
    root = data_dir or str(default_data_dir())
    return MNIST(root, train=True, download=False, transform=transforms.Compose(steps))


def run_reference(model: str, config: Any, dataset: Any, ref_data: Any, device: torch.device,
                  steps: int, warm: int) -> dict[str, Any]:
    from torch.utils.data import DataLoader
    trainer = _fresh_trainer(model, config, dataset, device, perf=False)
    loader = DataLoader(ref_data, batch_size=config.batch_size, shuffle=True, drop_last=True)
    history: dict[str, list[float]] = defaultdict(list)
    k = trainer.batches_per_step()
    it = iter(loader)

    def next_batch():
        nonlocal it
        try:
            return next(it)
        except StopIteration:   # a new epoch, as `for epoch ...: for batch in loader:` does
            it = iter(loader)
            return next(it)

    start = _now()
    for step in range(steps):
        if step == warm:
            start = _now()
        parts = [next_batch() for _ in range(k)]
        if isinstance(parts[0], (list, tuple)):
            x = torch.cat([p[0] for p in parts]).to(device)
            labels = torch.cat([p[1] for p in parts]).to(device)
        else:
            x, labels = torch.cat(parts).to(device), None
        out = trainer.optimize(x, labels if trainer.wants_labels else None)
        for key, v in out.items():
            if isinstance(v, torch.Tensor) and v.dim() == 0:
                history[key].append(v.item())
    seconds = _now() - start
    images = (steps - warm) * trainer.images_per_step()
    return {"value": images / seconds[0], "cpu_value": images / seconds[1]}


def loop_overhead(model: str, config: Any, dataset: Any, device: str, steps: int, runs_dir: Path) -> float:
    """Seconds per step the loop itself costs (drawing, uint8 -> float, metrics rows, control
    checks): the loop over a trainer whose ``optimize`` only returns last step's metrics. Grids and
    checkpoints are not included (the steady-state figure pro-rates them): the loop runs without
    those callbacks."""
    session = new_session(model, config, runs_dir=runs_dir, name=f"overhead-{time.monotonic_ns()}",
                          device=device, steps=steps, dataset=dataset)
    t = session.trainer
    batch = session.batcher.draw(t.batches_per_step())
    metrics = t.optimize(t.prepare(batch.only()), batch.only_labels())

    def no_compute(x: torch.Tensor, labels: torch.Tensor | None) -> dict[str, Any]:
        t.step += 1
        return dict(metrics)

    t.optimize = no_compute
    start = time.perf_counter()
    train(session, callbacks=default_callbacks(grids=False, checkpoints=False))
    seconds = time.perf_counter() - start
    shutil.rmtree(session.run.path, ignore_errors=True)
    return seconds / (steps - 1)


def reference_data(config: Any, ref_data: Any, device: torch.device, k: int, batches: int = 30) -> float:
    """Seconds per step the reference spends drawing its k batches through the DataLoader
    (PIL/array -> ToTensor -> Normalize -> collate -> device). Short and CPU-bound, timed in CPU
    time, so it stays steady on a busy machine where whole-run ratios do not."""
    from torch.utils.data import DataLoader
    loader = DataLoader(ref_data, batch_size=config.batch_size, shuffle=True, drop_last=True)
    it, seconds = iter(loader), 0.0
    for i in range(batches + 1):
        start = time.thread_time()
        try:
            b = next(it)
        except StopIteration:   # a new epoch (a new shuffle), as a training script's loop starts one
            it = iter(loader)
            b = next(it)
        (b[0] if isinstance(b, (list, tuple)) else b).to(device)
        if i:  # the first batch warms up
            seconds += time.thread_time() - start
    return k * seconds / batches


def components(model: str, args: argparse.Namespace, config: Any, dataset: Any, ref_data: Any,
               dev: torch.device, runs_dir: Path) -> dict[str, Any]:
    """The ratios from their parts, each measured alone in CPU time (steady on a busy machine):
    gm = compute step + the loop's own work + pro-rated grids/checkpoints; reference = compute step
    + its DataLoader (+ .item() of each metric, negligible on a CPU)."""
    n, w = args.steps, args.warmup_steps
    per_step = config.batch_size * int(getattr(config, "n_critic", 1) or 1)
    step = min(per_step / run_compute(model, config, dataset, dev, n, w)["cpu_value"] for _ in range(3))
    gm_run = run_gm(model, config, dataset, args.device, n, w, runs_dir)
    periodic = gm_run["periodic_share"] / (1 - gm_run["periodic_share"]) * step
    loop_s = min(loop_overhead(model, config, dataset, args.device, args.overhead_steps, runs_dir)
                 for _ in range(3))
    data = reference_data(config, ref_data, dev, per_step // config.batch_size)
    gm_s, ref_s = step + loop_s + periodic, step + data
    row = {"model": model, "batch": config.batch_size, "images_per_step": per_step,
           "step_ms": 1e3 * step, "loop_ms": 1e3 * loop_s, "periodic_ms": 1e3 * periodic,
           "ref_data_ms": 1e3 * data,
           "gm/compute": step / gm_s, "gm/reference": ref_s / gm_s}
    print(f"{model:<11} compute step {row['step_ms']:7.1f} ms; gm adds loop {row['loop_ms']:.2f} + grids/"
          f"checkpoints {row['periodic_ms']:.2f} ms; the reference adds its DataLoader {row['ref_data_ms']:.2f} "
          f"ms  =>  gm/compute {row['gm/compute']:.3f}, "
          f"gm/reference {row['gm/reference']:.3f}", flush=True)
    return row


def run_reference_process(model: str, args: argparse.Namespace, steps: int) -> dict[str, Any]:
    """The reference as a user's script runs it: in a fresh interpreter of its own (glibc's malloc as
    it comes, not as gm's loop tunes it for this process). Start-up and data loading are outside
    the figure: the child times its training window and prints it."""
    cmd = [sys.executable, "-m", "bench.train_throughput", "--child-reference", model, "--steps", str(steps),
           "--warmup-steps", str(args.warmup_steps), "--device", args.device, "--threads", str(args.threads)]
    if args.data_dir:
        cmd += ["--data-dir", args.data_dir]
    env = {**os.environ, "GM_MALLOC_TUNING": "0"}
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True,
                         cwd=Path(__file__).resolve().parents[1])
    return json.loads(out.stdout.strip().splitlines()[-1])


def child_reference(args: argparse.Namespace) -> int:
    model = args.child_reference
    spec = get_spec(model)
    config = spec.config_cls()
    dataset = load_dataset(spec.dataset, args.data_dir)
    dev = resolve_device(args.device)
    result = run_reference(model, config, dataset, reference_dataset(model, dataset, args.data_dir), dev,
                           args.steps, args.warmup_steps)
    print(json.dumps(result))
    return 0


# ---- driver -----------------------------------------------------------------------------------
def measure(model: str, args: argparse.Namespace, datasets: dict[str, Any], runs_dir: Path) -> dict[str, Any]:
    spec = get_spec(model)
    base = spec.config_cls()
    gm_overrides = {k: v for k, v in args.overrides.items() if k in {f for f in vars(base)}}
    config = with_overrides(base, gm_overrides, model=model)
    ref_config = with_overrides(config, {k: getattr(base, k) for k in PERF_FIELDS}, model=model)
    dataset = datasets[spec.dataset]
    ref_data = reference_dataset(model, dataset, args.data_dir)
    dev = resolve_device(args.device)
    n, w = args.steps, args.warmup_steps
    short = w + 2
    variants = [
        Variant("gm", lambda: run_gm(model, config, dataset, args.device, n, w, runs_dir), warmup=1,
                warmup_run=lambda: run_gm(model, config, dataset, args.device, short, w, runs_dir)),
        Variant("compute", lambda: run_compute(model, config, dataset, dev, n, w), warmup=1,
                warmup_run=lambda: run_compute(model, config, dataset, dev, short, w)),
        Variant("reference", lambda: run_reference(model, ref_config, dataset, ref_data, dev, n, w),
                warmup=1, warmup_run=lambda: run_reference(model, ref_config, dataset, ref_data, dev, short, w)),
    ]
    if args.components_only:
        return components(model, args, config, dataset, ref_data, dev, runs_dir)
    if args.own_process_reference:
        variants.append(Variant("reference, own process", lambda: run_reference_process(model, args, n),
                                warmup=0))
    if args.null_check:  # the same variant twice: the spread of its ratio is the machine's noise
        variants.append(Variant("compute again", lambda: run_compute(model, config, dataset, dev, n, w), warmup=0))
    result = compare(variants, repeats=args.repeats)
    overhead = statistics.median(loop_overhead(model, config, dataset, args.device, args.overhead_steps, runs_dir)
                                 for _ in range(3))
    gm_extra = result.extras["gm"]
    cpu = {name: statistics.median(e["cpu_value"] for e in result.extras[name]) for name in result.values}

    def paired(a: str, b: str) -> float:
        """Median over repeats of a/b in CPU time, each pair run back to back in one repeat."""
        return statistics.median(x["cpu_value"] / y["cpu_value"]
                                 for x, y in zip(result.extras[a], result.extras[b]))
    n_batches = int(getattr(config, "n_critic", 1) or 1)
    return {"model": model, "batch": config.batch_size, "images_per_step": config.batch_size * n_batches,
            "gm": result.median("gm"), "compute": result.median("compute"),
            "reference": result.median("reference"),
            "gm/compute": result.ratio("gm", "compute"), "gm/reference": result.ratio("gm", "reference"),
            "cpu gm/compute": cpu["gm"] / cpu["compute"], "cpu gm/reference": cpu["gm"] / cpu["reference"],
            "paired gm/compute": paired("gm", "compute"), "paired gm/reference": paired("gm", "reference"),
            "grid_ms": statistics.median(e["grid_ms"] for e in gm_extra),
            "ckpt_ms": statistics.median(e["ckpt_ms"] for e in gm_extra),
            "periodic_share": statistics.median(e["periodic_share"] for e in gm_extra),
            "loop_ms": 1e3 * overhead,
            "loop_share": overhead * result.median("compute") / (config.batch_size * n_batches),
            "null": paired("compute again", "compute") if args.null_check else None,
            "own process": result.median("reference, own process") if args.own_process_reference else None,
            "gm/own process": result.ratio("gm", "reference, own process") if args.own_process_reference else None,
            "values": result.values, "extras": result.extras}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.train_throughput", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", default=",".join(MODELS), help="comma-separated subset")
    p.add_argument("--steps", type=int, default=20, help="steps per run")
    p.add_argument("--warmup-steps", type=int, default=2, help="first steps of each run, not timed")
    p.add_argument("--repeats", type=int, default=8)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    p.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                   help="config override for gm and compute (e.g. precision=bf16)")
    p.add_argument("--best", action="store_true", help="gm and compute with bf16, channels_last and "
                                                        "torch.compile (the GPU settings)")
    p.add_argument("--overhead-steps", type=int, default=201, help="steps of the loop-overhead runs")
    p.add_argument("--components-only", action="store_true",
                   help="no interleaved runs: the ratios from their parts, each timed alone in CPU time")
    p.add_argument("--null-check", action="store_true",
                   help="also run the compute variant twice: its ratio (ideally 1) shows the noise")
    p.add_argument("--allocator", choices=("tuned", "default"), default="tuned",
                   help="glibc malloc as gm's loop sets it (tuned, process-wide) or left as is")
    p.add_argument("--own-process-reference", action="store_true",
                   help="also run the reference in a fresh process of its own, as a user's script runs")
    p.add_argument("--child-reference", metavar="MODEL", help=argparse.SUPPRESS)
    p.add_argument("--data-dir", help="folder holding MNIST/raw (default $GM_DATA_DIR)")
    p.add_argument("--json", help="also write the results here")
    args = p.parse_args(argv)
    if args.child_reference:
        torch.set_num_threads(args.threads)
        return child_reference(args)
    args.overrides = {**(BEST_CUDA if args.best else {}), **parse_overrides(args.sets)}
    if args.allocator == "default":
        os.environ["GM_MALLOC_TUNING"] = "0"   # read once, by the first call below or in the loop
    tuned = tune_host_allocator()

    torch.set_num_threads(args.threads)
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    for m in models:
        get_spec(m)
    dev = resolve_device(args.device)
    where = torch.cuda.get_device_name(dev) if dev.type == "cuda" else f"cpu, {args.threads} thread(s)"
    print(f"torch {torch.__version__}, {where}; {args.steps} steps per run, {args.repeats} repeats; "
          f"gm options {args.overrides or 'defaults'}; host allocator {'tuned' if tuned else 'as is'}",
          flush=True)
    datasets = {name: load_dataset(name, args.data_dir)
                for name in {get_spec(m).dataset for m in models}}
    rows = []
    with tempfile.TemporaryDirectory(prefix="gm-train-bench-") as tmp:
        for model in models:
            row = measure(model, args, datasets, Path(tmp))
            rows.append(row)
            if args.components_only:
                continue
            print(f"{model:<11} gm {row['gm']:8.1f}  compute {row['compute']:8.1f}  reference "
                  f"{row['reference']:8.1f} img/s   gm/compute {row['gm/compute']:.3f}  gm/reference "
                  f"{row['gm/reference']:.3f}  (CPU time: {row['cpu gm/compute']:.3f}, "
                  f"{row['cpu gm/reference']:.3f}; paired {row['paired gm/compute']:.3f}, "
                  f"{row['paired gm/reference']:.3f})   grid {row['grid_ms']:.0f} ms, checkpoint "
                  f"{row['ckpt_ms']:.0f} ms ({100 * row['periodic_share']:.2f}% of a step); the loop's own "
                  f"work {row['loop_ms']:.2f} ms a step ({100 * row['loop_share']:.2f}%)"
                  + (f"; null check compute/compute {row['null']:.3f}" if row["null"] else "")
                  + (f"; reference in its own process {row['own process']:.1f} img/s, gm/that "
                     f"{row['gm/own process']:.3f}" if row["own process"] else ""), flush=True)
    if args.components_only:
        print("\n| model | compute step | + gm's loop | + grids, checkpoints | reference's DataLoader | "
              "gm/compute | gm/reference |")
        print("| --- | --- | --- | --- | --- | --- | --- |")
        for r in rows:
            print(f"| `{r['model']}` | {r['step_ms']:.1f} ms | {r['loop_ms']:.2f} ms | {r['periodic_ms']:.2f} ms | "
                  f"{r['ref_data_ms']:.2f} ms | {r['gm/compute']:.3f} | "
                  f"{r['gm/reference']:.3f} |")
        if args.json:
            Path(args.json).write_text(json.dumps(rows, indent=1))
        return 0
    print("\n| model | batch | img/step | gm img/s | compute img/s | reference img/s | gm/compute | "
          "gm/reference | CPU-time ratios | grids + checkpoints | loop's own work |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(f"| `{r['model']}` | {r['batch']} | {r['images_per_step']} | {r['gm']:.0f} | {r['compute']:.0f} | "
              f"{r['reference']:.0f} | {r['gm/compute']:.2f} | {r['gm/reference']:.2f} | "
              f"{r['cpu gm/compute']:.2f} / {r['cpu gm/reference']:.2f} | {100 * r['periodic_share']:.1f}% | "
              f"{100 * r['loop_share']:.2f}% |")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

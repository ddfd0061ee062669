"""Training throughput of the six GANs on the offline MNIST digits, through the real training loop.

    GM_DATA_DIR=/work/shared/data python -m bench.gan_throughput

`gan` and `wgan-gp` train for --epochs passes over the data (their sample grids, one per epoch, land
in run folders `bench-<model>-<time>` of --runs-dir, by default the app's runs folder so they can be
browsed there); the other four train --steps generator steps. Each model runs at
its CPU defaults (the registry's cpu_note says which). Images/s counts every real
image a step consumes (n_critic batches for the Wasserstein models and SSGAN). The plain reference
is the same trainer's train_step called in a bare Python loop on pre-drawn batches; the ratio
loop/bare shows what the loop's logging, sample grids and checkpoints cost.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import math
import sys
import time
from pathlib import Path

import torch

from gm.config import with_overrides
from gm.data import Batcher, load_dataset
from gm.registry import get_spec
from gm.runs.folder import default_runs_dir
from gm.runs.loop import new_session, train

MODELS = ("gan", "dcgan", "wgan", "wgan-gp", "ssgan", "acgan")
EPOCH_MODELS = ("gan", "wgan-gp")


def bare_images_per_sec(model: str, config, dataset, steps: int) -> float:
    """train_step alone, on batches drawn beforehand: the reference without the loop's extras."""
    spec = get_spec(model)
    trainer = spec.new_trainer(config, dataset, "cpu")
    batcher = Batcher(dataset, config.batch_size, config.seed, torch.device("cpu"),
                      with_labels=trainer.wants_labels)
    k = trainer.batches_per_step()
    batches = [batcher.draw(k) for _ in range(steps + 1)]
    trainer.train_step(batches[0])  # warm-up (allocator, oneDNN kernels)
    start = time.perf_counter()
    for batch in batches[1:]:
        out = trainer.train_step(batch)
    float(out["g_loss"])
    return steps * k * config.batch_size / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.gan_throughput", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--epochs", type=float, default=3, help="passes over the data for gan and wgan-gp")
    p.add_argument("--steps", type=int, default=20, help="generator steps for the other models")
    p.add_argument("--bare-steps", type=int, default=5, help="steps of the bare train_step reference")
    p.add_argument("--models", default=",".join(MODELS), help="comma-separated subset")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    p.add_argument("--runs-dir", help="where the run folders go (default: the app's runs folder, "
                                      "so the grids can be browsed there)")
    p.add_argument("--data-dir", help="MNIST folder (default $GM_DATA_DIR)")
    args = p.parse_args(argv)

    torch.set_num_threads(args.threads)
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    dataset = load_dataset("mnist", args.data_dir)
    runs_dir = Path(args.runs_dir) if args.runs_dir else default_runs_dir()
    runs_dir.mkdir(parents=True, exist_ok=True)
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    print(f"MNIST train digits: {len(dataset)}; torch {torch.__version__}, {args.threads} thread(s), cpu")
    header = (f"{'model':<8} {'width':>5} {'batch':>5} {'img/step':>8} {'steps':>5} {'epochs':>6} "
              f"{'wall s':>7} {'loop img/s':>10} {'bare img/s':>10} {'ratio':>5}  final d_loss / g_loss")
    print(header)
    for model in models:
        spec = get_spec(model)
        config = with_overrides(spec.config_cls(), {"checkpoint_every": 10**6}, model=model)
        probe = spec.new_trainer(config, dataset, "cpu")
        per_step = probe.images_per_step()
        del probe
        if model in EPOCH_MODELS:
            batches = args.epochs * (len(dataset) // config.batch_size)
            steps = max(1, math.ceil(batches * config.batch_size / per_step))
        else:
            steps = args.steps
        session = new_session(model, config, runs_dir=runs_dir, name=f"bench-{model}-{stamp}", device="cpu",
                              dataset=dataset, steps=steps)
        start = time.perf_counter()
        status = train(session)
        wall = time.perf_counter() - start
        loop_ips = steps * per_step / wall
        bare_ips = bare_images_per_sec(model, config, dataset, args.bare_steps)
        last = session.run.path / "metrics.jsonl"
        final = last.read_text().splitlines()[-1] if last.exists() else "{}"
        row = json.loads(final)
        epochs = session.batcher.epoch_float
        print(f"{model:<8} {config.width:>5g} {config.batch_size:>5} {per_step:>8} {steps:>5} {epochs:>6.2f} "
              f"{wall:>7.1f} {loop_ips:>10.0f} {bare_ips:>10.0f} {loop_ips / bare_ips:>5.2f}  "
              f"{row.get('d_loss', float('nan')):.3f} / {row.get('g_loss', float('nan')):.3f}"
              + ("" if status == "finished" else f"  [{status}]"), flush=True)
        grids = sorted(session.run.samples_dir.glob("step-*.png"),
                       key=lambda path: int(path.stem.split("-")[1]))
        if model in EPOCH_MODELS:
            print(f"         grids: {', '.join(str(g) for g in grids)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

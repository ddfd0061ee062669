"""Training speed of the translation models at their CPU defaults, through the real training loop.

    GM_DATA_DIR=/work/shared/data python -m bench.translation_throughput [--steps 40] [--threads 1]

For each model: seconds per step through gm's loop (metrics log, sample grids and checkpoints on,
as a user's run has them) and through a bare reference (the same trainer's train_step in a plain
Python loop on batches drawn beforehand); the ratio loop/bare is what the loop costs. Images/s counts
every image a step consumes (batch_size of every domain). The shipped runs' training time follows
from seconds/step x steps (BENCHMARKS.md, "Translation").
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time

import torch

from gm.config import with_overrides
from gm.data import load_dataset, make_batcher
from gm.registry import get_spec
from gm.runs.loop import new_session, train

MODELS = ("cyclegan", "stargan", "cyclegan-digits", "stargan-digits")


def bare_seconds_per_step(model: str, config, dataset, steps: int) -> tuple[float, int]:
    """(seconds per step of train_step alone, domains a step trains on)."""
    spec = get_spec(model)
    trainer = spec.new_trainer(config, dataset, "cpu")
    batcher = make_batcher(dataset, config.batch_size, config.seed, torch.device("cpu"),
                           with_labels=trainer.wants_labels, with_factor_classes=trainer.wants_factor_classes,
                           domains=config.domain_split())
    batches = [batcher.draw() for _ in range(steps + 1)]
    trainer.train_step(batches[0])   # warm-up
    start = time.perf_counter()
    for batch in batches[1:]:
        trainer.train_step(batch)
    return (time.perf_counter() - start) / steps, len(trainer.batch_domains())


def loop_seconds_per_step(model: str, config, steps: int, data_dir: str | None) -> float:
    with tempfile.TemporaryDirectory() as runs:
        session = new_session(model, config, runs_dir=runs, name="bench", device="cpu", steps=steps,
                              data_dir=data_dir)
        start = time.perf_counter()
        train(session)
        return (time.perf_counter() - start) / steps


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.translation_throughput", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--models", default=",".join(MODELS))
    p.add_argument("--data-dir")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    for model in args.models.split(","):
        spec = get_spec(model)
        config = with_overrides(spec.config_cls(), {"log_every": 10, "sample_every": max(1, args.steps // 2),
                                                    "checkpoint_every": args.steps}, model=model)
        dataset = load_dataset(spec.dataset, args.data_dir)
        bare, domains = bare_seconds_per_step(model, config, dataset, args.steps)
        loop = loop_seconds_per_step(model, config, args.steps, args.data_dir)
        print(json.dumps({"model": model, "width": config.width, "batch_per_domain": config.batch_size,
                          "threads": args.threads, "loop_s_per_step": round(loop, 4),
                          "bare_s_per_step": round(bare, 4), "loop_over_bare": round(loop / bare, 3),
                          "images_per_s": round(config.batch_size * domains / loop, 1)}))
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())

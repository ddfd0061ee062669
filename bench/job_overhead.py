"""Job manager overhead: a run driven by the JobManager in a worker thread vs the same run in a
plain foreground loop, in the same process with the same steps, repeats interleaved.

    OMP_NUM_THREADS=1 python -m bench.job_overhead

Foreground: ``new_session`` + ``train`` in the main thread. Job: ``JobManager.start_run`` + ``wait``
in the main thread while a worker thread trains. Both build a fresh run of the same config from
the same in-memory dataset, and the clock covers everything from the call to the end (building
the trainer, training, logging, the final sample grid and checkpoint). Images/s = steps x batch /
that time; the ratio is job / foreground of the medians (target >= 0.95). The order of the pair
alternates per repeat so drift in a shared machine's load hits both sides alike. Images per CPU
second (process time, every thread) is printed too: on a busy machine it shows the overhead without
the noise of other processes' load.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from gm.config import with_overrides
from gm.registry import get_spec
from gm.runs.jobs import JobManager
from gm.runs.loop import new_session, train


def foreground(config, dataset, steps: int, runs_dir: Path, name: str) -> tuple[float, float]:
    start, cpu = time.perf_counter(), time.process_time()
    session = new_session("vae", config, runs_dir=runs_dir, name=name, device="cpu", steps=steps,
                          dataset=dataset)
    status = train(session)
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu
    assert status == "finished", status
    return steps * config.batch_size / seconds, steps * config.batch_size / cpu_seconds


def job(manager: JobManager, config, steps: int, runs_dir: Path, name: str) -> tuple[float, float]:
    start, cpu = time.perf_counter(), time.process_time()
    info = manager.start_run("vae", config, steps=steps, device="cpu", runs_dir=runs_dir, name=name)
    done = manager.wait(info.key)
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu
    assert done.status == "finished", done.error
    return steps * config.batch_size / seconds, steps * config.batch_size / cpu_seconds


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.job_overhead", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--width", type=float, default=0.5, help="VAE channel multiplier")
    p.add_argument("--batch-size", type=int, default=64)
    args = p.parse_args(argv)

    config = with_overrides(get_spec("vae").config_cls(), {"width": args.width, "batch_size": args.batch_size},
                            model="vae")
    manager = JobManager()
    dataset = manager.dataset("dsprites")  # rendered once; the foreground runs use the same tensor
    fg, bg, fg_cpu, bg_cpu = [], [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        runs = Path(tmp)
        foreground(config, dataset, 20, runs, "warmup-fg")  # allocator and oneDNN warm-up
        job(manager, config, 20, runs, "warmup-job")
        for r in range(args.repeats):
            pair = [("fg", lambda r=r: foreground(config, dataset, args.steps, runs, f"fg-{r}")),
                    ("job", lambda r=r: job(manager, config, args.steps, runs, f"job-{r}"))]
            for kind, run in pair if r % 2 == 0 else pair[::-1]:
                ips, cpu_ips = run()
                (fg if kind == "fg" else bg).append(ips)
                (fg_cpu if kind == "fg" else bg_cpu).append(cpu_ips)
                print(f"repeat {r}  {kind:<3}  {ips:8.1f} img/s  {cpu_ips:8.1f} img/CPU-s", file=sys.stderr)
    manager.shutdown()
    ratio = statistics.median(bg) / statistics.median(fg)
    print(f"vae width {args.width} batch {args.batch_size}, {args.steps} steps x {args.repeats} repeats, "
          f"torch threads {torch.get_num_threads()}")
    print(f"foreground  median {statistics.median(fg):.1f} img/s  (min {min(fg):.1f}, max {max(fg):.1f})")
    print(f"job thread  median {statistics.median(bg):.1f} img/s  (min {min(bg):.1f}, max {max(bg):.1f})")
    print(f"ratio job/foreground {ratio:.3f} (wall)  "
          f"{statistics.median(bg_cpu) / statistics.median(fg_cpu):.3f} (per CPU second)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

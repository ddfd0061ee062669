"""Training throughput on one process against several under torchrun, through `gm train` itself.

    GM_DATA_DIR=/work/shared/data python -m bench.ddp_throughput [--models vae,gan] [--steps 300]
    python -m bench.ddp_throughput --device cuda --gpus 1,2,8 --models ssgan --set width=1   # GPU box

CPU (the default): for each model, 1 process x T threads against T processes x 1 thread (gloo),
T = --threads (default: every core), the same global batch, the same steps. GPU (--device cuda):
1, 2, ... processes of one GPU each (NCCL); scaling efficiency = throughput(N) / (N x
throughput(1)).

Images/s is read from the run's own metrics.jsonl (steps x images per step over the logged
training time between the first and the last row), so the start-up of torchrun and of the
processes is not counted; every image of the global batch counts once.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from gm.runs.launch import torchrun_command


def images_per_sec(run: Path, images_per_step: int) -> float:
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    first, last = rows[0], rows[-1]
    return (last["step"] - first["step"]) * images_per_step / (last["time"] - first["time"])


def train(model: str, processes: int, threads: int, steps: int, device: str, extra: list[str],
          runs: Path, name: str) -> float:
    args = ["train", model, "--steps", str(steps), "--runs-dir", str(runs), "--name", name, "--quiet",
            "--device", device, "--set", "log_every=20", "--set", "sample_every=100000",
            "--set", "checkpoint_every=100000", *extra]
    cmd = [sys.executable, "-m", "gm", *args] if processes == 1 else torchrun_command(processes, args)
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    out = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"{model} on {processes} process(es) failed:\n{out.stderr[-3000:]}")
    config = json.loads((runs / name / "config.json").read_text())["config"]
    return images_per_sec(runs / name, int(config["batch_size"]) * _batches_per_step(model, config))


def _batches_per_step(model: str, config: dict) -> int:
    from gm.config import from_dict
    from gm.registry import get_spec
    spec = get_spec(model)
    return int(from_dict(spec.config_cls, config, model=spec.name, saved=True).batches_at(10_000))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.ddp_throughput", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", default="vae,gan")
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    p.add_argument("--gpus", default="1,2", help="process counts to time on GPUs (one GPU each)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--batch-size", type=int)
    args = p.parse_args(argv)
    extra = [x for kv in args.set for x in ("--set", kv)]
    if args.batch_size:
        extra += ["--batch-size", str(args.batch_size)]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        runs = Path(tmp)
        for model in args.models.split(","):
            if args.device == "cpu":
                t = args.threads
                one = train(model, 1, t, args.steps, "cpu", extra, runs, f"{model}-1x{t}")
                many = train(model, t, 1, args.steps, "cpu", extra, runs, f"{model}-{t}x1")
                rows.append(f"| {model} | 1 x {t} threads: {one:.0f} | {t} x 1 thread (gloo): {many:.0f} | "
                            f"{many / one:.2f} |")
            else:
                counts = [int(n) for n in args.gpus.split(",")]
                base = None
                for n in counts:
                    ips = train(model, n, 1, args.steps, "cuda", extra, runs, f"{model}-gpu{n}")
                    base = ips if base is None and n == 1 else base
                    eff = ips / (n * base) if base else float("nan")
                    rows.append(f"| {model} | {n} GPU(s) | {ips:.0f} | {eff:.2f} |")
    if args.device == "cpu":
        print("| model | images/s, one process | images/s, processes | processes / one |")
        print("| --- | --- | --- | --- |")
    else:
        print("| model | GPUs | images/s | scaling efficiency |")
        print("| --- | --- | --- | --- |")
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Training throughput of every model on one device (CUDA when present), through gm's own loop.

    python -m bench.device_throughput --device cuda --steps 60 [--full-ssgan] [--best] [--set k=v ...]

For each model: images/s of `train()` over `--steps` steps after a short warm-up run, at the
registry's default width; with --full-ssgan also SSGAN at the paper's width (width=1); --best turns
on bf16 autocast, channels_last and torch.compile (the warm-up run pays the compilation). Prints
one table; absolute numbers only. The same-process comparison against the compute limit and a
typical DataLoader script is ``python -m bench.train_throughput --device cuda --best``.
"""

from __future__ import annotations

import argparse
import tempfile
import time

import torch

from gm.config import parse_overrides, with_overrides
from gm.registry import MODELS, get_spec
from gm.runs.loop import new_session, train


def measure(model: str, device: str, steps: int, overrides: dict[str, str], runs_dir: str) -> float:
    spec = get_spec(model)
    cfg = with_overrides(spec.config_cls(), {"log_every": "20", "sample_every": "100000",
                                             "checkpoint_every": "100000", **overrides}, model=model)
    warm = new_session(model, cfg, runs_dir=runs_dir, device=device, steps=5)
    train(warm)
    session = new_session(model, cfg, runs_dir=runs_dir, device=device, steps=steps)
    if session.device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    status = train(session)
    if session.device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    assert status == "finished", status
    images = steps * session.trainer.images_per_step()
    return images / seconds


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--device", default="auto")
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--full-ssgan", action="store_true")
    parser.add_argument("--best", action="store_true", help="bf16, channels_last and torch.compile")
    parser.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()
    options = {**({"precision": "bf16", "channels_last": "true", "compile": "true"} if args.best else {}),
               **parse_overrides(args.sets)}
    runs = tempfile.mkdtemp(prefix="gm-device-bench-")
    rows = []
    for name in MODELS:
        rows.append((name, "default", measure(name, args.device, args.steps, options, runs)))
        print(f"{rows[-1][0]:<12} {rows[-1][1]:<8} {rows[-1][2]:10.0f} img/s", flush=True)
    if args.full_ssgan:
        rows.append(("ssgan", "width=1", measure("ssgan", args.device, args.steps, {**options, "width": "1"},
                                                 runs)))
        print(f"{'ssgan':<12} {'width=1':<8} {rows[-1][2]:10.0f} img/s", flush=True)
    name = torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"
    print(f"\noptions: {options or 'defaults (fp32, eager)'}")
    print(f"\n| model | width | images/s ({name}) |\n| --- | --- | --- |")
    for model, width, ips in rows:
        print(f"| {model} | {width} | {ips:.0f} |")


if __name__ == "__main__":
    main()

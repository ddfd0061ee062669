"""Does ControlVAE hold KL at its set point? controlvae at KL 8 and 14 beside a plain VAE on dSprites.

    python -m bench.controlvae_tracking --steps 3000

Trains each model from the same seed on the rendered orientation-0 dSprites (18,432 images) and
prints, per run: mean KL over the last 10% of steps, |mean KL - target|, final β and mean
reconstruction loss over the same steps. Targets (issue 3): |mean KL - target| <= 0.5 nats at both
set points, and better (lower) reconstruction at 14 than at 8; the plain VAE is the reference with
no controller. Runs on one CPU thread by default so figures are comparable across machines.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from gm.config import from_dict, to_dict
from gm.data.base import Batcher
from gm.data.dsprites import load_dsprites
from gm.registry import get_spec

TOLERANCE = 0.5   # nats


def train_one(model: str, overrides: dict, dataset, steps: int, device: torch.device,
              label: str) -> dict:
    """Train one model for `steps` steps; per-step KL, reconstruction and β as plain lists."""
    spec = get_spec(model)
    config = from_dict(spec.config_cls, {**to_dict(spec.config_cls()), **overrides}, model=model)
    trainer = spec.new_trainer(config, dataset, device)
    batcher = Batcher(dataset, config.batch_size, config.seed, device)
    trainer.train(True)
    trace = {"kl": [], "recon": [], "beta": []}
    start = time.perf_counter()
    for step in range(1, steps + 1):
        metrics = trainer.train_step(batcher.draw())
        for key in trace:
            trace[key].append(float(metrics[key]))
        if step % max(1, steps // 10) == 0:
            tail = slice(-max(1, steps // 10), None)
            kl = sum(trace["kl"][tail]) / len(trace["kl"][tail])
            print(f"  {label}: step {step}/{steps}  kl {kl:.2f}  beta {trace['beta'][-1]:.3f}  "
                  f"{time.perf_counter() - start:.0f}s", file=sys.stderr, flush=True)
    trace["seconds"] = time.perf_counter() - start
    return trace


def _run_in_process(job: tuple) -> dict:
    """One run in a worker process (--jobs > 1): its own dataset copy and thread setting."""
    model, overrides, steps, device, label, threads = job
    torch.set_num_threads(threads)
    return train_one(model, overrides, load_dsprites(render_only=True), steps, torch.device(device), label)


def summarise(trace: dict, target: float | None, length: int | None = None) -> dict:
    """Means over the last 10% of the first `length` steps (default: all of them).

    Training does not depend on the planned length (no schedule), so a prefix of a long run is
    exactly the shorter run: one trace answers "how long must a run be?".
    """
    length = length or len(trace["kl"])
    n = max(1, length // 10)
    kl = sum(trace["kl"][length - n:length]) / n
    recon = sum(trace["recon"][length - n:length]) / n
    return {"target": target, "mean_kl": kl, "error": abs(kl - target) if target is not None else None,
            "final_beta": trace["beta"][length - 1], "mean_recon": recon,
            "ms_per_step": 1000 * trace["seconds"] / len(trace["kl"])}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.controlvae_tracking", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=3000, help="training steps per run")
    p.add_argument("--targets", type=float, nargs="+", default=[8.0, 14.0], help="KL set points")
    p.add_argument("--width", type=float, default=1.0, help="channel multiplier (1 = the paper's VAE)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads per run")
    p.add_argument("--jobs", type=int, default=1,
                   help="runs trained at once in separate processes (same results; ms/step then "
                        "reflects the shared CPU)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="extra controlvae config values (e.g. beta_min=1)")
    p.add_argument("--no-vae", action="store_true", help="skip the plain VAE reference run")
    p.add_argument("--out", type=Path, help="write the per-step traces and the summary as JSON here")
    args = p.parse_args(argv)
    if args.steps < 10:
        p.error("--steps must be at least 10 (the summary averages the last 10%)")

    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    dataset = load_dsprites(render_only=True)
    common = {"width": args.width, "batch_size": args.batch_size, "seed": args.seed}
    extra = dict(pair.split("=", 1) for pair in args.set)
    runs: list[tuple[str, str, dict, float | None]] = [
        (f"controlvae kl={t:g}", "controlvae", {**common, **extra, "kl_target": t}, t) for t in args.targets]
    if not args.no_vae:
        runs.append(("vae", "vae", common, None))

    print(f"dSprites (rendered, {len(dataset)} images), {args.steps} steps per run, batch "
          f"{args.batch_size}, width {args.width}, seed {args.seed}, {args.threads} thread(s) on "
          f"{args.device}, {args.jobs} run(s) at a time", flush=True)
    if args.jobs > 1:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor
        jobs = [(model, overrides, args.steps, args.device, label, args.threads)
                for label, model, overrides, _ in runs]
        with ProcessPoolExecutor(args.jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
            traces = dict(zip([r[0] for r in runs], pool.map(_run_in_process, jobs)))
    else:
        traces = {label: train_one(model, overrides, dataset, args.steps, device, label)
                  for label, model, overrides, _ in runs}
    results = {label: summarise(traces[label], target) for label, _, _, target in runs}

    print("\n| run | mean KL (last 10%) | abs(KL - target) | final β | mean recon (last 10%) | ms/step |")
    print("| --- | --- | --- | --- | --- | --- |")
    for label, r in results.items():
        err = f"{r['error']:.2f}" if r["error"] is not None else "—"
        print(f"| {label} | {r['mean_kl']:.2f} | {err} | {r['final_beta']:.3f} | {r['mean_recon']:.1f} "
              f"| {r['ms_per_step']:.0f} |")
    targets = [(label, t) for label, _, _, t in runs if t is not None]
    lengths = sorted({max(10, args.steps * k // 8) for k in range(1, 9)})
    print("\nabs(mean KL - target) over the last 10% of a run stopped at N steps (same trajectory):")
    print("| N | " + " | ".join(label for label, _ in targets) + " |")
    print("| --- |" + " --- |" * len(targets))
    for n in lengths:
        cells = [f"{summarise(traces[label], t, n)['error']:.2f}" for label, t in targets]
        print(f"| {n} | " + " | ".join(cells) + " |")
    tracked = [r["error"] <= TOLERANCE for r in results.values() if r["error"] is not None]
    print(f"\ntracking within {TOLERANCE} nats: {sum(tracked)}/{len(tracked)} set points")
    recons = {r["target"]: r["mean_recon"] for r in results.values() if r["target"] is not None}
    if 8.0 in recons and 14.0 in recons:
        better = recons[14.0] < recons[8.0]
        print(f"reconstruction at KL 14 vs 8: {recons[14.0]:.1f} vs {recons[8.0]:.1f} "
              f"({'better' if better else 'NOT better'} at 14)")
    if args.out:
        args.out.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()},
                                        "results": results, "traces": traces}))
    return 0


if __name__ == "__main__":
    sys.exit(main())

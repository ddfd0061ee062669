"""Peak memory (RSS) of gm's FID: 10,000 + 10,000 images with classifier features, and Inception FID
at growing n, each `python -m gm fid ...` in its own process, its peak read from the kernel (wait4).

    GM_DATA_DIR=/work/shared/data OMP_NUM_THREADS=1 python -m bench.fid_memory

Cases (run folders are copies of shipped pretrained runs, so nothing is recorded in the checkout):

- the bare start: imports alone, then imports, the Inception build and one batch (what every case pays);
- classifier FID, `gan` run vs `wgan` run, n = 10,000 each (both halves sampled and streamed);
- classifier FID, the dSprites `vae` run vs 10,000 real dSprites images (real half computed and cached);
- Inception FID, `gan` run vs `wgan` run at each --inception-n (both halves), seeded random weights;
- optionally (--inception-one-half N) Inception FID of N images of the `gan` run against a statistics
  file, the largest single half (a real 10,000 x 2 Inception FID takes about an hour on one thread
  here; the halves run one after the other, so the peak is the larger half's, not their sum).

Streaming is what keeps the peak flat: a run is sampled 250 images at a time, images are fed to the
extractor 16 at a time (50 on a GPU) and resized to 299x299 per batch, and features go straight into running sums
(mean and a 2048 x 2048 covariance), so nothing grows with n except, below 2,048 images, the kept
feature rows of the Fréchet shortcut (at most 2048 x 2048 float64, 34 MB).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PRETRAINED = REPO / "checkpoints" / "pretrained"

IMPORTS_ONLY = "import torch, torchvision, pytorch_fid.inception, gm.cli, gm.metrics.evaluate"

BUILD_ONLY = """
import sys, torch
from gm.metrics.inception import build_inception, load_state_dict_file, InceptionFeatures
import gm.metrics.evaluate, gm.cli
ext = InceptionFeatures(build_inception(load_state_dict_file(sys.argv[1])), "-", torch.device("cpu"))
ext(torch.rand(ext.batch_size, 1, 28, 28))   # one batch through: the activations' peak
"""


def peak_rss(cmd: list[str], env: dict[str, str], tmp: Path) -> tuple[float, float, str]:
    """(peak RSS in MiB, seconds, last stdout line) of one process: ru_maxrss of that child from wait4."""
    out_path, err_path = tmp / "stdout.txt", tmp / "stderr.txt"
    t = time.perf_counter()
    with open(out_path, "w") as out, open(err_path, "w") as err:
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=out, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)   # reaped here; Popen must not wait again
    seconds = time.perf_counter() - t
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd[:6])} failed:\n{err_path.read_text()[-3000:]}")
    lines = out_path.read_text().strip().splitlines()
    return usage.ru_maxrss / 1024, seconds, lines[-1] if lines else ""


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.fid_memory")
    p.add_argument("--n", type=int, default=10_000, help="images per half for classifier FID (default 10,000)")
    p.add_argument("--inception-n", type=int, nargs="*", default=[50, 200, 800],
                   help="images per half for Inception FID, run vs run (default 50 200 800)")
    p.add_argument("--inception-one-half", type=int, help="also: Inception FID of this many images vs a stats file")
    args = p.parse_args(argv)

    import numpy as np
    import torch

    from gm.metrics.inception import random_state_dict

    tmp = Path(tempfile.mkdtemp(prefix="gm-fid-mem-"))
    env = {**os.environ, "PYTHONPATH": str(REPO), "GM_CACHE_DIR": str(tmp / "cache")}
    rows: list[tuple[str, float, float, str]] = []
    try:
        runs = {}
        for name in ("gan", "wgan", "vae"):
            runs[name] = tmp / name
            shutil.copytree(PRETRAINED / name, runs[name], ignore=shutil.ignore_patterns("eval.jsonl"))
        weights = tmp / "random-inception.pth"
        torch.save(random_state_dict(seed=0), weights)
        gm = [sys.executable, "-m", "gm", "fid"]
        common = ["--device", "cpu", "--no-record", "--quiet"]

        def measure(label: str, cmd: list[str]) -> None:
            mib, secs, last = peak_rss(cmd, env, tmp)
            rows.append((label, mib, secs, last))
            print(f"{label}: {mib:,.0f} MiB peak, {secs:.0f} s, last line {last!r}", file=sys.stderr, flush=True)

        measure("start-up and imports only", [sys.executable, "-c", IMPORTS_ONLY])
        measure("start-up, imports, Inception build, one batch", [sys.executable, "-c", BUILD_ONLY, str(weights)])
        measure(f"classifier FID, gan run vs wgan run, {args.n:,} + {args.n:,}",
                gm + [str(runs["gan"]), str(runs["wgan"]), "--n", str(args.n), "--features", "classifier"] + common)
        measure(f"classifier FID, dSprites vae run vs {args.n:,} real (real half computed)",
                gm + [str(runs["vae"]), "--n", str(args.n), "--features", "classifier"] + common)
        for k in args.inception_n:
            measure(f"Inception FID, gan run vs wgan run, {k:,} + {k:,}",
                    gm + [str(runs["gan"]), str(runs["wgan"]), "--n", str(k), "--inception-weights", str(weights)]
                    + common)
        if args.inception_one_half:
            k = args.inception_one_half
            stats = tmp / "other-half.npz"
            rng = np.random.default_rng(0)
            feats = np.abs(rng.normal(size=(4096, 2048)))
            np.savez(stats, mu=feats.mean(0), sigma=np.cov(feats, rowvar=False))
            measure(f"Inception FID, gan run ({k:,} images) vs a statistics file",
                    gm + [str(runs["gan"]), str(stats), "--n", str(k), "--inception-weights", str(weights)] + common)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    print(f"# peak RSS per process (ru_maxrss); torch threads: OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}")
    print("| case | peak RSS | seconds |")
    print("| --- | --- | --- |")
    for label, mib, secs, _ in rows:
        print(f"| {label} | {mib:,.0f} MiB | {secs:.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""FID throughput on this CPU: gm's Inception FID against pytorch-fid's own CLI, and classifier FID.

    OMP_NUM_THREADS=1 python -m bench.fid_throughput --n 100

Both Inception runs use pytorch-fid's InceptionV3 with the same seeded random weights (the real
weights cannot be downloaded here), on the same 2n MNIST digits (n train vs n test digits from the
offline MNIST sample, else synthetic blobs):

- pytorch-fid: the images written as PNG folders, `python -m pytorch_fid dirA dirB --dims 2048` in a
  subprocess, its weight download replaced by the random state dict (it reads PNGs as RGB);
- gm: `python -m gm fid a.npz b.npz --inception-weights random.pth` in a subprocess (images fed in
  memory), and the same on the PNG folders.

Each is timed end to end (process start, imports, model build, features, Fréchet distance); the two
FIDs must agree to 1e-4 relative. Then the classifier FID of n generated-like digits against 5,000
real ones (`--features classifier`), with the real statistics computed (cache miss) and then cached.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"

PYTORCH_FID_WITH_RANDOM_WEIGHTS = """
import sys, torch
import pytorch_fid.inception as pfi
state = torch.load(sys.argv[1], map_location="cpu", weights_only=True)
pfi.load_state_dict_from_url = lambda *a, **k: state   # no download: the same random weights as gm
from pytorch_fid.fid_score import main
sys.argv = ["pytorch_fid"] + sys.argv[2:]
main()
"""


def _digits(n: int) -> tuple[np.ndarray, np.ndarray, str]:
    if (SHARED_DATA / "MNIST" / "raw").is_dir() and n <= 1000:
        from gm.data.mnist import load_mnist
        train = load_mnist(SHARED_DATA, train=True, download=False).images[:n, 0].numpy()
        test = load_mnist(SHARED_DATA, train=False, download=False).images[:n, 0].numpy()
        return train, test, f"{n} MNIST train vs {n} MNIST test digits"
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:28, 0:28]

    def blobs(k: int) -> np.ndarray:
        c = rng.uniform(8, 20, size=(k, 2, 1, 1))
        return (255 * np.exp(-((yy - c[:, 0]) ** 2 + (xx - c[:, 1]) ** 2) / 20)).astype(np.uint8)
    return blobs(n), blobs(n), f"{n} vs {n} synthetic blobs"


def _run(cmd: list[str], env: dict[str, str]) -> tuple[float, str]:
    t = time.perf_counter()
    out = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - t
    if out.returncode != 0:
        raise SystemExit(f"{' '.join(cmd[:4])} failed:\n{out.stderr[-2000:]}")
    return elapsed, out.stdout


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.fid_throughput")
    p.add_argument("--n", type=int, default=100, help="images per side for Inception FID (default 100)")
    p.add_argument("--classifier-n", type=int, default=5000, help="images per side for classifier FID")
    p.add_argument("--skip-pytorch-fid", action="store_true")
    args = p.parse_args(argv)

    import torch
    from PIL import Image

    from gm.metrics.inception import random_state_dict

    env = {**os.environ, "PYTHONPATH": str(REPO)}
    threads = env.get("OMP_NUM_THREADS", "default")
    a, b, what = _digits(args.n)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        env["GM_CACHE_DIR"] = str(tmp / "cache")
        weights = tmp / "random.pth"
        torch.save(random_state_dict(seed=0), weights)
        for name, imgs in (("a", a), ("b", b)):
            np.savez(tmp / f"{name}.npz", images=imgs)
            (tmp / name).mkdir()
            for i, img in enumerate(imgs):
                Image.fromarray(img).save(tmp / name / f"{i:05d}.png")

        gm_cmd = [sys.executable, "-m", "gm", "fid", "--inception-weights", str(weights), "--device", "cpu",
                  "--quiet"]
        t_npz, out = _run(gm_cmd + [str(tmp / "a.npz"), str(tmp / "b.npz")], env)
        ours = float(out.strip().splitlines()[-1])
        rows.append(("gm fid, in-memory (.npz)", t_npz, 2 * args.n / t_npz, ours))
        t_png, out = _run(gm_cmd + [str(tmp / "a"), str(tmp / "b")], env)
        ours_png = float(out.strip().splitlines()[-1])
        rows.append(("gm fid, PNG folders", t_png, 2 * args.n / t_png, ours_png))
        theirs = None
        if not args.skip_pytorch_fid:
            t_ref, out = _run([sys.executable, "-c", PYTORCH_FID_WITH_RANDOM_WEIGHTS, str(weights), str(tmp / "a"),
                               str(tmp / "b"), "--dims", "2048", "--device", "cpu"], env)
            theirs = float(re.search(r"FID:\s+(\S+)", out).group(1))
            rows.append(("pytorch-fid CLI, PNG folders", t_ref, 2 * args.n / t_ref, theirs))

        # Feature extraction alone, in this process (no start-up, build or Fréchet distance).
        from gm.metrics.features import ImageSet, extract
        from gm.metrics.inception import random_inception
        net = random_inception(seed=0)
        both = ImageSet(torch.from_numpy(np.concatenate([a, b])[:, None]), 255.0)
        t = time.perf_counter()
        extract(net, both.batches(net.batch_size))
        t_feat = time.perf_counter() - t
        rows.append(("gm Inception features only (in process, batch 50)", t_feat, 2 * args.n / t_feat, float("nan")))

        # Classifier FID: n digits against 5,000 real training digits (cache miss, then hit).
        if (SHARED_DATA / "MNIST" / "raw").is_dir():
            from gm.data.mnist import load_mnist
            test = load_mnist(SHARED_DATA, train=False, download=False).images[:, 0].numpy()
            k = args.classifier_n
            fake = test[np.arange(k) % len(test)]
            np.savez(tmp / "fake.npz", images=fake)
            cls_cmd = [sys.executable, "-m", "gm", "fid", str(tmp / "fake.npz"), "--features", "classifier",
                       "--dataset", "mnist", "--n", str(k), "--data-dir", str(SHARED_DATA), "--device", "cpu",
                       "--quiet"]
            t_miss, out = _run(cls_cmd, env)
            rows.append((f"gm classifier FID, {k} vs {k} real (real stats computed)", t_miss, 2 * k / t_miss,
                         float(out.strip().splitlines()[-1])))
            t_hit, out = _run(cls_cmd, env)
            rows.append((f"gm classifier FID, {k} vs cached real stats", t_hit, k / t_hit,
                         float(out.strip().splitlines()[-1])))

    print(f"# {what}; OMP_NUM_THREADS={threads}; random Inception weights (seed 0)")
    print("| run | end-to-end s | images/s | FID |")
    print("| --- | --- | --- | --- |")
    for name, secs, rate, value in rows:
        print(f"| {name} | {secs:.1f} | {rate:.1f} | {'-' if value != value else f'{value:.6g}'} |")
    if theirs is not None:
        rel = abs(ours - theirs) / max(abs(theirs), 1e-300)
        print(f"\nrelative difference gm vs pytorch-fid: {rel:.2e} (must be <= 1e-4)")
        print(f"speed-up gm (in-memory) vs pytorch-fid CLI: {rows[2][1] / t_npz:.2f}x")
        if rel > 1e-4:
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

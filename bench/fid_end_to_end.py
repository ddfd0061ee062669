"""FID from a run folder to the number: gm against pytorch-fid's CLI on the same images, interleaved.

    GM_DATA_DIR=/work/shared/data OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1 \\
        python -m bench.fid_end_to_end --n 300 --repeats 3

The run folder is a copy of a shipped pretrained run (default `checkpoints/pretrained/gan`); the real
images are n MNIST training digits chosen as gm chooses them (seed 0). Untimed set-up: gm's real
statistics cache is filled (`python -m gm stats`), the real digits are written as PNGs and
pytorch-fid's `--save-stats` file is made from them. Then, per repeat and in a rotating order:

- **gm**: `python -m gm fid RUN --n N` (samples the run, Inception, cached real statistics, Fréchet);
- **pytorch-fid, real .npz** (like for like: real statistics precomputed): the usual script — a
  Python process samples the run with gm's API and saves the n images as PNGs — then
  `python -m pytorch_fid GEN_DIR real_stats.npz`;
- **pytorch-fid, two PNG folders**: the same sampling, then `python -m pytorch_fid GEN_DIR REAL_DIR`
  (real features recomputed every time, as when no statistics file is kept).

Every variant is timed from the first process start to the printed number. The FIDs must agree
within 1e-4 relative (checked in this run; exit 1 otherwise). Both tools get the same Inception
weights: the real file when `--weights` names it, else seeded random weights in the same layout (the
real weights cannot be downloaded on an offline machine; the architecture, and so the cost, is the
same). pytorch-fid's weight download is replaced by that file, nothing else of it is touched.

Then, in this process: where gm's time goes (start-up and imports, model build, generation, resize,
Inception, statistics, Fréchet), where pytorch-fid's goes (its sqrtm-based Fréchet distance on the
same statistics), and the Inception forward alone, pytorch-fid's InceptionV3 against gm's folded
one on the same batches (the per-image ratio: what end-to-end tends to at large n).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

PYTORCH_FID = """
import sys, torch
import pytorch_fid.inception as pfi
state = torch.load(sys.argv[1], map_location="cpu", weights_only=True)
pfi.load_state_dict_from_url = lambda *a, **k: state   # the weights file given, instead of a download
from pytorch_fid.fid_score import main
sys.argv = ["pytorch_fid"] + sys.argv[2:]
main()
"""

# What a pytorch-fid user runs first: sample the run (gm's API, gm's seeds) into a folder of PNGs.
SAMPLE_TO_PNGS = """
import sys
from pathlib import Path
from PIL import Image
import gm
from gm.metrics.sources import sample_batches
run, n, out = Path(sys.argv[1]), int(sys.argv[2]), Path(sys.argv[3])
out.mkdir(parents=True)
model = gm.load_model(run, "cpu")
i = 0
for batch in sample_batches(model, n, seed=0):
    for img in (batch[:, 0] * 255).round().byte().numpy():
        Image.fromarray(img).save(out / f"{i:05d}.png")
        i += 1
"""


def _run(cmd: list[str], env: dict[str, str]) -> tuple[float, str]:
    t = time.perf_counter()
    out = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - t
    if out.returncode != 0:
        raise SystemExit(f"{' '.join(cmd[:5])} failed:\n{out.stderr[-3000:]}")
    return elapsed, out.stdout


def _pytorch_fid_value(stdout: str) -> float:
    return float(re.search(r"FID:\s+(\S+)", stdout).group(1))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.fid_end_to_end")
    p.add_argument("--n", type=int, default=300, help="generated images, and real images (default 300)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--run", default=str(REPO / "checkpoints" / "pretrained" / "gan"), help="run folder to copy")
    p.add_argument("--weights", help="the real pt_inception-2015-12-05-6726825d.pth (default: seeded random weights)")
    p.add_argument("--inception-images", type=int, default=64, help="images for the Inception-only comparison")
    p.add_argument("--skip-two-folders", action="store_true", help="leave out the slowest variant")
    p.add_argument("--json", help="also write every figure to this file")
    args = p.parse_args(argv)

    import numpy as np
    import torch

    from bench.harness import Variant, compare
    from gm.metrics.inception import random_state_dict
    from gm.metrics.sources import real_images

    threads = os.environ.get("OMP_NUM_THREADS")
    torch.set_num_threads(int(threads) if threads else torch.get_num_threads())
    data_dir = os.environ.get("GM_DATA_DIR")
    n = args.n
    tmp = Path(tempfile.mkdtemp(prefix="gm-fid-e2e-"))
    env = {**os.environ, "PYTHONPATH": str(REPO), "GM_CACHE_DIR": str(tmp / "cache")}
    try:
        run = tmp / "run"
        shutil.copytree(args.run, run, ignore=shutil.ignore_patterns("eval.jsonl"))
        if args.weights:
            weights = Path(args.weights)
        else:
            weights = tmp / "random-inception.pth"
            torch.save(random_state_dict(seed=0), weights)

        # ---- untimed set-up: gm's cache, the real PNGs, pytorch-fid's statistics file ----
        real = real_images("mnist", n, 0, "train", data_dir)
        real_dir = tmp / "real"
        real_dir.mkdir()
        from PIL import Image
        for i, img in enumerate(real.images.data[:, 0].numpy()):
            Image.fromarray(img).save(real_dir / f"{i:05d}.png")
        dd = ["--data-dir", data_dir] if data_dir else []
        _run([sys.executable, "-m", "gm", "stats", "mnist", "--n", str(n), "--features", "inception",
              "--inception-weights", str(weights), "--device", "cpu", "--quiet", *dd], env)
        real_npz = tmp / "real_stats.npz"
        _run([sys.executable, "-c", PYTORCH_FID, str(weights), "--save-stats", str(real_dir), str(real_npz),
              "--device", "cpu"], env)

        counter = iter(range(10**6))

        def gm_fid() -> dict:
            secs, out = _run([sys.executable, "-m", "gm", "fid", str(run), "--n", str(n), "--inception-weights",
                              str(weights), "--device", "cpu", "--no-record", "--quiet", *dd], env)
            return {"value": secs, "fid": float(out.strip().splitlines()[-1])}

        def pytorch_fid(reference: Path):
            def go() -> dict:
                gen = tmp / f"gen-{next(counter)}"
                t_sample, _ = _run([sys.executable, "-c", SAMPLE_TO_PNGS, str(run), str(n), str(gen)], env)
                t_fid, out = _run([sys.executable, "-c", PYTORCH_FID, str(weights), str(gen), str(reference),
                                   "--device", "cpu"], env)
                shutil.rmtree(gen)
                return {"value": t_sample + t_fid, "fid": _pytorch_fid_value(out), "sample_s": t_sample,
                        "pytorch_fid_s": t_fid}
            return go

        variants = [Variant("pytorch-fid, real .npz", pytorch_fid(real_npz), warmup=0),
                    Variant("gm fid", gm_fid, warmup=0)]
        if not args.skip_two_folders:
            variants.insert(1, Variant("pytorch-fid, two PNG folders", pytorch_fid(real_dir), warmup=0))
        e2e = compare(variants, repeats=args.repeats, higher_is_better=False)

        # ---- where gm's time goes (in process, the same steps fid() takes) ----
        split = _gm_split(run, n, weights, data_dir, tmp / "cache", env)
        # ---- pytorch-fid's Fréchet distance (scipy sqrtm) on the same statistics ----
        split["pytorch-fid Fréchet (sqrtm) on the same statistics"] = _sqrtm_seconds(split.pop("_stats"))
        # ---- Inception forward alone, same batches ----
        inc, max_rel = _inception_only(weights, real, args.inception_images, args.repeats)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    gm_values = [x["fid"] for x in e2e.extras["gm fid"]]
    ok = True
    lines = [f"# {n} generated ({Path(args.run).name} run, seed 0) vs {n} real MNIST training digits; "
             f"torch threads {torch.get_num_threads()} (OMP_NUM_THREADS={threads}); "
             f"{'weights ' + str(args.weights) if args.weights else 'seeded random Inception weights'}",
             "", "End to end, seconds (lower is better; ratio > 1: faster than the first row):", "",
             e2e.table(unit="s", reference="pytorch-fid, real .npz"), ""]
    for v in variants:
        fids = [x["fid"] for x in e2e.extras[v.name]]
        rel = max(abs(f - gm_values[0]) / abs(gm_values[0]) for f in fids)
        ok &= rel <= 1e-4
        extra = ""
        if "sample_s" in e2e.extras[v.name][0]:
            extra = (f"; sampling to PNGs {np.median([x['sample_s'] for x in e2e.extras[v.name]]):.1f} s, "
                     f"pytorch-fid {np.median([x['pytorch_fid_s'] for x in e2e.extras[v.name]]):.1f} s (medians)")
        lines.append(f"- {v.name}: FID {fids[0]:.8g}, largest relative difference to gm {rel:.1e}{extra}")
    lines += ["", f"gm fid vs pytorch-fid with real .npz (like for like): "
              f"{e2e.ratio('gm fid', 'pytorch-fid, real .npz'):.2f}x faster"]
    if not args.skip_two_folders:
        lines.append(f"gm fid vs pytorch-fid with two PNG folders: "
                     f"{e2e.ratio('gm fid', 'pytorch-fid, two PNG folders'):.2f}x faster")
    lines += ["", "Where the time goes (seconds, one in-process pass of gm's steps):", "",
              "| step | seconds |", "| --- | --- |"]
    lines += [f"| {k} | {v:.2f} |" for k, v in split.items()]
    lines += ["", f"Inception forward alone, {args.inception_images} digits, images/s:", "",
              inc.table(unit="img/s", reference="pytorch-fid InceptionV3"),
              "", f"largest feature difference gm vs pytorch-fid's model: {max_rel:.1e} of the "
              f"largest feature"]
    print("\n".join(lines))
    if args.json:
        Path(args.json).write_text(json.dumps({"e2e": json.loads(e2e.to_json()), "split": split,
                                               "inception": json.loads(inc.to_json())}, indent=1))
    if not ok:
        print("FID values disagree by more than 1e-4 relative", file=sys.stderr)
    return 0 if ok else 1


def _gm_split(run: Path, n: int, weights: Path, data_dir: str | None, cache: Path, env: dict) -> dict:
    """gm fid's steps, each timed on its own (start-up measured as a bare import in a subprocess)."""
    import torch
    import torch.nn.functional as F

    import gm
    from gm.metrics.evaluate import _rebatch
    from gm.metrics.features import file_sha256
    from gm.metrics.frechet import Moments, frechet_distance
    from gm.metrics.inception import InceptionFeatures, build_inception, load_state_dict_file
    from gm.metrics.sources import sample_batches
    from gm.metrics.stats import load_cached, make_key

    out: dict = {}
    t, _ = _run([sys.executable, "-c", "import gm.cli, gm.metrics.evaluate, gm.metrics.inception, torch, torchvision, "
                 "pytorch_fid.inception"], env)
    out["process start-up and imports (subprocess)"] = t
    t = time.perf_counter()
    ext = InceptionFeatures(build_inception(load_state_dict_file(weights)), file_sha256(weights), torch.device("cpu"))
    out["Inception build (read weights, fold BatchNorm)"] = time.perf_counter() - t
    t = time.perf_counter()
    model = gm.load_model(run, "cpu")
    batches = list(_rebatch(sample_batches(model, n, 0), ext.batch_size))
    out[f"generation ({n} images, run loaded)"] = time.perf_counter() - t
    t = time.perf_counter()
    with torch.inference_mode():
        for b in batches:
            F.interpolate(b, size=(299, 299), mode="bilinear", align_corners=False)
    resize = time.perf_counter() - t
    t = time.perf_counter()
    feats = [ext(b) for b in batches]
    out["resize to 299 (bilinear)"] = resize
    out["Inception (folded network, resize excluded)"] = time.perf_counter() - t - resize
    t = time.perf_counter()
    mom = Moments()
    for f in feats:
        mom.add(f)
    mu, sigma = mom.mean_and_cov()
    factor = mom.factor()
    out["statistics (streamed mean, covariance)"] = time.perf_counter() - t
    from gm.metrics.sources import real_images
    t = time.perf_counter()
    real = real_images("mnist", n, 0, "train", data_dir)
    ref = load_cached(make_key("mnist", "train", n, 0, ext, real.fingerprint), cache / "stats")
    assert ref is not None, "the real statistics should be cached by the set-up"
    out["real statistics from the cache (select, hash, read)"] = time.perf_counter() - t
    t = time.perf_counter()
    frechet_distance(mu, sigma, ref.mu, ref.sigma, factor1=factor)
    out["Fréchet distance"] = time.perf_counter() - t
    out["_stats"] = (mu, sigma, ref.mu, ref.sigma)
    return out


def _sqrtm_seconds(stats) -> float:
    import warnings

    from pytorch_fid.fid_score import calculate_frechet_distance
    t = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")      # SciPy 1.17 deprecates sqrtm's `disp`, which pytorch-fid passes
        calculate_frechet_distance(*stats)
    return time.perf_counter() - t


def _inception_only(weights: Path, real, count: int, repeats: int):
    """pytorch-fid's InceptionV3 fed as its CLI feeds it (RGB floats, batch 50) against gm's extractor."""
    import numpy as np
    import torch

    from bench.harness import Variant, compare
    from gm.metrics.inception import InceptionFeatures, build_inception, load_state_dict_file

    state = load_state_dict_file(weights)
    ref_model = build_inception(state)
    ours = InceptionFeatures(build_inception(state), "bench", torch.device("cpu"))
    imgs = real.images.data[:count]

    def ref_features() -> np.ndarray:
        out = []
        with torch.inference_mode():
            for s in range(0, count, 50):
                x = imgs[s:s + 50].float().div(255).expand(-1, 3, -1, -1).contiguous()
                out.append(ref_model(x)[0].flatten(1).double().numpy())
        return np.concatenate(out)

    def our_features() -> np.ndarray:
        return np.concatenate([ours(imgs[s:s + ours.batch_size].float().div(255))
                               for s in range(0, count, ours.batch_size)])

    def rate(fn):
        def go() -> float:
            t = time.perf_counter()
            fn()
            return count / (time.perf_counter() - t)
        return go

    result = compare([Variant("pytorch-fid InceptionV3", rate(ref_features)), Variant("gm", rate(our_features))],
                     repeats=repeats)
    a, b = ref_features(), our_features()
    return result, float(np.abs(a - b).max() / np.abs(a).max())


if __name__ == "__main__":
    sys.exit(main())

"""Latency of one 64x64 VAE decode (and its PNG encode) on the CPU: what a live latent slider costs.

    python -m bench.decode_latency

Times :func:`gm.vae_views.decode` of a single code and :func:`gm.vae_views.decode_png` (decode, grid,
4x upscale, PNG) for the paper-size VAE, after a warm-up; prints the median and 95th percentile.
Target (issue 3): a decode well under 20 ms. Weights do not change the cost, so a freshly
initialised VAE is used unless --run points at a trained run folder.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import torch

from gm import vae_views
from gm.models.vae import VAE

BUDGET_MS = 20.0


def time_ms(fn, repeats: int) -> list[float]:
    out = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        out.append(1000 * (time.perf_counter() - start))
    return out


def describe(samples: list[float]) -> str:
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]
    return f"median {statistics.median(ordered):.2f} ms, p95 {p95:.2f} ms"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.decode_latency", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeats", type=int, default=200)
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    p.add_argument("--width", type=float, default=1.0, help="channel multiplier (1 = the paper's VAE)")
    p.add_argument("--scale", type=int, default=4, help="PNG upscale factor (as a slider page shows it)")
    p.add_argument("--run", help="a vae/betavae/controlvae run folder to load instead of fresh weights")
    args = p.parse_args(argv)

    torch.set_num_threads(args.threads)
    if args.run:
        from gm import load_model
        model = load_model(args.run, device="cpu")
    else:
        torch.manual_seed(0)
        model = VAE(10, 1, args.width).eval()
    latent = vae_views.vae_of(model).latent_dim
    z = torch.randn(latent, generator=torch.Generator().manual_seed(0))

    for _ in range(20):  # warm-up: first calls allocate and pick kernels
        vae_views.decode_png(model, z, scale=args.scale)
    decode = time_ms(lambda: vae_views.decode(model, z), args.repeats)
    png = time_ms(lambda: vae_views.decode_png(model, z, scale=args.scale), args.repeats)

    print(f"64x64 decode, {args.threads} thread(s), width {args.width}, {args.repeats} repeats")
    print(f"decode:                 {describe(decode)}")
    print(f"decode + PNG (x{args.scale}):     {describe(png)}")
    ok = statistics.median(decode) < BUDGET_MS
    print(f"budget {BUDGET_MS:.0f} ms: {'met' if ok else 'MISSED'} "
          f"({statistics.median(decode) / BUDGET_MS:.2f} of the budget)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

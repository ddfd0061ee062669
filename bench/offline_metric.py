"""The disturbance table of the offline realism metric (gm.metrics.offline), as Markdown.

    GM_DATA_DIR=/work/shared/data python -m bench.offline_metric            # MNIST and dSprites, n = 1000
    python -m bench.offline_metric --dataset mnist --n 500 --compare-classifier

For each dataset: the Fréchet distance of held-out real images under Gaussian noise, Gaussian blur,
implanted black rectangles, swirl, salt-and-pepper noise and contamination with the other dataset's
images, at six levels (0 = clean) against the statistics of other held-out real images; then every
real subset of 1, 3 (dSprites: 2) or all classes against synthetic grey blobs and, when the shipped
`wgan` run is there, its samples (it drew one grey blob everywhere when this was written).
`--compare-classifier` prints the same table on the old classifier-FID features, which fail it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import torch


def _extra(dataset: str, n: int) -> dict[str, torch.Tensor]:
    if dataset != "mnist":
        return {}
    try:
        import gm
        model = gm.load_model("wgan")
    except Exception:  # no shipped run in this checkout
        return {}
    return {"wgan (shipped run, seed 0)": model.sample(n, seed=0).detach().float().clamp(0, 1)}


def main(argv: list[str] | None = None) -> int:
    from gm.metrics.validate import disturbance_table, format_table

    p = argparse.ArgumentParser(prog="python -m bench.offline_metric", description=__doc__.split("\n")[0])
    p.add_argument("--dataset", choices=("mnist", "dsprites"), action="append", help="default both")
    p.add_argument("--n", type=int, default=1000, help="images per set (default 1000)")
    p.add_argument("--data-dir", default=os.environ.get("GM_DATA_DIR"), help="MNIST folder (default $GM_DATA_DIR)")
    p.add_argument("--compare-classifier", action="store_true", help="also the old classifier-FID features")
    p.add_argument("--json", action="store_true", help="also print the raw numbers as one JSON line each")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    for ds in args.dataset or ["mnist", "dsprites"]:
        from gm.metrics.offline import offline_extractor
        ext = offline_extractor(ds)
        kinds = [("offline", lambda x, e=ext: e.all(x)[0])]
        if args.compare_classifier:
            from gm.metrics.classifiers import ClassifierFeatures, load_classifier
            cf = ClassifierFeatures(load_classifier(ds))
            kinds.append(("classifier (old)", lambda x, c=cf: torch.cat(
                [torch.from_numpy(c(x[s:s + 500])) for s in range(0, x.shape[0], 500)]).numpy()))
        extra = _extra(ds, args.n)
        for label, fn in kinds:
            t = time.perf_counter()
            table = disturbance_table(ds, fn, data_dir=args.data_dir, n=args.n, extra=extra)
            print(f"### {ds}, {label} features ({time.perf_counter() - t:.0f}s)\n")
            print(format_table(table))
            print()
            if args.json:
                print(json.dumps({"features": label, **table.as_dict()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())

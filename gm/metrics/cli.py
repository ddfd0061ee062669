"""`python -m gm stats | fid | eval`: the evaluation commands (hooked into gm.cli).

Contract: `fid` prints the FID as its last line, `eval` one JSON object as its last line, `stats` the
path of the statistics file; progress and notes go to stderr. Heavy imports happen inside the
commands so `python -m gm --help` stays fast.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

DEFAULT_N = 5000  # the assignment's minimum: 5,000 generated vs 5,000 real


def _common(p: argparse.ArgumentParser, *, features: bool = True) -> None:
    if features:
        p.add_argument("--n", type=int, default=DEFAULT_N,
                       help=f"generated images sampled from a run, and real images (default {DEFAULT_N})")
    else:   # eval: a translation run is measured on images per domain pair
        p.add_argument("--n", type=int, default=None,
                       help=f"generated images sampled from a run, and real images (default {DEFAULT_N}); "
                            f"for a translation run, source images per domain pair (default 500)")
    if features:
        p.add_argument("--features", choices=("inception", "classifier", "offline"), default="inception",
                       help="Inception (pytorch-fid), the project's classifier, or its validated offline realism "
                            "evaluator (both offline and fast; not comparable with Inception)")
    p.add_argument("--real-seed", type=int, default=0, help="seed choosing the real images (default 0)")
    p.add_argument("--split", default="train", choices=("train", "test"), help="real images' split")
    p.add_argument("--device", default="auto", help="auto|cpu|cuda|mps")
    p.add_argument("--data-dir", help="dataset folder (default $GM_DATA_DIR or ~/.cache/gm/data)")
    p.add_argument("--inception-weights", metavar="PATH",
                   help="pt_inception-2015-12-05-6726825d.pth (default: the torch hub checkpoint folder)")
    p.add_argument("--quiet", action="store_true", help="no progress on stderr")


def _dataset(name: str) -> str:
    """argparse type: a registered dataset name. Checked when given, not listed as choices: help
    would then import the registry (and torch) and `python -m gm stats --help` took 3 s, not 0.2."""
    from gm.data.registry import get_dataset_spec
    return get_dataset_spec(name).name


_DATASET = {"type": _dataset, "metavar": "DATASET"}
_DATASET_HELP = "`python -m gm datasets` lists them"


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """Add the stats, fid and eval subcommands to gm's parser."""
    s = sub.add_parser("stats", help="precompute (cache) the real-image statistics of a dataset")
    s.add_argument("dataset", **_DATASET, help=f"a registered dataset ({_DATASET_HELP})")
    _common(s)
    s.add_argument("--force", action="store_true", help="recompute even when cached")

    f = sub.add_parser("fid", help="FID between A and B (B defaults to the cached real statistics of A's dataset)")
    f.add_argument("a", metavar="A", help="run folder, image folder, images .npz or stats .npz")
    f.add_argument("b", metavar="B", nargs="?", help="the same kinds as A (default: real images of the dataset)")
    f.add_argument("--dataset", **_DATASET, help=f"dataset of A when A is not a run folder ({_DATASET_HELP})")
    f.add_argument("--seed", type=int, default=0, help="sampling seed for run folders (default 0)")
    f.add_argument("--no-record", action="store_true", help="do not append to the run's eval.jsonl")
    _common(f)

    e = sub.add_parser("eval", help="every metric that applies to A, as one JSON object")
    e.add_argument("a", metavar="A", help="run folder, image folder or images .npz")
    e.add_argument("--dataset", **_DATASET, help=f"dataset of A when A is not a run folder ({_DATASET_HELP})")
    e.add_argument("--seed", type=int, default=0, help="sampling seed for run folders (default 0)")
    e.add_argument("--inception", action="store_true", help="also compute the (slow) Inception FID")
    e.add_argument("--no-record", action="store_true", help="do not append to the run's eval.jsonl")
    _common(e, features=False)


class _ProgressLine:
    """(done, total, eta) -> one line on stderr, rewritten in place on a terminal."""

    def __init__(self, label: str, quiet: bool) -> None:
        self.label, self.quiet = label, quiet
        self.tty = sys.stderr.isatty()
        self.last = 0.0
        self.shown = False

    def __call__(self, done: int, total: int, eta: float | None) -> None:
        from gm.metrics.features import format_seconds

        now = time.monotonic()
        if self.quiet or (now - self.last < (0.5 if self.tty else 10.0) and done < total):
            return
        self.last = now
        line = f"{self.label}: {done:,}/{total:,} images" + (f"  ETA {format_seconds(eta)}" if eta is not None else "")
        sys.stderr.write(("\r" + line.ljust(60)) if self.tty else line + "\n")
        sys.stderr.flush()
        self.shown = True

    def close(self) -> None:
        if self.shown and self.tty:
            sys.stderr.write("\n")


def _log(quiet: bool):
    """stderr notes (estimate, cache use), or None when quiet: then no time is spent estimating."""
    if quiet:
        return None

    def log(msg: str) -> None:
        print(msg, file=sys.stderr)
    return log


def cmd_stats(args) -> int:
    from gm.device import resolve_device
    from gm.metrics.evaluate import get_extractor
    from gm.metrics.features import Tracker
    from gm.metrics.stats import real_stats

    dev = resolve_device(args.device)
    extractor = get_extractor(args.features, args.dataset, dev, args.inception_weights)
    if dev.type == "cpu" and not args.quiet:
        from gm.metrics.evaluate import announce_estimate
        from gm.metrics.sources import real_images
        from gm.metrics.stats import cached_or_none
        if args.force or cached_or_none(args.dataset, extractor, n=args.n, seed=args.real_seed, split=args.split,
                                        data_dir=args.data_dir) is None:
            shape = real_images(args.dataset, args.n, args.real_seed, args.split, args.data_dir).images.image_shape
            announce_estimate(extractor, args.n, shape, _log(False), args.n)
    bar = _ProgressLine(f"{args.dataset} {args.features} stats", args.quiet)
    try:
        st = real_stats(args.dataset, extractor, n=args.n, seed=args.real_seed, split=args.split,
                        data_dir=args.data_dir, tracker=Tracker(0, bar), refresh=args.force)
    finally:
        bar.close()
    if not args.quiet:
        print(f"{'cached' if st.cached else 'computed'}: {args.features} statistics of {args.n:,} "
              f"{args.dataset} {args.split} images (seed {args.real_seed}), key {st.key_id}", file=sys.stderr)
    print(st.path)
    return 0


def cmd_fid(args) -> int:
    from gm.metrics.evaluate import fid

    bar = _ProgressLine("fid", args.quiet)
    try:
        result = fid(args.a, args.b, n=args.n, features=args.features, dataset=args.dataset, seed=args.seed,
                     real_seed=args.real_seed, split=args.split, device=args.device, data_dir=args.data_dir,
                     inception_weights=args.inception_weights, progress=bar, record=not args.no_record,
                     log=_log(args.quiet))
    finally:
        bar.close()
    note = "" if result.features == "inception" else \
        f" ({result.features} features: not comparable with Inception FID)"
    if not args.quiet:
        print(f"{result.features} FID of {result.n_a:,} vs {result.n_b:,} images{note}; "
              f"{result.seconds:.1f}s", file=sys.stderr)
    print(f"{result.value:.10g}")
    return 0


def cmd_eval(args) -> int:
    from gm.metrics.evaluate import evaluate

    bar = _ProgressLine("eval", args.quiet)
    try:
        result = evaluate(args.a, dataset=args.dataset, n=args.n, seed=args.seed, real_seed=args.real_seed,
                          split=args.split, device=args.device, data_dir=args.data_dir, inception=args.inception,
                          inception_weights=args.inception_weights, progress=bar, record=not args.no_record,
                          log=_log(args.quiet))
    finally:
        bar.close()
    print(json.dumps(result))
    return 0


COMMANDS = {"stats": cmd_stats, "fid": cmd_fid, "eval": cmd_eval}


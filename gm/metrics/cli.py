"""`python -m gm stats | fid | eval`: the evaluation commands (hooked into gm.cli).

Contract: `fid` prints the FID as its last line, `eval` one JSON object as its last line, `stats` the
path of the statistics file; progress and notes go to stderr. Heavy imports happen inside the
commands so `python -m gm --help` stays fast.

`--nproc N` (or the command under torchrun) shares the work among N processes
(gm.metrics.sharding): the same value as one process, printed and recorded by rank 0 only; the other
ranks print nothing, not even the error every rank meets (rank 0 says it once).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from gm.errors import GMError

if TYPE_CHECKING:
    from gm.runs.distributed import Group

DEFAULT_N = 5000  # the assignment's minimum: 5,000 generated vs 5,000 real


def _common(p: argparse.ArgumentParser, *, features: bool = True) -> None:
    if features:
        p.add_argument("-n", "--n", type=int, default=DEFAULT_N,
                       help=f"generated images sampled from a run, and real images (default {DEFAULT_N})")
    else:   # eval: a translation run is measured on images per domain pair
        p.add_argument("-n", "--n", type=int, default=None,
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
    p.add_argument("--nproc", type=int, default=1, metavar="N",
                   help="share the sampling and feature extraction among N processes on this machine (starts "
                        "`torchrun --standalone --nproc_per_node N` for you; GPUs: one each, CPUs: gloo); the "
                        "value equals one process's. Under torchrun itself, leave it out")


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


# ---- several processes ----------------------------------------------------------------------------
def _needs_inception(args: argparse.Namespace) -> bool:
    return getattr(args, "features", None) == "inception" or bool(getattr(args, "inception", False))


def _preflight(args: argparse.Namespace) -> None:
    """The mistakes every rank would meet at once, said once before torchrun starts: a rank's error
    is printed by rank 0 alone, but torchrun then adds its own report of the failed processes."""
    from gm.metrics.evaluate import check_sources

    if args.command == "fid":
        check_sources(args.a, args.b, dataset=args.dataset)
    elif args.command == "eval":
        check_sources(args.a, dataset=args.dataset, images_only=True)
    if _needs_inception(args):
        from gm.metrics.inception import find_weights
        find_weights(args.inception_weights)   # downloads it once here, not once per rank


def _start(args: argparse.Namespace) -> Group | None:
    """None for one process. --nproc N > 1 outside torchrun: this process becomes torchrun running the
    same command on N processes (it does not return). Under torchrun: this rank's process group."""
    from gm.runs.distributed import exit_rank, join, launched_by_torchrun
    from gm.runs.launch import check_nproc, exec_torchrun

    check_nproc(args.nproc)
    if launched_by_torchrun():
        try:
            return join(args.device)
        except GMError:
            if int(os.environ.get("RANK", "0")) != 0:
                exit_rank(2)   # every rank meets it (no GPU for this device): rank 0 says it once
            raise
    if args.nproc > 1:
        argv = getattr(args, "argv", None)
        if argv is None:   # gm.cli.main keeps its argv there; without it only the command line is known
            argv = sys.argv[1:]
            if args.command not in argv:
                raise GMError("--nproc starts torchrun on the command line (python -m gm ...); from Python, "
                              "run the command under torchrun yourself.")
        _preflight(args)
        exec_torchrun(args.nproc, _for_torchrun(list(argv)))
    return None


def _for_torchrun(argv: list[str]) -> list[str]:
    """argv with `--n X` written `-n X`: torchrun's own parser reads the whole line and stops at `--n`,
    a prefix of several of its options (--nnodes, --nproc-per-node, ...), even after the script."""
    out: list[str] = []
    for arg in argv:
        if arg == "--n":
            out.append("-n")
        elif arg.startswith("--n="):
            out += ["-n", arg[len("--n="):]]
        else:
            out.append(arg)
    return out


def _sharded(body: Callable[[argparse.Namespace, Group | None], int]) -> Callable[[argparse.Namespace], int]:
    """A command that runs on one process, or on each rank of a torchrun group. Only rank 0 speaks:
    the other ranks run quietly and end without a word on an error (every rank meets the same one, and
    rank 0 prints it; RankFailed says rank 0 stopped) or Ctrl-C."""

    def command(args: argparse.Namespace) -> int:
        group = _start(args)
        if group is None:
            return body(args, None)
        from gm.runs.distributed import exit_rank, is_collective_failure, leave

        if not group.is_main:
            args.quiet = True
        try:
            if _needs_inception(args):
                # Rank 0 finds (or downloads) the weights first, so ranks never race to fetch one file.
                from gm.metrics.inception import find_weights
                group.on_main(lambda: find_weights(args.inception_weights))
            code = body(args, group)
            group.barrier()   # nobody leaves while a peer still talks to it
        except GMError as exc:
            code = _say(group, f"error: {exc}", 2)
        except KeyboardInterrupt:
            code = _say(group, "interrupted", 130)
        except Exception as exc:
            if not is_collective_failure(exc):
                raise   # a bug: keep the traceback
            gone = group.gone_peers()
            who = (f"The evaluation process of {', '.join(f'rank {r}' for r in gone)}" if gone
                   else "Another evaluation process")
            code = _say(group, f"error: {who} stopped, so the evaluation stopped; run it with --nproc 1 to see "
                               f"why.", 2)
        leave(group)
        exit_rank(code)

    command.__doc__ = body.__doc__
    return command


def _say(group: Group, message: str, code: int) -> int:
    """Rank 0 prints `message` as gm.cli does (one line on stderr); the others stay silent."""
    if group.is_main:
        print(message, file=sys.stderr)
    return code


def _label(name: str, group: Group | None) -> str:
    return name if group is None else f"{name} (rank 0 of {group.world_size}: its share)"


def _on(group: Group | None) -> str:
    return "" if group is None else f" on {group.world_size} processes"


def _device(args: argparse.Namespace, group: Group | None) -> str:
    """Under torchrun each rank uses the device its group gave it (cuda:LOCAL_RANK, or the CPU)."""
    return args.device if group is None else str(group.device)


@_sharded
def cmd_stats(args: argparse.Namespace, group: Group | None) -> int:
    from gm.device import resolve_device
    from gm.metrics.evaluate import get_extractor
    from gm.metrics.features import Tracker
    from gm.metrics.sharding import local_count
    from gm.metrics.stats import real_stats

    dev = resolve_device(_device(args, group))
    extractor = get_extractor(args.features, args.dataset, dev, args.inception_weights)
    if dev.type == "cpu" and not args.quiet:
        from gm.metrics.evaluate import announce_estimate
        from gm.metrics.sources import real_images
        from gm.metrics.stats import cached_or_none
        if args.force or cached_or_none(args.dataset, extractor, n=args.n, seed=args.real_seed, split=args.split,
                                        data_dir=args.data_dir) is None:
            shape = real_images(args.dataset, args.n, args.real_seed, args.split, args.data_dir).images.image_shape
            mine = local_count(args.n, extractor.batch_size, group)
            announce_estimate(extractor, mine, shape, _log(False), mine)
    bar = _ProgressLine(_label(f"{args.dataset} {args.features} stats", group), args.quiet)
    try:
        st = real_stats(args.dataset, extractor, n=args.n, seed=args.real_seed, split=args.split,
                        data_dir=args.data_dir, tracker=Tracker(0, bar), refresh=args.force, group=group)
    finally:
        bar.close()
    if group is not None and not group.is_main:
        return 0
    if not args.quiet:
        print(f"{'cached' if st.cached else 'computed'}: {args.features} statistics of {args.n:,} "
              f"{args.dataset} {args.split} images (seed {args.real_seed}), key {st.key_id}"
              f"{'' if st.cached else _on(group)}", file=sys.stderr)
    print(st.path)
    return 0


@_sharded
def cmd_fid(args: argparse.Namespace, group: Group | None) -> int:
    from gm.metrics.evaluate import fid

    bar = _ProgressLine(_label("fid", group), args.quiet)
    try:
        result = fid(args.a, args.b, n=args.n, features=args.features, dataset=args.dataset, seed=args.seed,
                     real_seed=args.real_seed, split=args.split, device=_device(args, group), data_dir=args.data_dir,
                     inception_weights=args.inception_weights, progress=bar, record=not args.no_record,
                     log=_log(args.quiet), group=group)
    finally:
        bar.close()
    if group is not None and not group.is_main:
        return 0
    note = "" if result.features == "inception" else \
        f" ({result.features} features: not comparable with Inception FID)"
    if not args.quiet:
        print(f"{result.features} FID of {result.n_a:,} vs {result.n_b:,} images{note}; "
              f"{result.seconds:.1f}s{_on(group)}", file=sys.stderr)
    print(f"{result.value:.10g}")
    return 0


@_sharded
def cmd_eval(args: argparse.Namespace, group: Group | None) -> int:
    from gm.metrics.evaluate import evaluate

    bar = _ProgressLine(_label("eval", group), args.quiet)
    try:
        result = evaluate(args.a, dataset=args.dataset, n=args.n, seed=args.seed, real_seed=args.real_seed,
                          split=args.split, device=_device(args, group), data_dir=args.data_dir,
                          inception=args.inception, inception_weights=args.inception_weights, progress=bar,
                          record=not args.no_record, log=_log(args.quiet), group=group)
    finally:
        bar.close()
    if group is not None and not group.is_main:
        return 0
    print(json.dumps(result))
    return 0


COMMANDS = {"stats": cmd_stats, "fid": cmd_fid, "eval": cmd_eval}


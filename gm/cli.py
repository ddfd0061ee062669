"""`python -m gm`: the lab from a terminal. Every user error ends in one line on stderr and exit 2."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from gm.errors import GMError

EXIT_USER_ERROR = 2


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one clear line, exit 2 (argparse's own convention)
        raise GMError(f"{message} (see `python -m gm {self.prog.split()[-1]} --help`).")


def _add_length(p: argparse.ArgumentParser) -> None:
    g = p.add_mutually_exclusive_group()
    g.add_argument("--steps", type=int, help="generator/optimizer steps to train")
    g.add_argument("--epochs", type=float, help="passes over the dataset to train")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="python -m gm", description="gm: train, sample and measure image generative models.")
    sub = p.add_subparsers(dest="command", parser_class=_Parser)

    sub.add_parser("models", help="list the models")

    t = sub.add_parser("train", help="train a model in the foreground")
    t.add_argument("model")
    _add_length(t)
    t.add_argument("--batch-size", type=int)
    t.add_argument("--seed", type=int)
    t.add_argument("--device", default="auto", help="auto|cpu|cuda|mps")
    t.add_argument("--runs-dir", help="folder holding run folders (default checkpoints/runs or $GM_RUNS_DIR)")
    t.add_argument("--name", help="run name (default <model>-<date>-<time>)")
    t.add_argument("--data-dir", help="dataset folder (default $GM_DATA_DIR or ~/.cache/gm/data)")
    t.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value (repeatable); `models --verbose` lists the keys")
    t.add_argument("--preset", help="a named preset of the model (e.g. kl8, kl14 for controlvae)")
    t.add_argument("--quiet", action="store_true", help="no progress line")

    r = sub.add_parser("resume", help="continue a run from its last checkpoint")
    r.add_argument("run_dir")
    _add_length(r)
    r.add_argument("--device", help="override the run's device")
    r.add_argument("--data-dir")
    r.add_argument("--quiet", action="store_true")

    s = sub.add_parser("sample", help="write a grid of samples from a run's latest checkpoint")
    s.add_argument("run_dir")
    s.add_argument("--n", type=int, default=100)
    s.add_argument("--nrow", type=int, default=10)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--device", default="auto")
    s.add_argument("--out", required=True, help="output PNG file")

    ls = sub.add_parser("runs", help="list runs with status and step")
    ls.add_argument("--runs-dir")
    return p


def cmd_models(args) -> int:
    from gm.registry import MODELS
    width = max(len(n) for n in MODELS)
    for spec in MODELS.values():
        print(f"{spec.name:<{width}}  {spec.dataset:<8}  {spec.blurb}")
        for preset, values in spec.presets:
            print(f"{'':<{width}}  {'':<8}  preset {preset}: " + ", ".join(f"{k}={v}" for k, v in values.items()))
    return 0


class _ProgressPrinter:
    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.tty = sys.stderr.isatty()
        self.last = 0.0

    def __call__(self, p) -> None:
        if self.quiet:
            return
        now = time.monotonic()
        if now - self.last < (0.5 if self.tty else 5.0) and p.step < p.total_steps:
            return
        self.last = now
        keys = [k for k in ("loss", "recon", "kl", "beta", "d_loss", "g_loss", "w_dist") if k in p.metrics]
        losses = "  ".join(f"{k} {p.metrics[k]:.4g}" for k in keys)
        eta = f"{p.eta_seconds:.0f}s" if p.eta_seconds is not None else "?"
        line = (f"step {p.step}/{p.total_steps}  epoch {p.epoch:.2f}  {losses}  "
                f"{p.images_per_sec:.0f} img/s  ETA {eta}")
        if self.tty:
            sys.stderr.write("\r" + line[:200].ljust(120))
        else:
            sys.stderr.write(line + "\n")
        sys.stderr.flush()


def _finish(session, status: str, quiet: bool) -> int:
    if not quiet and sys.stderr.isatty():
        sys.stderr.write("\n")
    state = session.run.read_state()
    print(f"{status}: {session.run.path} at step {state.get('step')}")
    if status in ("failed", "diverged"):
        print(state.get("error", ""), file=sys.stderr)
        return 1
    return 0


def cmd_train(args) -> int:
    from gm.config import from_dict, parse_overrides, to_dict
    from gm.registry import get_spec
    from gm.runs.folder import default_runs_dir
    from gm.runs.loop import new_session, train

    spec = get_spec(args.model)
    values = {}
    if args.preset:
        presets = dict(spec.presets)
        if args.preset not in presets:
            raise GMError(f"Model '{spec.name}' has no preset '{args.preset}'; presets: "
                          f"{', '.join(presets) or 'none'}.")
        values.update(presets[args.preset])
    values.update(parse_overrides(args.set))
    if args.batch_size is not None:
        values["batch_size"] = args.batch_size
    if args.seed is not None:
        values["seed"] = args.seed
    config = from_dict(spec.config_cls, {**to_dict(spec.config_cls()), **values}, model=spec.name)
    session = new_session(spec.name, config, runs_dir=args.runs_dir or default_runs_dir(), name=args.name,
                          device=args.device, data_dir=args.data_dir, steps=args.steps, epochs=args.epochs)
    print(f"run: {session.run.path}  ({session.total_steps} steps on {session.device})", file=sys.stderr)
    status = train(session, on_progress=_ProgressPrinter(args.quiet))
    return _finish(session, status, args.quiet)


def cmd_resume(args) -> int:
    from gm.runs.loop import open_session, train

    session = open_session(args.run_dir, steps=args.steps, epochs=args.epochs, device=args.device,
                           data_dir=args.data_dir)
    print(f"resuming {session.run.path} at step {session.trainer.step} -> {session.total_steps}",
          file=sys.stderr)
    status = train(session, on_progress=_ProgressPrinter(args.quiet))
    return _finish(session, status, args.quiet)


def cmd_sample(args) -> int:
    from gm.images import make_grid, save_png
    from gm.runs.loop import load_for_inference

    if args.n < 1 or args.nrow < 1:
        raise GMError("--n and --nrow must be at least 1.")
    out = Path(args.out)
    if out.suffix.lower() != ".png":
        raise GMError(f"--out must be a .png file; got {args.out}.")
    if not out.parent.exists():
        raise GMError(f"Folder {out.parent} does not exist; create it or choose another --out.")
    trainer, _ = load_for_inference(args.run_dir, args.device)
    images = trainer.sample(args.n, seed=args.seed)
    save_png(out, make_grid(images, args.nrow))
    print(out)
    return 0


def cmd_runs(args) -> int:
    from gm.runs.folder import default_runs_dir, list_runs

    runs_dir = Path(args.runs_dir) if args.runs_dir else default_runs_dir()
    runs = list_runs(runs_dir)
    if not runs:
        print(f"no runs in {runs_dir}")
        return 0
    rows = [("NAME", "MODEL", "STATUS", "STEP", "UPDATED")]
    for run in runs:
        try:
            cfg = run.read_config()
        except GMError:
            cfg = {}
        st = run.read_state()
        total = st.get("total_steps")
        rows.append((run.name, cfg.get("model", "?"), st.get("status", "?"),
                     f"{st.get('step', 0)}/{total}" if total else str(st.get("step", 0)),
                     str(st.get("updated", ""))))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
    return 0


COMMANDS = {"models": cmd_models, "train": cmd_train, "resume": cmd_resume, "sample": cmd_sample,
            "runs": cmd_runs}


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if not args.command:
            parser.print_help()
            return EXIT_USER_ERROR
        return COMMANDS[args.command](args)
    except GMError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

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
        command = " ".join(self.prog.split()[3:])  # prog is "python -m gm [command]"
        raise GMError(f"{message} (see `python -m gm {command + ' ' if command else ''}--help`).")


def _add_length(p: argparse.ArgumentParser) -> None:
    g = p.add_mutually_exclusive_group()
    g.add_argument("--steps", type=int, help="generator/optimizer steps to train")
    g.add_argument("--epochs", type=float, help="passes over the dataset to train")


def _add_nproc(p: argparse.ArgumentParser) -> None:
    p.add_argument("--nproc", type=int, default=1, metavar="N",
                   help="train on N processes on this machine: starts `torchrun --standalone "
                        "--nproc_per_node N` for you (GPUs: one each; CPUs: gloo). Under torchrun "
                        "itself, leave it out")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="python -m gm", description="gm: train, sample and measure image generative models.")
    sub = p.add_subparsers(dest="command", parser_class=_Parser)

    m = sub.add_parser("models", help="list the models")
    m.add_argument("--keys", action="store_true", help="also list each model's --set keys with defaults")

    sub.add_parser("datasets", help="list the datasets: image shape, classes, domain splits")

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
                   help="override a config value (repeatable); `models --keys` lists each model's keys")
    t.add_argument("--preset", help="a named preset of the model (e.g. kl8, kl14 for controlvae)")
    t.add_argument("--quiet", action="store_true", help="no progress line")
    _add_nproc(t)

    r = sub.add_parser("resume", help="continue a run from its last checkpoint")
    r.add_argument("run_dir")
    _add_length(r)
    r.add_argument("--device", help="override the run's device")
    r.add_argument("--data-dir")
    r.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="change a config value from here on (repeatable), e.g. a lower lr after divergence")
    r.add_argument("--quiet", action="store_true")
    _add_nproc(r)

    s = sub.add_parser("sample", help="write a grid of samples from a run's latest checkpoint")
    s.add_argument("run_dir")
    s.add_argument("--n", type=int, default=100)
    s.add_argument("--nrow", type=int, default=10)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--device", default="auto")
    s.add_argument("--out", required=True, help="output PNG file")

    tr = sub.add_parser("translate", help="write a grid of a translation model's translations: sources in "
                                          "the first row, then per target domain its translations and "
                                          "their cycle reconstructions")
    tr.add_argument("run_dir")
    tr.add_argument("--to", required=True, action="append", metavar="DOMAIN",
                    help="target domain (repeatable or comma-separated; 'all' = every domain the source "
                         "translates to)")
    tr.add_argument("--from", dest="source", metavar="DOMAIN",
                    help="source domain (default: the first domain that translates to every target)")
    tr.add_argument("--n", type=int, default=8, help="source images (one column each)")
    tr.add_argument("--seed", type=int, default=0, help="which source images are drawn from the dataset")
    tr.add_argument("--device", default="auto")
    tr.add_argument("--data-dir", help="dataset folder (default $GM_DATA_DIR or ~/.cache/gm/data)")
    tr.add_argument("--out", required=True, help="output PNG file")

    ls = sub.add_parser("runs", help="list runs with status and step")
    ls.add_argument("--runs-dir")

    pu = sub.add_parser("push", help="upload a run (safetensors weights, config, model card) to the Hugging Face Hub")
    pu.add_argument("run_dir")
    pu.add_argument("repo_id", help="owner/name on the Hub")
    pu.add_argument("--private", action="store_true")
    pu.add_argument("--no-metrics", action="store_true", help="leave out metrics.jsonl (the training log)")
    pu.add_argument("--token", help="Hub token with write access (default $HF_TOKEN); never stored")

    ex = sub.add_parser("export", help="a run or the whole walkthrough as an offline HTML report and/or a ZIP "
                                       "of PNG figures with CSV/JSON numbers")
    ex.add_argument("run_dir", nargs="?", help="run folder to export (or --walkthrough)")
    ex.add_argument("--walkthrough", action="store_true",
                    help="export every step of the classroom walkthrough (pretrained or newest local runs)")
    ex.add_argument("--out", required=True, help="file.html (report), file.zip (figures and numbers) or a folder (both)")
    ex.add_argument("--lang", default="en", help="language: en or fa (Persian, right to left)")
    ex.add_argument("--static", action="store_true", help="PNG charts instead of interactive plotly ones (smaller)")
    ex.add_argument("--runs-dir", help="where --walkthrough looks for local runs")

    pl = sub.add_parser("pull", help="download a gm model from the Hub into the runs dir as a run folder")
    pl.add_argument("repo_id", help="owner/name on the Hub")
    pl.add_argument("--revision", help="branch, tag or commit")
    pl.add_argument("--runs-dir")
    pl.add_argument("--name", help="run name (default owner--name)")
    pl.add_argument("--token", help="Hub token for private repos (default $HF_TOKEN); never stored")

    from gm.metrics.cli import add_parsers as add_metrics_parsers
    add_metrics_parsers(sub)  # stats, fid, eval
    return p


def cmd_models(args) -> int:
    from gm.registry import MODELS
    width = max(len(n) for n in MODELS)
    for spec in MODELS.values():
        print(f"{spec.name:<{width}}  {spec.dataset:<8}  {spec.blurb}")
        pad = f"{'':<{width}}  {'':<8}  "
        for preset, values in spec.presets:
            print(pad + f"preset {preset}: " + ", ".join(f"{k}={v}" for k, v in values.items()))
        if spec.cpu_note:
            print(pad + spec.cpu_note)
        print(pad + "can: " + ", ".join(sorted(spec.capabilities)))
        if getattr(args, "keys", False):
            from gm.config import describe
            for f in describe(spec.config_cls):
                print(pad + f"  {f['name']}={f['default']}  ({f['type']}) {f['help']}")
    return 0


def cmd_datasets(args) -> int:
    from gm.data.registry import DATASETS
    rows = []
    for spec in DATASETS.values():
        splits = ", ".join(f"{k}={'|'.join(v)}" for k, v in spec.domain_splits.items()) or "none"
        rows.append((spec.name, "x".join(map(str, spec.image_shape)),
                     f"{len(spec.classes)} classes" + (f" ({spec.class_factor})" if spec.class_factor else ""),
                     f"domains: {splits}", spec.description))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)) + "  " + r[4])
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


def _finish(job, quiet: bool) -> int:
    if not quiet and sys.stderr.isatty():
        sys.stderr.write("\n")
    print(f"{job.status}: {job.run_dir} at step {job.step}")
    if job.status in ("failed", "diverged"):
        print(job.error or "", file=sys.stderr)
        return 1
    return 0


def cmd_train(args) -> int:
    from gm.config import from_dict, parse_overrides, to_dict
    from gm.registry import get_spec
    from gm.runs.folder import default_runs_dir
    from gm.runs.jobs import JobManager, run_foreground

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
    if _several_processes(args):
        from gm.runs import torchrun
        return torchrun.train_new(spec.name, config, runs_dir=args.runs_dir or default_runs_dir(), name=args.name,
                                  device=args.device, data_dir=args.data_dir, steps=args.steps,
                                  epochs=args.epochs, on_progress=_ProgressPrinter(args.quiet))
    # The same job machinery as the app, in the foreground: Ctrl-C or SIGTERM = stop (checkpoint).
    with JobManager() as manager:
        job = manager.start_run(spec.name, config, runs_dir=args.runs_dir or default_runs_dir(),
                                name=args.name, device=args.device, data_dir=args.data_dir,
                                steps=args.steps, epochs=args.epochs,
                                on_progress=_ProgressPrinter(args.quiet))
        print(f"run: {job.run_dir}  ({job.total_steps} steps on {job.device})", file=sys.stderr)
        return _finish(run_foreground(manager, job.key), args.quiet)


def _several_processes(args) -> bool:
    """True under torchrun (this process is one rank); with --nproc N > 1 outside it, this process
    becomes torchrun running the same command (it does not return)."""
    from gm.runs.distributed import launched_by_torchrun
    from gm.runs.launch import check_nproc, exec_torchrun

    check_nproc(args.nproc)
    if launched_by_torchrun():
        return True
    if args.nproc > 1:
        exec_torchrun(args.nproc, args.argv)
    return False


def cmd_resume(args) -> int:
    from gm.config import parse_overrides
    from gm.runs.jobs import JobManager, run_foreground

    if _several_processes(args):
        from gm.runs import torchrun
        return torchrun.resume(args.run_dir, steps=args.steps, epochs=args.epochs, device=args.device,
                               data_dir=args.data_dir, overrides=parse_overrides(args.set),
                               on_progress=_ProgressPrinter(args.quiet))

    with JobManager() as manager:
        job = manager.resume_run(args.run_dir, steps=args.steps, epochs=args.epochs, device=args.device,
                                 data_dir=args.data_dir, overrides=parse_overrides(args.set),
                                 on_progress=_ProgressPrinter(args.quiet))
        for note in job.notes:
            print(f"note: {note}", file=sys.stderr)
        print(f"resuming {job.run_dir} at step {job.step} -> {job.total_steps}", file=sys.stderr)
        return _finish(run_foreground(manager, job.key), args.quiet)


def _png_out(text: str) -> Path:
    """--out as a path to a .png file in an existing folder, or a one-sentence GMError."""
    out = Path(text)
    if out.suffix.lower() != ".png":
        raise GMError(f"--out must be a .png file; got {text}.")
    if not out.parent.exists():
        raise GMError(f"Folder {out.parent} does not exist; create it or choose another --out.")
    return out


def cmd_sample(args) -> int:
    from gm import limits
    from gm.images import make_grid, save_png
    from gm.models.base import SamplesFromNoise
    from gm.models.loading import load_model
    from gm.registry import get_spec

    out = _png_out(args.out)
    model = load_model(args.run_dir, args.device)
    if not isinstance(model, SamplesFromNoise):
        raise GMError(f"{args.run_dir} holds a {model.model_name} model, which does not sample from noise.")
    limits.check_sampling(get_spec(model.model_name), model.config, model.data, args.n, args.nrow, model.device)
    images = model.sample(args.n, seed=args.seed)
    save_png(out, make_grid(images, args.nrow))
    print(out)
    return 0


MAX_TRANSLATE_N = 64


def _translation_targets(model, asked: list[str], source: str | None) -> tuple[str, tuple[str, ...]]:
    """(source, targets) from --from / --to, checked against what the model translates."""
    from gm.models.base import domain_index

    names = [t.strip() for item in asked for t in item.split(",") if t.strip()]
    pairs = tuple(model.pairs())
    if source is not None:
        domain_index(model.domains, source)   # one sentence naming the model's domains
    if names == ["all"]:
        if source is None:
            source = model.domains[0]
        targets = tuple(b for a, b in pairs if a == source)
    else:
        for name in names:
            domain_index(model.domains, name)
        targets = tuple(dict.fromkeys(names))
        if source is None:
            fits = [d for d in model.domains if d not in targets and all((d, t) in pairs for t in targets)]
            if not fits:
                raise GMError(f"No one domain translates to {', '.join(targets)}; name the source with --from.")
            source = fits[0]
    have = ", ".join(f"{a}->{b}" for a, b in pairs)
    for t in targets:
        if (source, t) not in pairs:
            raise GMError(f"This model does not translate {source} to {t}; its pairs: {have}.")
    if not targets:
        raise GMError("Name at least one target domain with --to.")
    return source, targets


def cmd_translate(args) -> int:
    from gm.data import load_dataset
    from gm.images import make_grid, save_png
    from gm.metrics.translation import choose_sources, translation_grid
    from gm.models.base import Translates
    from gm.models.loading import load_model
    from gm.registry import get_spec

    out = _png_out(args.out)
    if not 1 <= args.n <= MAX_TRANSLATE_N:
        raise GMError(f"--n must be between 1 and {MAX_TRANSLATE_N} (one column per source image); got {args.n}.")
    model = load_model(args.run_dir, args.device)
    if not isinstance(model, Translates):
        raise GMError(f"{args.run_dir} holds a {model.model_name} model, which does not translate between "
                      f"domains; use `python -m gm sample` for it.")
    source, targets = _translation_targets(model, args.to, args.source)
    split = model.config.domain_split()
    dataset = load_dataset(get_spec(model.model_name).dataset, args.data_dir)
    index = choose_sources(dataset, split, source, args.n, args.seed)
    sources = dataset.take(index).float() / dataset.max_value
    images, per_row = translation_grid(model, sources, targets, source=source)
    save_png(out, make_grid(images, per_row))
    rows = ", ".join(f"{t} + back to {source}" for t in targets)
    print(f"{out}: {source} sources, then {rows}")
    return 0


def cmd_runs(args) -> int:
    from gm.runs.folder import default_runs_dir, list_runs
    from gm.runs.jobs import trainer_of

    runs_dir = Path(args.runs_dir) if args.runs_dir else default_runs_dir()
    runs = list_runs(runs_dir)
    if not runs:
        print(f"no runs in {runs_dir}")
        return 0
    rows = [("NAME", "MODEL", "STATUS", "STEP", "UPDATED")]
    for run in runs:
        damage = run.damage()
        if damage is not None:  # shown, never fatal: the other runs still list
            cfg = {} if damage.file == "config.json" else run.read_config()
            rows.append((run.name, str(cfg.get("model", "?")), f"damaged: {damage.reason}", "?", ""))
            continue
        cfg, st = run.read_config(), run.read_state()
        if st["status"] in ("queued", "running", "paused") and trainer_of(run.path) is None:
            st["status"] = "interrupted"  # its lock is free: the trainer died (kill -9, crash); resume it
        total = st.get("total_steps")
        rows.append((run.name, cfg["model"], st["status"],
                     f"{st['step']}/{total}" if total else str(st["step"]), str(st.get("updated") or "")))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
    return 0


def cmd_push(args) -> int:
    from gm.hub import push
    print(push(args.run_dir, args.repo_id, private=args.private, token=args.token,
               include_metrics=not args.no_metrics))
    return 0


def cmd_pull(args) -> int:
    from gm.hub import pull
    print(pull(args.repo_id, revision=args.revision, runs_dir=args.runs_dir, name=args.name, token=args.token))
    return 0


def cmd_export(args) -> int:
    from gm.export import write
    print(write(args.out, run=args.run_dir, walkthrough=args.walkthrough, lang=args.lang, static=args.static,
                runs_dir=args.runs_dir))
    return 0


COMMANDS = {"models": cmd_models, "datasets": cmd_datasets, "train": cmd_train, "resume": cmd_resume, "sample": cmd_sample,
            "runs": cmd_runs, "push": cmd_push, "pull": cmd_pull, "export": cmd_export,
            "translate": cmd_translate}

from gm.metrics.cli import COMMANDS as _METRICS_COMMANDS  # noqa: E402  (stats, fid, eval)

COMMANDS.update(_METRICS_COMMANDS)


# Numbers every command checks before it starts: a NaN, an infinity or a 25-digit value is a typo,
# and would otherwise surface as a traceback deep inside torch (or an hour-long run of the wrong size).
_MAX_STEPS = 10 ** 12
_MAX_EPOCHS = 1e6
_MAX_IMAGES = 10 ** 9


def check_values(args: argparse.Namespace) -> None:
    """One-sentence errors for out-of-range numeric flags of any command (absent flags are skipped)."""
    import math

    from gm.config import MAX_SEED

    def whole(flag: str, value: int | None, lo: int, hi: int) -> None:
        if value is not None and not lo <= value <= hi:
            shown = value if abs(value) < 10 ** 15 else f"a {len(str(abs(value)))}-digit number"
            raise GMError(f"{flag} must be {'at least ' + str(lo) if value < lo else f'at most {hi:,}'}; "
                          f"got {shown}.")

    whole("--steps", getattr(args, "steps", None), 1, _MAX_STEPS)
    epochs = getattr(args, "epochs", None)
    if epochs is not None and not (math.isfinite(epochs) and 0 < epochs <= _MAX_EPOCHS):
        raise GMError(f"--epochs must be a positive number of at most {_MAX_EPOCHS:,.0f}; got {epochs}.")
    whole("--batch-size", getattr(args, "batch_size", None), 1, 2 ** 31)
    whole("--n", getattr(args, "n", None), 1, _MAX_IMAGES)
    whole("--nrow", getattr(args, "nrow", None), 1, _MAX_IMAGES)
    whole("--seed", getattr(args, "seed", None), 0, MAX_SEED)
    whole("--real-seed", getattr(args, "real_seed", None), 0, MAX_SEED)


def _check_evaluation_memory(args: argparse.Namespace) -> None:
    """`fid`, `eval` and `stats` keep n images (and, for eval, the k-NN blocks of precision/recall):
    refuse an --n that cannot fit before any sampling starts (gm.limits)."""
    if args.command not in ("fid", "eval", "stats") or getattr(args, "n", None) is None:
        return
    from gm import limits
    from gm.device import resolve_device
    limits.check_evaluation(args.n, resolve_device(args.device), knn=args.command == "eval")


def _environment_error(exc: BaseException) -> str | None:
    """One sentence for a full disk, a read-only folder and the like, which a user fixes outside gm.
    safetensors reports them as its own SafetensorError, not as an OSError."""
    if isinstance(exc, OSError):
        where = f" ({exc.filename})" if getattr(exc, "filename", None) else ""
        return f"{exc.strerror or exc}{where}; free some disk space or choose a writable location, then retry."
    if type(exc).__name__ == "SafetensorError":
        text = str(exc)
        if "StorageFull" in text or "No space" in text:
            return "No space left on device while writing a safetensors file; free some disk space, then retry."
        return f"A safetensors file could not be read or written ({text.splitlines()[0][:200]})."
    return None


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        args.argv = list(argv) if argv is not None else sys.argv[1:]   # for --nproc: torchrun reruns it
        if not args.command:
            parser.print_help()
            return EXIT_USER_ERROR
        check_values(args)
        _check_evaluation_memory(args)
        return COMMANDS[args.command](args)
    except GMError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except Exception as exc:
        message = _environment_error(exc)
        if message is None:
            raise  # a bug: keep the traceback
        print(f"error: {message}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

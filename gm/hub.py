"""Hugging Face Hub: publish a run's weights and pull one back as a run folder. Never unpickles.

A Hub repo made by `push` holds a flat export of a run:

    model.safetensors   the latest checkpoint's weights (no optimizer state)
    config.json         the run's config.json (model, dataset, every hyperparameter)
    README.md           a model card: model, dataset, hyperparameters, metrics, sample grid, how to load
    samples.png         the latest sample grid
    eval.jsonl          evaluations (FID, coverage, ...), when the run has any
    metrics.jsonl       the training log (optional, --no-metrics leaves it out)

`pull` downloads only .safetensors/.json/.png/.md/.jsonl files, refuses repos that offer pickled
weights only (.bin/.pt/.pth/.pkl/.ckpt), validates config.json against its schema
(gm.runs.schema.HUB_CONFIG: types, a step >= 0) and the model's dataclass, checks that the weights fit
the model and are finite, then writes an ordinary run folder `<runs-dir>/<name>/` (status finished), so the CLI and every page of the app use it like a local run. Tokens come from `HF_TOKEN`
or `--token` and are never written into a run folder.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

from gm.errors import GMError

ALLOWED = (".safetensors", ".json", ".png", ".md", ".jsonl")
ALLOW_PATTERNS = ["*" + ext for ext in ALLOWED]
PICKLED = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt")
_REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}(/[A-Za-z0-9][A-Za-z0-9._-]{0,95})?$")
OFFLINE = ("The Hugging Face Hub cannot be reached (offline or HF_HUB_OFFLINE=1); use the shipped "
           "pretrained runs or a local run instead.")


def offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def check_repo_id(repo_id: str) -> str:
    if not _REPO_ID.match(repo_id or "") or ".." in repo_id:
        raise GMError(f"Invalid Hub repo id {repo_id!r}: use 'owner/name' with letters, digits, '.', '_' "
                      f"and '-'.")
    return repo_id


def run_name_for(repo_id: str, revision: str | None = None) -> str:
    """A safe run name for a repo: 'owner--name' (plus '@revision'), checked like every run name."""
    from gm.runs.folder import check_run_name
    check_repo_id(repo_id)
    name = repo_id.replace("/", "--")
    if revision:
        name += "-" + re.sub(r"[^A-Za-z0-9._-]", "-", revision)[:40]
    return check_run_name(name.lstrip(".-")[:100])


def _token(token: str | bool | None) -> str | bool | None:
    """A typed token as given; False for none at all (the app: never $HF_TOKEN nor the saved login,
    which belong to the server); None: $HF_TOKEN, else huggingface_hub's saved login (the CLI)."""
    if token is False:
        return False
    return token or os.environ.get("HF_TOKEN") or None


# ---- the two network calls (tests patch these) ------------------------------------------------
def _upload(folder: Path, repo_id: str, *, private: bool, token: str | None) -> str:
    from huggingface_hub import HfApi
    api = HfApi(token=token)
    api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
    info = api.upload_folder(folder_path=str(folder), repo_id=repo_id, repo_type="model",
                             commit_message="Upload gm run")
    return str(getattr(info, "commit_url", "") or f"https://huggingface.co/{repo_id}")


def _download(repo_id: str, *, revision: str | None, token: str | None, dest: Path) -> Path:
    from huggingface_hub import snapshot_download
    return Path(snapshot_download(repo_id=repo_id, revision=revision, token=token, local_dir=str(dest),
                                  allow_patterns=ALLOW_PATTERNS))


def _list_files(repo_id: str, *, revision: str | None, token: str | None) -> list[str]:
    from huggingface_hub import list_repo_files
    return list(list_repo_files(repo_id, revision=revision, token=token))


def _network_error(exc: Exception, repo_id: str) -> GMError:
    name = type(exc).__name__
    if "Offline" in name or "Connection" in name or "Timeout" in name or offline():
        return GMError(OFFLINE)
    if "NotFound" in name or "RepositoryNotFound" in name or "Revision" in name:
        return GMError(f"Hub repo '{repo_id}' (or that revision) was not found, or it is private; check the "
                       f"id or pass a token with --token / HF_TOKEN.")
    if "Unauthorized" in name or "401" in str(exc) or "403" in str(exc):
        return GMError(f"The Hub refused access to '{repo_id}'; pass a token with write access with --token "
                       f"or HF_TOKEN.")
    return GMError(f"Hub request for '{repo_id}' failed ({name}: {str(exc).splitlines()[0][:200]}).")


# ---- model card -------------------------------------------------------------------------------
def model_card(cfg: dict[str, Any], evals: list[dict[str, Any]], repo_id: str, steps: int | None) -> str:
    model, dataset = cfg.get("model", "?"), cfg.get("dataset", "?")
    try:
        from gm.registry import get_spec
        blurb = get_spec(model).blurb
    except GMError:
        blurb = ""
    hp = "\n".join(f"| {k} | {v} |" for k, v in sorted(cfg.get("config", {}).items()))
    latest: dict[tuple, dict[str, Any]] = {}
    for e in evals:
        latest[(e.get("metric"), e.get("features"))] = e
    rows = "\n".join(f"| {m} | {f} | {e.get('value'):.4g} | {e.get('n')} | {e.get('step')} |"
                     for (m, f), e in latest.items() if isinstance(e.get("value"), (int, float)))
    metrics = ("| metric | features | value | n | step |\n|---|---|---|---|---|\n" + rows) if rows else \
        "No evaluation recorded yet (`python -m gm eval RUN_DIR`)."
    return f"""---
library_name: gm
tags: [gm, generative-model, {model}, {dataset}]
---
# {repo_id}: {model} on {dataset}

{blurb}

Trained with gm (an interactive lab for image generative models) for {steps if steps is not None else '?'} steps.

![samples](samples.png)

## Metrics
{metrics}

## Hyperparameters
| key | value |
|---|---|
{hp}

## How to load
```bash
python -m gm pull {repo_id}            # -> a run folder in checkpoints/runs/
python -m gm sample checkpoints/runs/{repo_id.replace('/', '--')} --out samples.png
```
Or in the app: Home → *Load from Hub*. Weights are safetensors (no pickle); `config.json` is the run's
config and is validated against the model's dataclass on load.
"""


# ---- push ---------------------------------------------------------------------------------------
def stage(run_dir: str | Path, dest: Path, repo_id: str, *, include_metrics: bool = True) -> Path:
    """Write the flat export of a run into `dest` (what `push` uploads)."""
    from gm.runs.checkpoint import latest_good_checkpoint
    from gm.runs.folder import RunFolder

    run = RunFolder.open(run_dir)
    cfg = run.read_config()
    found = latest_good_checkpoint(run.checkpoints_dir)
    if found is None:
        raise GMError(f"Run '{run.name}' has no checkpoint yet; train it before pushing.")
    step, ckpt = found
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(ckpt / "model.safetensors", dest / "model.safetensors")
    public = {k: v for k, v in cfg.items() if k not in ("data_dir", "weights_only", "pretrained")}  # a local path says nothing
    public["step"] = step
    (dest / "config.json").write_text(json.dumps(public, indent=2), encoding="utf-8")
    grids = run.sample_grids()  # readable PNGs only
    if grids:
        shutil.copyfile(grids[-1][1], dest / "samples.png")
    evals = run.read_eval()  # valid lines only: a damaged line is not published
    if evals:
        _write_lines(dest / "eval.jsonl", evals)
    if include_metrics and run.metrics_path.is_file():
        _write_lines(dest / "metrics.jsonl", run.read_metrics())
    (dest / "README.md").write_text(model_card(cfg, evals, repo_id, step), encoding="utf-8")
    return dest


def _write_lines(path: Path, records: list[dict[str, Any]]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")


def _copy_lines(src: Path, dest: Path, check) -> None:
    """Copy a JSON-lines file keeping only the lines valid under `check` (gm.runs.schema)."""
    from gm.runs.schema import parse_line
    records = [r for r in (parse_line(line, check) for line in src.read_bytes().split(b"\n")) if r is not None]
    _write_lines(dest, records)


def push(run_dir: str | Path, repo_id: str, *, private: bool = False, token: str | None = None,
         include_metrics: bool = True) -> str:
    """Upload a run's weights, config, card, grid (and metrics log); returns the commit URL."""
    check_repo_id(repo_id)
    if offline():
        raise GMError(OFFLINE)
    with tempfile.TemporaryDirectory(prefix="gm-push-") as tmp:
        folder = stage(run_dir, Path(tmp) / "export", repo_id, include_metrics=include_metrics)
        try:
            return _upload(folder, repo_id, private=private, token=_token(token))
        except GMError:
            raise
        except Exception as exc:
            raise _network_error(exc, repo_id) from None


# ---- pull ---------------------------------------------------------------------------------------
def refuse_pickles(files: list[str], repo_id: str) -> None:
    """Pickled weights can run code when loaded: never fetch them; refuse a repo that has nothing else."""
    if any(f.endswith(".safetensors") for f in files):
        return
    pickled = [f for f in files if f.lower().endswith(PICKLED)]
    if pickled:
        raise GMError(f"Hub repo '{repo_id}' offers only pickled weights ({pickled[0]}); gm loads "
                      f"safetensors only, since a pickle can run code. Ask for a .safetensors export.")
    raise GMError(f"Hub repo '{repo_id}' has no model.safetensors; it is not a gm model.")


def import_export(src: Path, runs_dir: str | Path, name: str, *, origin: str | None = None) -> Path:
    """Check a downloaded flat export and turn it into a run folder `<runs_dir>/<name>/`.

    Every file is checked before anything is written (gm.runs.schema.HUB_CONFIG for config.json, a
    step >= 0, weights that fit the model and are finite, a readable samples.png; metrics and eval
    lines that are not valid are left out), and the run folder appears complete or not at all.
    """
    import torch
    from safetensors.torch import load_file

    from gm.config import from_dict, to_dict
    from gm.models.base import DataInfo
    from gm.registry import get_spec
    from gm.runs import schema
    from gm.runs.atomic import write_json_atomic
    from gm.runs.checkpoint import save_checkpoint
    from gm.runs.folder import RunFolder, check_run_name, readable_png

    check_run_name(name)
    owner = f"the download of '{origin or name}'"
    files = [p for p in src.rglob("*") if p.is_file() and ".cache" not in p.parts]
    bad = [p.name for p in files if not p.name.endswith(ALLOWED)]
    if bad:
        raise GMError(f"Refusing the download: {bad[0]} is not one of {', '.join(ALLOWED)}.")
    if not (src / "config.json").is_file() or not (src / "model.safetensors").is_file():
        refuse_pickles([p.name for p in files], origin or name)
        raise GMError("The download has no config.json; it is not a gm model.")
    cfg = schema.read_file(schema.HUB_FILE, src / "config.json", owner=owner, folder=src)
    spec = get_spec(cfg["model"])
    config = from_dict(spec.config_cls, cfg["config"], model=spec.name, saved=True)  # unknown keys, bad values: GMError
    info = DataInfo.from_run_config(cfg)
    try:
        weights = load_file(str(src / "model.safetensors"))
    except Exception as exc:
        raise GMError(f"model.safetensors of {owner} cannot be read ({type(exc).__name__}); it is damaged or "
                      f"not a safetensors file.") from None
    broken = next((k for k, v in weights.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())),
                  None)
    if broken is not None:
        raise GMError(f"model.safetensors of {owner} holds NaN or infinite values in '{broken}'; the model "
                      f"diverged before it was pushed, so it cannot sample.")
    model = spec.build_model(config, info)
    # Strict: wrong shapes or missing parts raise GMError; a pushed shipped run may lack what only
    # training reads (a GAN's discriminator), and a pulled run is weights-only anyway.
    model.load_weights(weights, sampling_only=True)

    runs_dir = Path(runs_dir)
    dest = runs_dir / name
    if dest.resolve().parent != runs_dir.resolve():
        raise GMError(f"Run name {name!r} would write outside {runs_dir}.")
    if dest.exists():
        raise GMError(f"A run named '{name}' already exists in {runs_dir}; delete it or pull with --name.")
    step = int(cfg.get("step") or 0)
    tmp = runs_dir / f".pull-{name}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        (tmp / "samples").mkdir(parents=True)
        local = {k: v for k, v in cfg.items() if k != "step"}
        local.update({"config": to_dict(config), "device": "auto", "data_dir": None, "weights_only": True})
        write_json_atomic(tmp / "config.json", local)
        save_checkpoint(tmp / "checkpoints", step, weights, {})
        if (src / "samples.png").is_file() and readable_png(src / "samples.png"):
            shutil.copyfile(src / "samples.png", tmp / "samples" / f"step-{step}.png")
        for extra, check in (("metrics.jsonl", schema.metrics_record), ("eval.jsonl", schema.eval_record)):
            if (src / extra).is_file():
                _copy_lines(src / extra, tmp / extra, check)
        if (src / "README.md").is_file():
            shutil.copyfile(src / "README.md", tmp / "README.md")
        if not (tmp / "metrics.jsonl").exists():
            (tmp / "metrics.jsonl").touch()
        RunFolder(tmp).write_state(status="finished", step=step, total_steps=step, epoch=0.0, error=None,
                                   last_checkpoint=f"step-{step}", source="hub")
        os.replace(tmp, dest)
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)  # never a half-written run folder
        if isinstance(exc, Exception) and not isinstance(exc, GMError):
            raise GMError(_write_failure(exc, runs_dir)) from None
        raise
    return dest


def _write_failure(exc: Exception, runs_dir: Path) -> str:
    """A full disk or a read-only runs dir while writing the pulled run (safetensors reports those
    as its own SafetensorError, not as an OSError)."""
    text = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
    if isinstance(exc, OSError):
        text = exc.strerror or text
    elif "StorageFull" in text or "No space" in text:
        text = "No space left on device"
    return f"Cannot write the pulled run into {runs_dir} ({text}); free some disk space or choose another --runs-dir."


def pull(repo_id: str, *, revision: str | None = None, runs_dir: str | Path | None = None,
         name: str | None = None, token: str | None = None) -> Path:
    """Download a gm model repo into the runs dir as a finished run folder; returns its path."""
    from gm.runs.folder import check_run_name, default_runs_dir

    check_repo_id(repo_id)
    name = check_run_name(name) if name else run_name_for(repo_id, revision)
    if offline():
        raise GMError(OFFLINE)
    runs_dir = Path(runs_dir) if runs_dir else default_runs_dir()
    if (runs_dir / name).exists():
        raise GMError(f"A run named '{name}' already exists in {runs_dir}; delete it or pull with --name.")
    runs_dir.mkdir(parents=True, exist_ok=True)
    tok = _token(token)
    with tempfile.TemporaryDirectory(prefix="gm-pull-") as tmp:
        try:
            files = _list_files(repo_id, revision=revision, token=tok)
            refuse_pickles(files, repo_id)
            src = _download(repo_id, revision=revision, token=tok, dest=Path(tmp) / "snapshot")
        except GMError:
            raise
        except Exception as exc:
            raise _network_error(exc, repo_id) from None
        try:
            return import_export(src, runs_dir, name, origin=repo_id)
        except GMError:
            raise
        except Exception as exc:  # a malformed download that slipped past the checks: one sentence
            raise GMError(f"The download of '{repo_id}' is not a usable gm model ({type(exc).__name__}: "
                          f"{str(exc).splitlines()[0][:200] if str(exc) else 'no detail'}); ask its owner to "
                          f"re-push it with `python -m gm push`.") from None

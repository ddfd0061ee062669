"""``gm.load_model``: any run folder or pretrained entry -> its model object; and the way back.

A model is saved as a *weights-only run folder* (config.json, state.json, checkpoints/step-N/), the
same format as a training run and the shipped pretrained runs, so one loader serves them all and
``save_pretrained`` / ``from_pretrained`` are symmetric. Loading builds no optimizer and leaves
torch's global RNG as it found it.
"""

from __future__ import annotations

import datetime as _dt
import os
from pathlib import Path
from typing import Any

from gm import __version__
from gm.config import from_dict, to_dict
from gm.device import resolve_device
from gm.errors import GMError
from gm.models.base import DataInfo, GenerativeModel
from gm.runs.checkpoint import latest_good_checkpoint, load_checkpoint, save_checkpoint
from gm.runs.folder import RunFolder, default_runs_dir


def resolve_run(path_or_run: Any) -> RunFolder:
    """A RunFolder from a folder path, a RunFolder, a pretrained entry ("gan", "controlvae-kl14")
    or the name of a run in the runs folder, in that order."""
    if isinstance(path_or_run, RunFolder):
        return RunFolder.open(path_or_run.path)
    text = os.fspath(path_or_run)
    if (Path(text) / "config.json").is_file():
        return RunFolder.open(text)
    from gm.pretrained import find_pretrained
    if "/" not in text and os.sep not in text:
        shipped = find_pretrained(text)
        if shipped is not None:
            return shipped
        local = default_runs_dir() / text
        if (local / "config.json").is_file():
            return RunFolder.open(local)
    return RunFolder.open(text)   # raises the one-sentence "No run at ..." error


def data_info_for(dataset: Any, dataset_name: str, config: Any) -> DataInfo:
    """DataInfo of a dataset as a model of `config` sees it: with the domain names of the split
    its config asks for (config.domain_split()), and the dataset's class names."""
    from dataclasses import replace

    from gm.data.registry import get_dataset_spec
    info = DataInfo.of(dataset, dataset_name)
    spec = get_dataset_spec(dataset_name)
    split = config.domain_split()
    return replace(info, class_names=tuple(spec.classes),
                   domains=tuple(spec.domains(split)) if split else ())


def data_info(run: RunFolder, cfg: dict[str, Any], spec: Any) -> DataInfo:
    """What the model was built for: config.json's data_shape, or (runs from before it was
    recorded) the dataset itself."""
    info = DataInfo.from_run_config(cfg)
    if info is not None:
        return info
    from gm.data import load_dataset
    return DataInfo.of(load_dataset(spec.dataset, cfg.get("data_dir")), spec.dataset)


def load_model(path_or_run: Any, device: str = "auto", checkpoint: Any = None) -> GenerativeModel:
    """The model of a run folder or pretrained entry, with the latest (or given) checkpoint's
    weights, on `device`, in eval mode. No optimizer is built and torch's global RNG is untouched.

    >>> model = gm.load_model("gan", device="cpu")       # a shipped pretrained run
    >>> images = model.sample(16, seed=0)                 # 16 x 1 x 28 x 28 in [0, 1]
    """
    from gm.registry import get_spec
    run = resolve_run(path_or_run)
    cfg = run.read_config()
    spec = get_spec(str(cfg.get("model", "?")))
    config = from_dict(spec.config_cls, cfg.get("config") or {}, model=spec.name, saved=True)
    dev = resolve_device(device)
    model = spec.build_model(config, data_info(run, cfg, spec))
    if checkpoint is None:
        found = latest_good_checkpoint(run.checkpoints_dir)  # a damaged newest one: a warning, the one before
        if found is None:
            raise GMError(f"Run '{run.name}' has no checkpoint yet; train it first.")
        checkpoint = found[1]
    weights, _, _ = load_checkpoint(Path(checkpoint))
    # A weights-only run (shipped pretrained, Hub pull) may keep only what sampling reads.
    model.load_weights(weights, sampling_only=bool(cfg.get("weights_only")))
    model.to(dev)
    model.eval()
    return model


def run_config(model_name: str, config: Any, data: DataInfo, *, device: str = "auto",
               data_dir: str | None = None) -> dict[str, Any]:
    """config.json of a run: model, dataset, every hyperparameter, the data's shape, gm's version."""
    from gm.registry import get_spec
    spec = get_spec(model_name)
    return {"model": model_name, "dataset": spec.dataset, "family": spec.group, "config": to_dict(config),
            "device": device, "data_dir": data_dir, "data_shape": data.to_json(), "gm_version": __version__,
            "created": _dt.datetime.now().isoformat(timespec="seconds")}


def save_model(model: GenerativeModel, folder: Any, *, step: int = 0,
               metrics: list[dict[str, Any]] | None = None) -> RunFolder:
    """Write `model` as a weights-only run folder at `folder` (which must not exist)."""
    if not model.model_name:
        raise GMError("This model has no registry name; build it with gm.registry.get_spec(name).build_model.")
    folder = Path(folder)
    if folder.exists():
        raise GMError(f"{folder} already exists; save the model to a new folder.")
    cfg = run_config(model.model_name, model.config, model.data)
    cfg.update({"pretrained": True, "weights_only": True})
    run = RunFolder.create(folder.parent, folder.name, cfg)
    save_checkpoint(run.checkpoints_dir, step, model.state_dict(), {"elapsed": 0.0})
    if metrics:
        run.append_metrics(metrics)
    run.write_state(status="finished", step=step, total_steps=step, last_checkpoint=f"step-{step}")
    return run

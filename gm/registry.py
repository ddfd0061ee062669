"""Model name -> config class, trainer, dataset and blurb. Adding a model = one module + one entry here."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

from gm.errors import GMError


@dataclass(frozen=True)
class ModelSpec:
    name: str
    dataset: str
    family: str          # "vae" | "gan"
    blurb: str
    config: str          # "module:Class" of the config dataclass
    trainer: str         # "module:Class" of the trainer
    presets: tuple[tuple[str, dict[str, Any]], ...] = ()
    cpu_note: str = ""   # which defaults are reduced for CPUs, and how to get the paper's sizes

    @property
    def config_cls(self) -> type:
        return _load(self.config)

    @property
    def trainer_cls(self) -> type:
        return _load(self.trainer)


def _load(path: str) -> Any:
    module, _, attr = path.partition(":")
    return getattr(importlib.import_module(module), attr)


MODELS: dict[str, ModelSpec] = {}


def register(spec: ModelSpec) -> ModelSpec:
    MODELS[spec.name] = spec
    return spec


register(ModelSpec(
    name="vae", dataset="dsprites", family="vae",
    blurb="VAE of the ControlVAE paper (conv encoder/decoder, latent 10, Bernoulli likelihood).",
    config="gm.trainers.vae:VAEConfig", trainer="gm.trainers.vae:VAETrainer",
))


def get_spec(name: str) -> ModelSpec:
    try:
        return MODELS[name]
    except KeyError:
        raise GMError(f"Unknown model '{name}'; choose one of {', '.join(MODELS)} "
                      f"(`python -m gm models` lists them).") from None


def model_names() -> list[str]:
    return list(MODELS)

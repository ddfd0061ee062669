"""Model name -> config class, trainer and dataset. Adding a model = one module + one entry here, plus
its one-line description in gm/i18n/en.toml ([model], and [cpu_note] when its defaults are CPU-sized)."""

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
    config: str          # "module:Class" of the config dataclass
    trainer: str         # "module:Class" of the trainer
    presets: tuple[tuple[str, dict[str, Any]], ...] = ()

    @property
    def blurb(self) -> str:
        """One line on the model, from the English catalog (gm/i18n/en.toml, [model])."""
        from gm.i18n import t
        return t(f"model.{self.name}", "en")

    @property
    def cpu_note(self) -> str:
        """Which defaults are reduced for CPUs and how to get the paper's sizes ("" if none)."""
        from gm.i18n import catalog
        return catalog("en").get(f"cpu_note.{self.name}", "")

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
    config="gm.trainers.vae:VAEConfig", trainer="gm.trainers.vae:VAETrainer",
))

register(ModelSpec(
    name="betavae", dataset="dsprites", family="vae",
    config="gm.trainers.controlvae:BetaVAEConfig", trainer="gm.trainers.controlvae:BetaVAETrainer",
))

register(ModelSpec(
    name="controlvae", dataset="dsprites", family="vae",
    config="gm.trainers.controlvae:ControlVAEConfig",
    trainer="gm.trainers.controlvae:ControlVAETrainer",
    presets=(("kl8", {"kl_target": 8}), ("kl14", {"kl_target": 14})),
))


# ---- GAN family on MNIST (gm/trainers/gan.py, wgan.py, ssgan.py, acgan.py) ------------------
register(ModelSpec(
    name="gan", dataset="mnist", family="gan",
    config="gm.trainers.gan:GANConfig", trainer="gm.trainers.gan:GANTrainer",
))

register(ModelSpec(
    name="dcgan", dataset="mnist", family="gan",
    config="gm.trainers.gan:DCGANConfig", trainer="gm.trainers.gan:DCGANTrainer",
    presets=(("tricks", {"label_smoothing": True, "instance_noise": 0.2}),),
))

register(ModelSpec(
    name="wgan", dataset="mnist", family="gan",
    config="gm.trainers.wgan:WGANConfig", trainer="gm.trainers.wgan:WGANTrainer",
))

register(ModelSpec(
    name="wgan-gp", dataset="mnist", family="gan",
    config="gm.trainers.wgan:WGANGPConfig", trainer="gm.trainers.wgan:WGANGPTrainer",
))

register(ModelSpec(
    name="ssgan", dataset="mnist", family="gan",
    config="gm.trainers.ssgan:SSGANConfig", trainer="gm.trainers.ssgan:SSGANTrainer",
))

register(ModelSpec(
    name="acgan", dataset="mnist", family="gan",
    config="gm.trainers.acgan:ACGANConfig", trainer="gm.trainers.acgan:ACGANTrainer",
))


def get_spec(name: str) -> ModelSpec:
    try:
        return MODELS[name]
    except KeyError:
        raise GMError(f"Unknown model '{name}'; choose one of {', '.join(MODELS)} "
                      f"(`python -m gm models` lists them).") from None


def model_names() -> list[str]:
    return list(MODELS)

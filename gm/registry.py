"""Model name -> dataset, model object, config and trainer. Adding a model = one module (or one
config with its hooks) + one entry here, plus its one-line description in gm/i18n/en.toml and
fa.toml ([model], and [cpu_note] when its defaults are CPU-sized). README "Adding a model" walks
through one.

What a model can do (sample from noise, take a class, encode, translate) is declared by its model
class (gm.models.base capabilities); ``ModelSpec.capabilities`` reads it without building anything,
and that is what views, charts, metrics and forms dispatch on. ``group`` is only a label for
listings (and config.json's historical "family" field): nothing branches on it.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

from gm.errors import GMError


@dataclass(frozen=True)
class ModelSpec:
    name: str
    dataset: str
    # Each of these is a "module:Class" string (imported on first use, so listing models stays
    # fast) or the class itself.
    model: str | type    # the model object (gm.models.base.GenerativeModel)
    config: str | type   # the config dataclass
    trainer: str | type  # the trainer (gm.trainers.base.Trainer)
    group: str = ""      # listing label ("vae", "gan", ...); never used to choose behaviour
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
    def model_cls(self) -> type:
        return _load(self.model)

    @property
    def trainer_cls(self) -> type:
        return _load(self.trainer)

    @property
    def capabilities(self) -> frozenset[str]:
        from gm.models.base import capabilities_of
        return capabilities_of(self.model_cls)

    def can(self, capability: str) -> bool:
        return capability in self.capabilities

    def build_model(self, config: Any, data: Any) -> Any:
        """A fresh model object (weights from the config's seed; torch's global RNG untouched)."""
        model = self.model_cls(config, data)
        model.model_name = self.name
        return model

    def build_trainer(self, model: Any, config: Any | None = None) -> Any:
        return self.trainer_cls(model, config)

    def new_trainer(self, config: Any, dataset: Any, device: Any = "cpu") -> Any:
        """A fresh model for `dataset` on `device` and its trainer (scripts, benchmarks, tests)."""
        import torch

        from gm.models.loading import data_info_for  # with the domain names of the config's split
        model = self.build_model(config, data_info_for(dataset, self.dataset, config)).to(torch.device(device))
        return self.build_trainer(model)


def _load(path: str | type) -> Any:
    if not isinstance(path, str):
        return path
    module, _, attr = path.partition(":")
    return getattr(importlib.import_module(module), attr)


MODELS: dict[str, ModelSpec] = {}


def register(spec: ModelSpec) -> ModelSpec:
    """Add a model to the table (every CLI command, page and registry-wide test then sees it)."""
    MODELS[spec.name] = spec
    return spec


def unregister(name: str) -> None:
    """Remove a model from the table (tests that register one of their own clean up with this)."""
    MODELS.pop(name, None)


register(ModelSpec(
    name="vae", dataset="dsprites", group="vae", model="gm.models.vae:VAEModel",
    config="gm.trainers.vae:VAEConfig", trainer="gm.trainers.vae:VAETrainer",
))

register(ModelSpec(
    name="betavae", dataset="dsprites", group="vae", model="gm.models.vae:VAEModel",
    config="gm.trainers.controlvae:BetaVAEConfig", trainer="gm.trainers.controlvae:BetaVAETrainer",
))

register(ModelSpec(
    name="controlvae", dataset="dsprites", group="vae", model="gm.models.vae:VAEModel",
    config="gm.trainers.controlvae:ControlVAEConfig",
    trainer="gm.trainers.controlvae:ControlVAETrainer",
    presets=(("kl8", {"kl_target": 8}), ("kl14", {"kl_target": 14})),
))


# ---- GANs on MNIST: configs + hooks (gm/trainers/gan.py, wgan.py, ssgan.py, acgan.py), one trainer --
ADVERSARIAL = "gm.trainers.adversarial:AdversarialTrainer"

register(ModelSpec(
    name="gan", dataset="mnist", group="gan", model="gm.models.gan_model:GANModel",
    config="gm.trainers.gan:GANConfig", trainer=ADVERSARIAL,
))

register(ModelSpec(
    name="dcgan", dataset="mnist", group="gan", model="gm.models.gan_model:GANModel",
    config="gm.trainers.gan:DCGANConfig", trainer=ADVERSARIAL,
    presets=(("tricks", {"label_smoothing": True, "instance_noise": 0.2}),),
))

register(ModelSpec(
    name="wgan", dataset="mnist", group="gan", model="gm.models.gan_model:GANModel",
    config="gm.trainers.wgan:WGANConfig", trainer=ADVERSARIAL,
))

register(ModelSpec(
    name="wgan-gp", dataset="mnist", group="gan", model="gm.models.gan_model:GANModel",
    config="gm.trainers.wgan:WGANGPConfig", trainer=ADVERSARIAL,
))

register(ModelSpec(
    name="ssgan", dataset="mnist", group="gan", model="gm.models.gan_model:GANModel",
    config="gm.trainers.ssgan:SSGANConfig", trainer=ADVERSARIAL,
))

register(ModelSpec(
    name="acgan", dataset="mnist", group="gan", model="gm.models.gan_model:ConditionalGANModel",
    config="gm.trainers.acgan:ACGANConfig", trainer=ADVERSARIAL,
))


register(ModelSpec(
    name="lsgan", dataset="mnist", group="gan", model="gm.models.gan_model:GANModel",
    config="gm.trainers.gan:LSGANConfig", trainer=ADVERSARIAL,
))


# ---- image-to-image translation on a dataset's domain split (gm/trainers/cyclegan.py, stargan.py) -----
register(ModelSpec(
    name="cyclegan", dataset="dsprites", group="translation", model="gm.models.cyclegan:CycleGANModel",
    config="gm.trainers.cyclegan:CycleGANConfig", trainer="gm.trainers.cyclegan:CycleGANTrainer",
    presets=(("square-heart", {"source": "square", "target": "heart"}),
             ("ellipse-heart", {"source": "ellipse", "target": "heart"})),
))

register(ModelSpec(
    name="stargan", dataset="dsprites", group="translation", model="gm.models.stargan:StarGANModel",
    config="gm.trainers.stargan:StarGANConfig", trainer="gm.trainers.stargan:StarGANTrainer",
))


# The same two models on MNIST digits in three rendered styles (gm/data/mnist_style.py): a digit
# task whose true counterparts are known, like dSprites' shapes.
register(ModelSpec(
    name="cyclegan-digits", dataset="mnist-style", group="translation", model="gm.models.cyclegan:CycleGANModel",
    config="gm.trainers.cyclegan:DigitCycleGANConfig", trainer="gm.trainers.cyclegan:CycleGANTrainer",
    presets=(("plain-slanted", {"source": "plain", "target": "slanted"}),
             ("bold-slanted", {"source": "bold", "target": "slanted"})),
))

register(ModelSpec(
    name="stargan-digits", dataset="mnist-style", group="translation", model="gm.models.stargan:StarGANModel",
    config="gm.trainers.stargan:DigitStarGANConfig", trainer="gm.trainers.stargan:StarGANTrainer",
))


def get_spec(name: str) -> ModelSpec:
    try:
        return MODELS[name]
    except KeyError:
        raise GMError(f"Unknown model '{name}'; choose one of {', '.join(MODELS)} "
                      f"(`python -m gm models` lists them).") from None


def model_names() -> list[str]:
    return list(MODELS)

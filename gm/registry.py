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

register(ModelSpec(
    name="betavae", dataset="dsprites", family="vae",
    blurb="β-VAE: the same VAE with a fixed weight β on the KL term (--set beta=..., default 4).",
    config="gm.trainers.controlvae:BetaVAEConfig", trainer="gm.trainers.controlvae:BetaVAETrainer",
))

register(ModelSpec(
    name="controlvae", dataset="dsprites", family="vae",
    blurb="ControlVAE: a PI controller sets β each step to hold KL at kl_target "
          "(presets kl8, kl14: the assignment's set points).",
    config="gm.trainers.controlvae:ControlVAEConfig",
    trainer="gm.trainers.controlvae:ControlVAETrainer",
    presets=(("kl8", {"kl_target": 8}), ("kl14", {"kl_target": 14})),
))


# ---- GAN family on MNIST (gm/trainers/gan.py, wgan.py, ssgan.py, acgan.py) ------------------
register(ModelSpec(
    name="gan", dataset="mnist", family="gan",
    blurb="The assignment's GAN: PixelShuffle generator (Table 2) and conv discriminator (Table 3), "
          "non-saturating loss, latent 64.",
    config="gm.trainers.gan:GANConfig", trainer="gm.trainers.gan:GANTrainer",
    cpu_note="Paper size by default (width 1): small enough for a CPU.",
))

register(ModelSpec(
    name="dcgan", dataset="mnist", family="gan",
    blurb="The TensorFlow tutorial's MNIST DCGAN (noise 100, batch 256, Adam 1e-4) with switches for "
          "one-sided label smoothing and annealed instance noise.",
    config="gm.trainers.gan:DCGANConfig", trainer="gm.trainers.gan:DCGANTrainer",
    presets=(("tricks", {"label_smoothing": True, "instance_noise": 0.2}),),
    cpu_note="CPU default width 0.5 (half the channels); --set width=1 gives the tutorial's 256/128/64.",
))

register(ModelSpec(
    name="wgan", dataset="mnist", family="gan",
    blurb="WGAN: the GAN's networks with a critic (no sigmoid), weight clipping 0.01, RMSProp 5e-5, "
          "5 critic steps per generator step.",
    config="gm.trainers.wgan:WGANConfig", trainer="gm.trainers.wgan:WGANTrainer",
    cpu_note="Paper size by default (width 1, arch gan); arch=dcgan is slow on a CPU at width 1.",
))

register(ModelSpec(
    name="wgan-gp", dataset="mnist", family="gan",
    blurb="WGAN-GP: gradient penalty λ=10 instead of clipping, Adam 1e-4 (0.5, 0.9), 5 critic steps, "
          "no batch norm in the critic.",
    config="gm.trainers.wgan:WGANGPConfig", trainer="gm.trainers.wgan:WGANGPTrainer",
    cpu_note="Paper size by default (width 1, arch gan); arch=dcgan is slow on a CPU at width 1.",
))

register(ModelSpec(
    name="ssgan", dataset="mnist", family="gan",
    blurb="SSGAN: ResNet GAN with spectral norm, hinge loss and a 4-way rotation head "
          "(rotation loss 1.0 for D, 0.2 for G); MNIST padded to 32x32.",
    config="gm.trainers.ssgan:SSGANConfig", trainer="gm.trainers.ssgan:SSGANTrainer",
    cpu_note="CPU default width 0.125 (32-channel G, 16-channel D); --set width=1 gives the paper's "
             "256/128 channels (about 10 s per batch of 64 on 2 CPU cores: use a GPU).",
))

register(ModelSpec(
    name="acgan", dataset="mnist", family="gan",
    blurb="ACGAN: class-conditional DCGAN whose discriminator also classifies the digit; "
          "grids show one row per class.",
    config="gm.trainers.acgan:ACGANConfig", trainer="gm.trainers.acgan:ACGANTrainer",
    cpu_note="CPU default width 0.5; --set width=1 gives the DCGAN's full channel counts.",
))


def get_spec(name: str) -> ModelSpec:
    try:
        return MODELS[name]
    except KeyError:
        raise GMError(f"Unknown model '{name}'; choose one of {', '.join(MODELS)} "
                      f"(`python -m gm models` lists them).") from None


def model_names() -> list[str]:
    return list(MODELS)

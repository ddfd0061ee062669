"""The model objects users hold (the diffusers idea): networks + config, no optimizer, no loop.

A :class:`GenerativeModel` is an ``nn.Module`` whose children are its networks, named as their
weights are saved (``vae``; ``generator`` and ``discriminator``), so ``state_dict()`` is exactly a
checkpoint's ``model.safetensors``. What a model can do is *declared* by the capability classes it
inherits from, and views, charts, metrics and forms dispatch on them (:func:`capabilities_of`),
never on a model's name:

    SamplesFromNoise   sample(n, seed), sample_from(z), latent_dim        ("samples")
    ClassConditional   num_classes, class_names; sample(..., labels=...)   ("conditional")
    Encodes            encode(images) -> (mu, logvar), decode(z)           ("encodes")
    Translates         domains, translate(images, to=..., source=...)      ("translates")

Networks are built in :func:`isolated_init`: under the config's seed (so a fresh model's weights are
reproducible) on a forked copy of torch's global RNG, which is restored afterwards. Building a model
therefore never changes the random state of anything else in the process (another training job, a
user's script).
"""

from __future__ import annotations

import contextlib
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from gm.errors import GMError


# ---- what the data looks like to a model ------------------------------------------------------
@dataclass(frozen=True)
class DataInfo:
    """The facts of a dataset a model is built for (stored in a run's config.json as data_shape)."""

    dataset: str
    image_shape: tuple[int, int, int]
    max_value: int
    num_classes: int = 0
    size: int = 0
    class_names: tuple[str, ...] = ()
    domains: tuple[str, ...] = ()

    @classmethod
    def of(cls, dataset: Any, name: str | None = None) -> DataInfo:
        """From an :class:`gm.data.base.ImageDataset` (or anything with the same attributes)."""
        return cls(dataset=name or dataset.name, image_shape=tuple(dataset.image_shape),
                   max_value=int(dataset.max_value), num_classes=int(dataset.num_classes or 0),
                   size=len(dataset))

    @classmethod
    def from_run_config(cls, cfg: dict[str, Any]) -> DataInfo | None:
        """From config.json's ``data_shape`` (None when a very old run folder has none)."""
        meta = cfg.get("data_shape")
        if not isinstance(meta, dict):
            return None
        try:
            shape = tuple(int(v) for v in meta["image_shape"])
            if len(shape) != 3:
                raise ValueError
            return cls(dataset=str(cfg.get("dataset", "")), image_shape=shape,  # type: ignore[arg-type]
                       max_value=int(meta["max_value"]), num_classes=int(meta.get("num_classes") or 0),
                       size=int(meta.get("size") or 0),
                       domains=tuple(str(d) for d in meta.get("domains") or ()))
        except (KeyError, TypeError, ValueError):
            raise GMError("config.json's data_shape is damaged (image_shape, max_value); the run "
                          "folder cannot be loaded.") from None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"image_shape": list(self.image_shape), "max_value": self.max_value,
                               "num_classes": self.num_classes, "size": self.size}
        if self.domains:
            out["domains"] = list(self.domains)
        return out


# ---- building networks without touching the caller's random state -------------------------------
_INIT_LOCK = threading.Lock()


@contextlib.contextmanager
def isolated_init(seed: int) -> Iterator[None]:
    """Run network construction under ``torch.manual_seed(seed)`` and restore torch's global RNG
    afterwards; the lock keeps two threads building at once from seeing each other's seeds."""
    with _INIT_LOCK, torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


# ---- capabilities -------------------------------------------------------------------------------
class Capability(ABC):  # noqa: B024 (the abstract methods are in each capability)
    """A declared ability; ``key`` is how run listings, forms and views name it. Its methods are
    abstract: a model class that declares a capability and lacks one of them cannot be built."""

    key: ClassVar[str] = ""


class SamplesFromNoise(Capability):
    """Draws images from noise: ``latent_dim``, ``sample(n, seed)``, ``sample_from(z)``."""

    key = "samples"
    latent_dim: int

    @abstractmethod
    def sample_from(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Images in [0, 1] for latent codes z (N x latent_dim)."""

    @abstractmethod
    def latent_layer(self) -> nn.Module:
        """The network that takes z first (its first layer gives the latent directions)."""


class ClassConditional(Capability):
    """Draws images of a requested class: ``num_classes``, ``class_names``, ``sample(labels=...)``."""

    key = "conditional"
    num_classes: int

    @abstractmethod
    def grid_classes(self) -> torch.Tensor:
        """The class of each image of the saved grid."""


class Encodes(Capability):
    """Maps images to a latent code and back: ``encode(images)``, ``decode(z)``."""

    key = "encodes"
    latent_dim: int

    @abstractmethod
    def encode(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(mu, logvar) of q(z|x) for images in [0, 1]."""

    @abstractmethod
    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Images in [0, 1] for latent codes z."""


class Translates(Capability):
    """Turns an image of one domain into another: ``domains``, ``translate(images, to=, source=)``."""

    key = "translates"
    domains: tuple[str, ...]

    @abstractmethod
    def translate(self, images: torch.Tensor, to: str, source: str | None = None) -> torch.Tensor:
        """`images` (N x C x H x W in [0, 1]) of domain `source` (any, when None) as domain `to`,
        in [0, 1]."""

    def pairs(self) -> tuple[tuple[str, str], ...]:
        """The (source, target) domain pairs this model translates: every ordered pair by default
        (a CycleGAN translates its two domains both ways, a StarGAN any domain to any other)."""
        return tuple((a, b) for a in self.domains for b in self.domains if a != b)

    def domain_split_of(self, domain: str) -> str:
        """The dataset split a domain belongs to (one split unless the model combines label sets)."""
        return str(self.config.domain_split())  # type: ignore[attr-defined]

    def reconstruct(self, images: torch.Tensor, source: str, to: str) -> torch.Tensor:
        """The cycle: `images` of `source` translated to `to` and back to `source`."""
        there = self.translate(images, to=to, source=source)
        return self.translate(there, to=source, source=to)

    def translator_parameters(self) -> int:
        """Parameters a user needs to translate between every pair this model covers: its networks
        minus the training-only ones (the discriminators) — the papers' "parameters" column."""
        drop = self.training_only()  # type: ignore[attr-defined]
        return sum(p.numel() for name, p in self.named_parameters()  # type: ignore[attr-defined]
                   if not (drop and name.startswith(drop)))


CAPABILITIES: tuple[type[Capability], ...] = (SamplesFromNoise, ClassConditional, Encodes, Translates)


def capabilities_of(model: Any) -> frozenset[str]:
    """The capability keys a model (instance or class) declares."""
    cls = model if isinstance(model, type) else type(model)
    return frozenset(c.key for c in CAPABILITIES if issubclass(cls, c))


def has_capability(model: Any, key: str) -> bool:
    return key in capabilities_of(model)


# ---- the model object -----------------------------------------------------------------------------
class GenerativeModel(nn.Module):
    """Networks + config + the data they were built for. Subclasses build the networks in
    :meth:`build` (called under :func:`isolated_init`) and implement :meth:`sample`."""

    image_range: ClassVar[str] = "unit"          # what the networks take: "unit" [0, 1], "signed" [-1, 1]
    grid_shape: ClassVar[tuple[int, int]] = (10, 10)   # rows, cols of the saved sample grid
    grid_seed_offset: ClassVar[int] = 12345      # the grid's fixed seed is config.seed + this

    def __init__(self, config: Any, data: DataInfo) -> None:
        super().__init__()
        self.config = config
        self.data = data
        self.model_name = ""                      # the registry name; set by the registry / loader
        with isolated_init(int(config.seed)):
            self.build()

    @abstractmethod
    def build(self) -> None:
        """Create the networks as child modules (self.vae = ..., self.generator = ...)."""

    def sample(self, n: int, seed: int, labels: torch.Tensor | None = None) -> torch.Tensor:
        """n images in [0, 1] (N x C x H x W) of the data's size, the same for the same seed
        (models that sample from noise implement this)."""
        raise GMError(f"Model '{self.model_name or type(self).__name__}' does not sample from noise.")

    # ---- shared ---------------------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return self.data.image_shape

    @property
    def max_value(self) -> int:
        return self.data.max_value

    @property
    def capabilities(self) -> frozenset[str]:
        return capabilities_of(self)

    def networks(self) -> dict[str, nn.Module]:
        """The networks by the name their weights are saved under."""
        return dict(self.named_children())

    @torch.no_grad()
    def sample_grid(self) -> tuple[torch.Tensor, int]:
        """The fixed-seed grid a run saves to samples/: (images, images per row), in eval mode."""
        rows, cols = self.grid_shape
        with self.evaluating():
            return self.sample(rows * cols, seed=int(self.config.seed) + self.grid_seed_offset), cols

    @contextlib.contextmanager
    def evaluating(self) -> Iterator[None]:
        """Eval mode for the block, then each network's previous mode (a training job's model)."""
        was = {name: m.training for name, m in self.named_children()}
        self.train(False)
        try:
            yield
        finally:
            for name, m in self.named_children():
                m.train(was[name])

    def training_only(self) -> tuple[str, ...]:
        """State-dict prefixes of the networks sampling never reads (a GAN's discriminator): a
        weights-only run (shipped pretrained, pulled from the Hub) may leave them out."""
        return ()

    def sampling_weights(self, weights: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """`weights` without the training-only networks (see :meth:`training_only`)."""
        drop = self.training_only()
        return {k: v for k, v in weights.items() if not k.startswith(drop)} if drop else dict(weights)

    def load_weights(self, weights: dict[str, torch.Tensor], strict: bool = True,
                     sampling_only: bool = False) -> None:
        """Load ``<network>.<param>`` tensors (any float dtype: fp16 pretrained weights are cast).
        ``sampling_only``: the training-only networks may be absent (they keep their initial weights;
        such a model samples but must not be trained)."""
        expected = self.state_dict()
        if sampling_only and self.training_only():
            expected = {k: v for k, v in expected.items()
                        if not k.startswith(self.training_only()) or k in weights}
        missing = sorted(set(expected) - set(weights))
        bad = [k for k in expected if k in weights and tuple(weights[k].shape) != tuple(expected[k].shape)]
        if strict and (missing or bad):
            what = f"missing {missing[:3]}" if missing else f"shape mismatch at {bad[:3]}"
            raise GMError(f"Weights do not fit model '{self.model_name or type(self).__name__}' ({what}); "
                          f"check the model name and width in config.json.")
        self.load_state_dict({k: v.to(expected[k].dtype) for k, v in weights.items() if k in expected},
                             strict=strict and not sampling_only)

    def save_pretrained(self, folder: Any, *, step: int = 0, metrics: list[dict[str, Any]] | None = None) -> Any:
        """Write a weights-only run folder (config.json, state.json, checkpoints/step-N/) that
        :meth:`from_pretrained` and :func:`gm.load_model` read back; returns its RunFolder."""
        from gm.models.loading import save_model
        return save_model(self, folder, step=step, metrics=metrics)

    @classmethod
    def from_pretrained(cls, path_or_run: Any, device: str = "auto", checkpoint: Any = None) -> GenerativeModel:
        """Load a run folder, a pretrained entry's name or a run name (see :func:`gm.load_model`)."""
        from gm.models.loading import load_model
        model = load_model(path_or_run, device=device, checkpoint=checkpoint)
        if not isinstance(model, cls):
            raise GMError(f"'{path_or_run}' holds a {type(model).__name__}, not a {cls.__name__}.")
        return model


def domain_index(domains: tuple[str, ...], name: str) -> int:
    """Position of a domain by name, with one sentence when it is not one of them."""
    try:
        return domains.index(name)
    except ValueError:
        raise GMError(f"Unknown domain '{name}'; this model translates between "
                      f"{', '.join(domains)}.") from None


__all__ = ["CAPABILITIES", "Capability", "ClassConditional", "DataInfo", "Encodes", "GenerativeModel",
           "SamplesFromNoise", "Translates", "capabilities_of", "domain_index", "has_capability",
           "isolated_init"]

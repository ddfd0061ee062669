"""The trainer interface every model family implements (in the spirit of Mimicry's train_step).

A trainer owns its networks, optimizers and a noise RNG on the training device. The loop in
gm.runs.loop drives it: ``train_step`` takes one uint8 batch (and labels) and returns a dict of
metrics as tensors — 0-d tensors are averaged over the logging window on the device (one host sync
per log, not per step), 1-d tensors are logged as lists (last value). Everything needed to continue
exactly (weights, optimizer state, RNG, counters) round-trips through ``state_dict``.

``train_step`` = ``prepare`` (uint8 -> the float tensor the networks take) + ``optimize`` (one
step on that float tensor). Benchmarks call ``optimize`` directly on batches from elsewhere (a
torchvision DataLoader, a tensor kept in memory), so every comparison runs the same losses.

Performance options of the config (``precision``, ``channels_last``, ``compile``) are applied by
:meth:`Trainer.apply_performance_options`, which the training loop calls; every network call of a
step goes through :meth:`Trainer.fwd`, which is a plain call under the defaults (fp32, eager).
"""

from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import nn

from gm.data.base import ImageDataset, to_signed, to_unit
from gm.errors import GMError

AUTOCAST_DTYPES = {"fp32": None, "bf16": torch.bfloat16}


def _as_float(out: Any) -> Any:
    """Network outputs back to float32 after autocast, so losses and metrics stay in fp32."""
    if isinstance(out, torch.Tensor):
        return out.float()
    if isinstance(out, tuple):
        return tuple(_as_float(o) for o in out)
    return out


def _compile_errors() -> tuple[type[BaseException], ...]:
    from torch._dynamo.exc import TorchDynamoException
    from torch._inductor.exc import CppCompileError
    return (TorchDynamoException, CppCompileError)


class Trainer(ABC):
    family: str = ""                      # "vae" | "gan"
    image_range: str = "unit"             # "unit" = [0, 1] (VAE), "signed" = [-1, 1] (GANs)
    grid_shape: tuple[int, int] = (10, 10)  # rows, cols of the saved sample grid
    uses_labels: bool = False

    def __init__(self, config: Any, dataset: ImageDataset, device: torch.device) -> None:
        self.config = config
        self.device = device
        self.image_shape = dataset.image_shape
        self.max_value = dataset.max_value
        self.num_classes = dataset.num_classes
        torch.manual_seed(config.seed)
        self.noise = torch.Generator(device=device)
        self.noise.manual_seed(config.seed + 1)
        self.step = 0
        self._autocast: torch.dtype | None = None   # set by apply_performance_options
        self._channels_last = False
        self._compiled = False

    # ---- what each family implements -----------------------------------------------------------
    @abstractmethod
    def modules(self) -> dict[str, nn.Module]:
        """The networks, by the name their weights are saved under (e.g. "generator")."""

    @abstractmethod
    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """The optimizers, by name (their state is checkpointed)."""

    @abstractmethod
    def optimize(self, x: torch.Tensor, labels: torch.Tensor | None) -> dict[str, torch.Tensor | float]:
        """One optimisation step on a prepared float batch (see ``prepare``); metrics as detached
        tensors (or floats). Increments ``self.step``."""

    @abstractmethod
    def sample(self, n: int, seed: int, labels: torch.Tensor | None = None) -> torch.Tensor:
        """n images in [0, 1] (N x C x H x W), reproducible for a given seed (run under no_grad)."""

    # ---- shared -------------------------------------------------------------------------------
    def prepare(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 batch -> the float images the networks take: [0, 1] ("unit") or [-1, 1] ("signed")."""
        if self.image_range == "unit":
            return to_unit(images, self.max_value)
        return to_signed(images, self.max_value)

    def train_step(self, images: torch.Tensor, labels: torch.Tensor | None) -> dict[str, torch.Tensor | float]:
        """One optimisation step on a uint8 batch as the loop draws it."""
        x = self.prepare(images)
        if not self._compiled:
            return self.optimize(x, labels)
        with self._compile_guard():
            return self.optimize(x, labels)

    def fwd(self, fn: Callable[..., Any], *args: Any) -> Any:
        """``fn(*args)`` — a network's forward — under the run's performance options.

        fp32 eager (the default): exactly ``fn(*args)``. ``channels_last``: 4-d inputs in
        channels-last layout. ``precision=bf16``: the call under autocast, outputs back in float32 so
        losses and metrics are computed in fp32 (bf16 keeps fp32's range: no loss scaling needed).
        """
        if self._channels_last:
            args = tuple(a.contiguous(memory_format=torch.channels_last)
                         if isinstance(a, torch.Tensor) and a.dim() == 4 else a for a in args)
        if self._autocast is None:
            return fn(*args)
        with torch.autocast(self.device.type, dtype=self._autocast):
            out = fn(*args)
        return _as_float(out)

    def apply_performance_options(self) -> None:
        """Apply the config's precision, channels_last and compile to the networks (once)."""
        precision = getattr(self.config, "precision", "fp32")
        if precision not in AUTOCAST_DTYPES:
            raise GMError(f"'precision' must be one of {', '.join(AUTOCAST_DTYPES)}; got {precision!r}.")
        self._autocast = AUTOCAST_DTYPES[precision]
        if getattr(self.config, "channels_last", False) and not self._channels_last:
            for m in self.modules().values():
                m.to(memory_format=torch.channels_last)  # in place: the optimizers keep their params
            self._channels_last = True
        if getattr(self.config, "compile", False) and not self._compiled:
            for m in self.modules().values():
                m.compile()  # in place: state_dict keys (and so checkpoints) stay the same
            self._compiled = True

    @contextlib.contextmanager
    def _compile_guard(self) -> Iterator[None]:
        """torch.compile fails at the first call, deep inside inductor: say it in one sentence."""
        try:
            yield
        except _compile_errors() as exc:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
            raise GMError(f"torch.compile could not compile the networks on {self.device.type} "
                          f"({type(exc).__name__}: {first}); train with compile=false.") from exc

    def batches_per_step(self) -> int:
        """Real batches one train_step consumes (e.g. n_critic for WGANs); may depend on self.step.

        The loop draws that many batches and passes them concatenated along dim 0; split them with
        ``images.chunk(k)``.
        """
        return 1

    def images_per_step(self) -> int:
        return self.config.batch_size * self.batches_per_step()

    def extra_state(self) -> dict[str, Any]:
        """Anything else a subclass must carry across a resume (controller, counters)."""
        return {}

    def load_extra_state(self, state: dict[str, Any]) -> None:  # noqa: B027 (optional hook)
        """Restore what extra_state() saved; families without extra state keep this no-op."""

    def weights(self) -> dict[str, torch.Tensor]:
        return {f"{name}.{k}": v for name, m in self.modules().items() for k, v in m.state_dict().items()}

    def load_weights(self, weights: dict[str, torch.Tensor], strict: bool = True) -> None:
        for name, module in self.modules().items():
            prefix = f"{name}."
            part = {k[len(prefix):]: v for k, v in weights.items() if k.startswith(prefix)}
            expected = module.state_dict()
            missing = sorted(set(expected) - set(part))
            bad = [k for k in expected if k in part and tuple(part[k].shape) != tuple(expected[k].shape)]
            if strict and (missing or bad):
                what = f"missing {missing[:3]}" if missing else f"shape mismatch at {bad[:3]}"
                raise GMError(f"Weights do not fit model part '{name}' ({what}); check the model name and "
                              f"width in config.json.")
            module.load_state_dict({k: v.to(expected[k].dtype) for k, v in part.items()}, strict=strict)

    def state_dict(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "optimizers": {k: o.state_dict() for k, o in self.optimizers().items()},
            "noise_rng": self.noise.get_state(),
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state(self.device) if self.device.type == "cuda" else None,
            "extra": self.extra_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.step = int(state["step"])
        for k, opt in self.optimizers().items():
            opt.load_state_dict(state["optimizers"][k])
        self.noise.set_state(state["noise_rng"])
        torch.set_rng_state(state["torch_rng"])
        if state.get("cuda_rng") is not None and self.device.type == "cuda":
            torch.cuda.set_rng_state(state["cuda_rng"], self.device)
        self.load_extra_state(state.get("extra") or {})

    def train(self, mode: bool = True) -> None:
        for m in self.modules().values():
            m.train(mode)

    @torch.no_grad()
    def sample_grid(self) -> tuple[torch.Tensor, int]:
        """The fixed-seed grid saved to samples/: (images, images per row)."""
        rows, cols = self.grid_shape
        was = {k: m.training for k, m in self.modules().items()}
        self.train(False)
        try:
            with self._compile_guard() if self._compiled else contextlib.nullcontext():
                images = self.sample(rows * cols, seed=self.config.seed + 12345)
        finally:
            for k, m in self.modules().items():
                m.train(was[k])
        return images, cols

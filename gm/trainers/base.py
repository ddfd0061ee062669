"""The trainer interface every model family implements (in the spirit of Mimicry's train_step).

A trainer takes a model (gm.models: the networks) and adds optimizers, losses and a noise RNG on
the training device. The loop in gm.runs.loop drives it: ``train_step`` takes one
:class:`gm.data.base.Batch` (uint8 images per domain, labels) and returns a dict of
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
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from gm.data.base import Batch, to_signed, to_unit
from gm.errors import GMError
from gm.models.base import ClassConditional, GenerativeModel
from gm.models.init import bind_generator

if TYPE_CHECKING:
    from gm.runs.distributed import Group

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
    """Optimizers, losses and their state around a :class:`gm.models.base.GenerativeModel`.

    The model holds the networks (and samples); the trainer adds what only training needs: the
    optimizers, a noise generator of its own (latents, dropout masks, penalties: never torch's
    global RNG, so two jobs in one process do not disturb each other), the step counter and any
    extra state (e.g. ControlVAE's controller).
    """

    def __init__(self, model: GenerativeModel, config: Any | None = None) -> None:
        self.model = model
        self.config = config if config is not None else model.config
        self.device = model.device
        self.noise = torch.Generator(device=self.device)
        self.noise.manual_seed(int(self.config.seed) + 1)
        bind_generator(model, self.noise)
        self.step = 0
        self.group: Group | None = None   # the process group under torchrun (see distribute)
        self._autocast: torch.dtype | None = None   # set by apply_performance_options
        self._channels_last = False
        self._compiled = False

    # ---- what each trainer implements ----------------------------------------------------------
    @abstractmethod
    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """The optimizers, by name (their state is checkpointed)."""

    @abstractmethod
    def optimize(self, x: torch.Tensor, labels: torch.Tensor | None) -> dict[str, torch.Tensor | float]:
        """One optimisation step on a prepared float batch (see ``prepare``); metrics as detached
        tensors (or floats). Increments ``self.step``."""

    # ---- shared -------------------------------------------------------------------------------
    @property
    def wants_labels(self) -> bool:
        """Whether batches must carry class labels (class-conditional models)."""
        return isinstance(self.model, ClassConditional)

    @property
    def wants_factor_classes(self) -> bool:
        """Whether batches must carry each image's factor indices (a second label set read from
        them: StarGAN's mask vector)."""
        return False

    # ---- several processes (torchrun) -----------------------------------------------------------
    @property
    def rank(self) -> int:
        return self.group.rank if self.group is not None else 0

    @property
    def world_size(self) -> int:
        return self.group.world_size if self.group is not None else 1

    @property
    def batch_size(self) -> int:
        """Images per batch on this process: the config's global batch split over the processes
        (or, with ``per_rank_batch``, the config's batch on each)."""
        if self.world_size == 1 or getattr(self.config, "per_rank_batch", False):
            return int(self.config.batch_size)
        return int(self.config.batch_size) // self.world_size

    @property
    def global_batch_size(self) -> int:
        return self.batch_size * self.world_size

    def shared_rows(self, n: int, draw: Callable[[int], torch.Tensor]) -> torch.Tensor:
        """`draw(n)` on one process. Under torchrun every rank calls ``draw(n * N)`` with its noise
        generator, which stays in step with the other ranks', and keeps its own n rows: the noise one
        process would have drawn for the images this rank holds, so N processes train as one."""
        if self.group is None:
            return draw(n)
        return draw(n * self.world_size)[self.rank * n:(self.rank + 1) * n]

    def distribute(self, group: Group) -> None:
        """Join a torchrun process group: rank 0's weights on every rank, gradients averaged over
        the ranks before every optimizer step, dropout masks sharded, and (``sync_bn``) batch norm
        over all ranks. Call once, after the checkpoint (if any) is loaded."""
        self.group = group
        if getattr(self.config, "sync_bn", False):
            from gm.runs.distributed import sync_batchnorm

            # Same Parameter objects in the new layers: the optimizers keep working on them.
            for name, net in self.model.networks().items():
                setattr(self.model, name, sync_batchnorm(net, group.backend))
        group.broadcast_module(self.model)
        for opt in self.optimizers().values():
            group.average_gradients_before_step(opt)
        bind_generator(self.model, self.noise, (group.rank, group.world_size))

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return self.model.image_shape

    @property
    def max_value(self) -> int:
        return self.model.max_value

    def modules(self) -> dict[str, nn.Module]:
        """The model's networks, by the name their weights are saved under."""
        return self.model.networks()

    def sample(self, n: int, seed: int, labels: torch.Tensor | None = None) -> torch.Tensor:
        return self.model.sample(n, seed, labels)

    def prepare(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 batch -> the float images the networks take: [0, 1] ("unit") or [-1, 1] ("signed")."""
        if self.model.image_range == "unit":
            return to_unit(images, self.max_value)
        return to_signed(images, self.max_value)

    def train_step(self, batch: Batch) -> dict[str, torch.Tensor | float]:
        """One optimisation step on a batch as the loop draws it (uint8 images of one domain here;
        trainers of several domains override this)."""
        x = self.prepare(batch.only())
        labels = batch.only_labels() if self.wants_labels else None
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
        """Real batches the next train_step consumes: the config's schedule (e.g. n_critic, WGAN's
        boost), which the loop reads before each step. It draws that many and passes them
        concatenated along dim 0; split them with ``images.chunk(k)``."""
        return int(self.config.batches_at(self.step))

    def images_per_step(self) -> int:
        """Images one step trains on, over all processes."""
        return self.global_batch_size * self.batches_per_step()

    def checkpoint_score(self, record: dict[str, Any]) -> tuple[str, float] | None:
        """(name, value) ranking a checkpoint by one logged record, lower is better; None = no
        ranking, so only the newest checkpoints are kept (GANs: their losses say little about
        sample quality, and ranking by FID would cost an evaluation per checkpoint)."""
        return None

    def extra_state(self) -> dict[str, Any]:
        """Anything else a subclass must carry across a resume (controller, counters)."""
        return {}

    def load_extra_state(self, state: dict[str, Any]) -> None:  # noqa: B027 (optional hook)
        """Restore what extra_state() saved; trainers without extra state keep this no-op."""

    def weights(self) -> dict[str, torch.Tensor]:
        return self.model.state_dict()

    def load_weights(self, weights: dict[str, torch.Tensor], strict: bool = True) -> None:
        self.model.load_weights(weights, strict=strict)

    def state_dict(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "optimizers": {k: o.state_dict() for k, o in self.optimizers().items()},
            "noise_rng": self.noise.get_state(),
            "extra": self.extra_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a checkpoint's training state. Checkpoints written before the trainers stopped
        using torch's global RNG also hold its state ("torch_rng"): it is ignored on purpose."""
        self.step = int(state["step"])
        for k, opt in self.optimizers().items():
            opt.load_state_dict(state["optimizers"][k])
        self.noise.set_state(state["noise_rng"])
        self.load_extra_state(state.get("extra") or {})

    def train(self, mode: bool = True) -> None:
        self.model.train(mode)

    @torch.no_grad()
    def sample_grid(self) -> tuple[torch.Tensor, int]:
        """The fixed-seed grid saved to samples/: (images, images per row)."""
        with self._compile_guard() if self._compiled else contextlib.nullcontext():
            return self.model.sample_grid()

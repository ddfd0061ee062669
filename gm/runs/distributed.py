"""Several processes, one run: what gm does under ``torchrun`` (torch.distributed).

torchrun starts the processes and sets RANK / WORLD_SIZE / LOCAL_RANK / MASTER_ADDR; gm joins
them into one process group (NCCL on GPUs, gloo on CPUs) and keeps a run on N processes equal to
the same run on one process:

- **data**: every rank draws the same shuffled global batch (one shared permutation, the same seed)
  and keeps its own disjoint slice (``Batcher(shard=...)``), so the global batch stays the config's
  ``batch_size`` (``per_rank_batch=true``: each rank takes ``batch_size``, the global batch is
  N times larger);
- **noise**: every rank's noise generator stays in step with the others; a draw for n images is
  made for n x N and each rank keeps its rows (``Trainer.shared_rows``), which are the rows one
  process would have given those images;
- **gradients**: averaged over the ranks right before every optimizer step (a step pre-hook per
  optimizer, one flat all-reduce), which covers generator, critic and encoder steps, several
  critic steps per generator step and gradient penalties (double backward), and equals the
  gradient of the loss over the global batch. DDP computes the same average while the backward
  runs; this hook does it after, which costs overlap on many GPUs but needs no wrapper around
  networks that GAN steps call in several ways;
- **writing**: only rank 0 writes the run folder (``Group.on_main``); a failure there is
  broadcast so that every rank stops at the same point.

Nothing here launches processes: that is torchrun's job (``python -m gm train ... --nproc N``
just starts torchrun).
"""

from __future__ import annotations

import datetime
import os
import socket
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, NoReturn, TypeVar

import torch
import torch.distributed as dist
from torch import nn

from gm.errors import GMError

T = TypeVar("T")

# Collective operations wait this long for a rank before failing (a stuck rank, not a slow one:
# a dead rank's closed connection fails the collective at once on gloo).
COLLECTIVE_TIMEOUT = datetime.timedelta(minutes=30)


def launched_by_torchrun() -> bool:
    """Whether this process is one of several that torchrun (or another launcher setting
    torch.distributed's environment variables) started."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1 and "RANK" in os.environ


class RankFailed(GMError):
    """Rank 0 failed at a step every rank takes together; the other ranks raise this to stop too."""


@dataclass
class Group:
    """This process's place in the process group, and the few collectives gm needs."""

    rank: int
    world_size: int
    local_rank: int
    backend: str
    device: torch.device                     # where this rank trains (cuda:LOCAL_RANK or cpu)
    peers: list[tuple[str, int]] = field(default_factory=list)   # (host, pid) of every rank

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def _comm_device(self) -> torch.device:
        return self.device if self.backend == "nccl" else torch.device("cpu")

    # ---- collectives ---------------------------------------------------------------------------
    def all_mean(self, t: torch.Tensor) -> torch.Tensor:
        """The mean of `t` over all ranks (a new tensor on t's device)."""
        buf = t.detach().to(self._comm_device, dtype=torch.float64 if t.dtype == torch.float64 else torch.float32,
                            copy=True)
        dist.all_reduce(buf)
        return (buf / self.world_size).to(t.device, t.dtype)

    def all_sum(self, t: torch.Tensor) -> torch.Tensor:
        """The sum of `t` over all ranks (a new tensor on t's device, in t's dtype: give float64
        for sums that must not depend on how the work was split)."""
        buf = t.detach().to(self._comm_device, copy=True)
        dist.all_reduce(buf)
        return buf.to(t.device)

    def any(self, flags: Iterable[bool]) -> list[bool]:
        """Each flag OR-ed over all ranks: a request any rank saw, seen by all."""
        values = [1.0 if f else 0.0 for f in flags]
        buf = torch.tensor(values, device=self._comm_device)
        dist.all_reduce(buf, op=dist.ReduceOp.MAX)
        return [bool(v > 0) for v in buf.tolist()]

    def gather_objects(self, obj: Any) -> list[Any]:
        """Every rank's `obj`, in rank order, on every rank."""
        out: list[Any] = [None] * self.world_size
        dist.all_gather_object(out, obj)
        return out

    def broadcast_object(self, obj: Any) -> Any:
        """Rank 0's `obj` on every rank."""
        box = [obj if self.is_main else None]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def broadcast_module(self, module: torch.nn.Module) -> None:
        """Rank 0's parameters and buffers copied into every rank's `module`."""
        with torch.no_grad():
            for t in list(module.parameters()) + list(module.buffers()):
                if t.device.type == "cpu" or self.backend == "nccl":
                    dist.broadcast(t.data, src=0)
                else:   # gloo with CUDA tensors: through the host
                    host = t.data.cpu()
                    dist.broadcast(host, src=0)
                    t.data.copy_(host)

    def barrier(self) -> None:
        dist.barrier()

    def on_main(self, fn: Callable[[], T]) -> T | None:
        """fn() on rank 0 only; if it raised there, every rank raises (rank 0 its own exception,
        the others RankFailed with its message), so all ranks leave the loop at the same point.
        Returns fn's value on rank 0 and None elsewhere."""
        result: T | None = None
        failure: tuple[str, str] | None = None
        error: BaseException | None = None
        if self.is_main:
            try:
                result = fn()
            except BaseException as exc:  # noqa: BLE001 (re-raised below, after telling the others)
                error = exc
                failure = (type(exc).__name__, str(exc))
        failure = self.broadcast_object(failure)
        if error is not None:
            raise error
        if failure is not None:
            raise RankFailed(f"Rank 0 stopped the run ({failure[0]}: {failure[1]})")
        return result

    # ---- gradients -----------------------------------------------------------------------------
    def average_gradients_before_step(self, optimizer: torch.optim.Optimizer) -> None:
        """Average every parameter's gradient over the ranks just before ``optimizer.step()``."""
        params = [p for group in optimizer.param_groups for p in group["params"]]

        def hook(opt: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
            self.average_gradients(params)

        optimizer.register_step_pre_hook(hook)

    def average_gradients(self, params: list[torch.nn.Parameter]) -> None:
        """One flat all-reduce for all of `params`' gradients (a missing gradient counts as zero, the
        same on every rank: all ranks run the same code)."""
        with_grad = [p for p in params if p.grad is not None]
        if not with_grad:
            return
        flat = torch.cat([p.grad.reshape(-1) for p in with_grad])
        if flat.device.type != "cpu" and self.backend != "nccl":
            host = flat.cpu()
            dist.all_reduce(host)
            flat = host.to(flat.device)
        else:
            dist.all_reduce(flat)
        flat /= self.world_size
        offset = 0
        for p in with_grad:
            n = p.grad.numel()
            p.grad.copy_(flat[offset:offset + n].view_as(p.grad))
            offset += n

    # ---- failures ------------------------------------------------------------------------------
    def gone_peers(self) -> list[int]:
        """Ranks on this machine whose process no longer exists (used to name a dead rank)."""
        host = socket.gethostname()
        gone = []
        for rank, (peer_host, pid) in enumerate(self.peers):
            if rank == self.rank or peer_host != host:
                continue
            if not _alive(pid):
                gone.append(rank)
        return gone

    def describe_failure(self, exc: BaseException) -> str:
        """One sentence for a collective that failed because another rank went away."""
        gone = self.gone_peers()
        if gone:
            who = ", ".join(f"rank {r} (pid {self.peers[r][1]})" for r in gone)
            return f"Training process {who} died, so every process stopped"
        text = str(exc)
        reason = next((r for r in ("Connection reset by peer", "Connection closed by peer", "Timed out")
                       if r in text), type(exc).__name__)
        return f"Another training process stopped responding ({reason}), so every process stopped"


def _alive(pid: int) -> bool:
    """Whether process `pid` still runs here (a zombie, killed and not yet reaped by torchrun, does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


class AllRanksBatchNorm(nn.modules.batchnorm._BatchNorm):
    """Batch norm whose training statistics are those of the global batch, over all ranks, on any
    backend: PyTorch's SyncBatchNorm runs on GPUs only, and gloo's CPU ranks need the same maths
    to train as one process would.

    Two passes, as a single batch norm computes them (the mean, then the mean squared deviation
    from it), each one all-reduce with autograd (torch.distributed.nn): the backward sums every
    rank's gradient through the shared statistics, as nn.SyncBatchNorm's does. Evaluation mode uses
    the running statistics, with no communication (rank 0 draws its grids alone)."""

    def _check_input_dim(self, input: torch.Tensor) -> None:
        if input.dim() < 2:
            raise ValueError(f"expected at least 2-D input (got {input.dim()}-D)")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or not dist.is_initialized():
            return super().forward(x)
        from torch.distributed.nn import functional as dist_fn

        dims = [0, *range(2, x.dim())]
        shape = [1, x.shape[1]] + [1] * (x.dim() - 2)
        count = torch.tensor([x.numel() // x.shape[1]], device=x.device, dtype=x.dtype)
        total = dist_fn.all_reduce(torch.cat([x.sum(dims), count]))
        n = total[-1]
        mean = total[:-1] / n
        centred = x - mean.view(shape)
        var = dist_fn.all_reduce(centred.pow(2).sum(dims)) / n
        if self.track_running_stats and self.running_mean is not None and self.running_var is not None:
            with torch.no_grad():
                self.num_batches_tracked += 1
                momentum = (1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum)
                self.running_mean.lerp_(mean.detach(), momentum)
                self.running_var.lerp_(var.detach() * n / (n - 1).clamp(min=1), momentum)
        y = centred * torch.rsqrt(var.view(shape) + self.eps)
        if self.affine:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        return y


def sync_batchnorm(module: nn.Module, backend: str) -> nn.Module:
    """`module` with every batch norm replaced by one over all ranks (nn.SyncBatchNorm on NCCL,
    AllRanksBatchNorm otherwise), keeping the same Parameter and buffer objects, so optimizers
    and checkpoints are unchanged."""
    if backend == "nccl":
        return nn.SyncBatchNorm.convert_sync_batchnorm(module)
    if isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)):
        new = AllRanksBatchNorm(module.num_features, module.eps, module.momentum, module.affine,
                                module.track_running_stats)
        new.weight, new.bias = module.weight, module.bias
        new.running_mean, new.running_var = module.running_mean, module.running_var
        new.num_batches_tracked = module.num_batches_tracked
        new.train(module.training)
        return new
    for name, child in module.named_children():
        module.add_module(name, sync_batchnorm(child, backend))
    return module


def is_collective_failure(exc: BaseException) -> bool:
    """Whether `exc` is torch.distributed reporting a peer that went away (gloo / NCCL errors)."""
    names = {"DistBackendError", "DistNetworkError", "DistError"}
    if type(exc).__name__ in names:
        return True
    text = str(exc)
    return isinstance(exc, RuntimeError) and any(
        s in text for s in ("Connection closed by peer", "Connection reset by peer", "Gloo", "NCCL"))


def join(device: str = "auto") -> Group:
    """Join the process group torchrun set up (once per process) and return this rank's Group.

    CUDA available and asked for (or auto): NCCL, one GPU per local rank; else gloo on CPUs.
    """
    rank = int(os.environ["RANK"])
    world = int(os.environ["WORLD_SIZE"])
    local = int(os.environ.get("LOCAL_RANK", rank))
    use_cuda = device.startswith("cuda") or (device == "auto" and torch.cuda.is_available())
    if use_cuda:
        if not torch.cuda.is_available():
            raise GMError("This run asks for CUDA, but this process sees no GPU; use --device cpu.")
        if local >= torch.cuda.device_count():
            raise GMError(f"Local rank {local} has no GPU of its own ({torch.cuda.device_count()} visible); "
                          f"start at most that many processes per machine.")
        torch.cuda.set_device(local)
        dev, backend = torch.device("cuda", local), "nccl"
    else:
        dev, backend = torch.device("cpu"), "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend=backend, timeout=COLLECTIVE_TIMEOUT,
                                **({"device_id": dev} if backend == "nccl" else {}))
    group = Group(rank=rank, world_size=world, local_rank=local, backend=backend, device=dev)
    group.peers = [tuple(p) for p in group.gather_objects((socket.gethostname(), os.getpid()))]
    return group


def exit_rank(code: int) -> NoReturn:
    """End a rank now, without Python's shutdown: gloo's worker threads free the last collective's
    tensors a moment after it completes, and if the interpreter is finalizing by then they abort the
    process ("terminate called without an active exception", about one exit in fifteen here), which
    torchrun reports as a failed run. Every file gm writes is closed by then."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def leave(group: Group | None) -> None:
    """Leave the process group (at the end of a command)."""
    if group is not None and dist.is_initialized():
        try:
            dist.destroy_process_group()
        except Exception:  # noqa: BLE001 (a peer already gone: nothing left to tidy)
            pass


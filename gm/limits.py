"""Resource ceilings: refuse work that cannot fit in memory before it starts, with the numbers.

A training step of `--set width=8 --batch-size 4096` needs about 10 GB on a CPU; started blindly it
swaps the machine or is killed by the kernel half-way. Each check here estimates the memory of the
work up front and compares it with what is free now:

* training (:func:`check_training`): the model is built on PyTorch's ``meta`` device (shapes only,
  no memory) and one training step is run there at the real batch size; the tensors autograd keeps
  for the backward pass are the activations (counted as they are saved and released, so the peak
  of a step with several critic updates is the largest one, not the sum). Weights, gradients and
  two optimizer moments add 4 x the parameter bytes.
* sampling (:func:`check_sampling`): one ``model.sample`` of two images on the meta device gives the
  peak per image, scaled to n; plus the images themselves and the PNG grid.
* evaluation (:func:`check_evaluation`) and image folders (:func:`check_images`): the arrays they
  keep (8-bit images, features, the k-NN distance blocks of precision/recall).

The bound is 80% of the memory available now: free RAM (``psutil`` if installed, else
``/proc/meminfo``, and a container's cgroup limit when lower) or a GPU's free memory
(``torch.cuda.mem_get_info``). ``GM_MAX_MEMORY_GB`` lowers it further (a hosted demo, tests).
Where the free memory cannot be read (no psutil, no /proc), the checks pass.

The estimate is deliberately simple (no allocator slack, no cuDNN workspaces, autocast ignored:
bf16 only lowers it); it is there to catch the orders of magnitude that cannot work, not to pack
memory tightly.
"""

from __future__ import annotations

import dataclasses
import math
import os
import threading
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gm.errors import GMError

FRACTION = 0.8           # of the memory available now: the rest stays for the process and the machine
STATE_COPIES = 4         # weights + gradients + two optimizer moments (Adam; RMSProp keeps one)
ACTIVATION_SLACK = 1.5   # gradients of activations during the backward pass, on top of the saved ones
INFERENCE_SLACK = 1.5    # allocator overhead: measured peaks of model.sample ran up to 1.8x the tensor bytes
ENV_CAP = "GM_MAX_MEMORY_GB"

_cache: dict[Any, Any] = {}
_cache_lock = threading.Lock()


def fmt_bytes(n: float) -> str:
    for unit, size in (("GB", 2 ** 30), ("MB", 2 ** 20), ("KB", 2 ** 10)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{int(n)} bytes"


# ---- what is free ---------------------------------------------------------------------------------
def _meminfo_available() -> int | None:
    try:
        import psutil  # optional
        return int(psutil.virtual_memory().available)
    except ImportError:
        pass
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _cgroup_available() -> int | None:
    """Room left under a container's memory limit (cgroup v2, then v1), or None without one."""
    pairs = (("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
             ("/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/memory/memory.usage_in_bytes"))
    for limit_path, usage_path in pairs:
        try:
            limit = Path(limit_path).read_text().strip()
            usage = int(Path(usage_path).read_text().strip())
        except (OSError, ValueError):
            continue
        if limit == "max" or not limit.isdigit() or int(limit) >= 2 ** 60:
            return None
        return max(0, int(limit) - usage)
    return None


def _env_cap() -> int | None:
    raw = os.environ.get(ENV_CAP, "").strip()
    if not raw:
        return None
    try:
        value = float(raw)
    except ValueError:
        raise GMError(f"{ENV_CAP} must be a number of gigabytes, got {raw!r}.") from None
    if not math.isfinite(value) or value <= 0:
        raise GMError(f"{ENV_CAP} must be a positive number of gigabytes, got {raw!r}.")
    return int(value * 2 ** 30)


@dataclass(frozen=True)
class Available:
    free: int | None      # bytes free now for the work (None: cannot be read here)
    where: str            # "of RAM available", "free on cuda:0", "allowed by GM_MAX_MEMORY_GB", ...
    capped: bool = False  # GM_MAX_MEMORY_GB set the number: it is the bound itself, no headroom taken

    @property
    def bound(self) -> int | None:
        if self.free is None:
            return None
        return self.free if self.capped else int(self.free * FRACTION)


def available_memory(device: Any = "cpu") -> Available:
    """What is free now for work on `device` and where that number comes from; GM_MAX_MEMORY_GB
    caps it."""
    import torch

    dev = torch.device(device) if not isinstance(device, torch.device) else device
    free: int | None
    if dev.type == "cuda":
        try:
            free, where = int(torch.cuda.mem_get_info(dev)[0]), f"free on {dev}"
        except Exception:  # a driver without the call: no bound rather than a wrong one
            free, where = None, f"free on {dev}"
    else:  # cpu, and mps (unified memory: the GPU draws on the same RAM)
        free, where = _meminfo_available(), "of RAM available"
        room = _cgroup_available()
        if room is not None and (free is None or room < free):
            free, where = room, "left under this container's memory limit"
    cap = _env_cap()
    if cap is not None and (free is None or cap < free):
        return Available(cap, f"allowed by {ENV_CAP}", capped=True)
    return Available(free, where)


def check_fits(need: int, device: Any, what: str, advice: str) -> None:
    """Raise a GMError that states the estimate, the bound and why, when `need` does not fit."""
    room = available_memory(device)
    if room.bound is None or need <= room.bound:
        return
    share = f"the {fmt_bytes(room.free)} {room.where}" if room.capped else \
        f"{FRACTION:.0%} of the {fmt_bytes(room.free)} {room.where}"
    raise GMError(f"{what} needs about {fmt_bytes(need)}, more than the bound of {fmt_bytes(room.bound)} "
                  f"({share}, so the machine neither swaps nor kills the process half-way); {advice}.")


# ---- training -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Footprint:
    parameters: int            # count
    state_bytes: int           # weights, gradients, optimizer moments
    activation_bytes: int      # saved for the backward pass at the peak of one step (x slack)
    batch_bytes: int           # the uint8 images of one step

    @property
    def total(self) -> int:
        return self.state_bytes + self.activation_bytes + self.batch_bytes


class _Saved:
    """A tensor autograd saved for the backward pass; counts its bytes while the graph holds it."""

    __slots__ = ("tensor", "size", "counter")

    def __init__(self, tensor: Any, size: int, counter: list[int]) -> None:
        self.tensor, self.size, self.counter = tensor, size, counter
        counter[0] += size
        counter[1] = max(counter[1], counter[0])

    def __del__(self) -> None:
        self.counter[0] -= self.size


def _meta_model(spec: Any, config: Any, info: Any) -> Any:
    import torch
    with torch.device("meta"):
        return spec.build_model(config, info)


def _meta_trainer(spec: Any, model: Any) -> Any:
    """The model's trainer, with its noise generator on the CPU (a generator cannot live on the
    meta device; random tensors drawn with it on the meta device are shapes only, as wanted)."""
    import torch
    cls = type(model)
    model.__class__ = type(cls.__name__, (cls,), {"device": property(lambda self: torch.device("cpu"))})
    try:
        trainer = spec.build_trainer(model)
    finally:
        model.__class__ = cls
    trainer.device = torch.device("meta")
    return trainer


def training_footprint(spec: Any, config: Any, info: Any) -> Footprint:
    """Memory of one training step of `spec`'s model with `config` on data described by `info`
    (gm.models.base.DataInfo); cached per (model, config, data)."""
    key = (spec.name, repr(dataclasses.asdict(config)), repr(info))
    with _cache_lock:
        if key in _cache:
            return _cache[key]
    import torch

    from gm.data.base import Batch

    model = _meta_model(spec, config, info)
    params = list(model.parameters())
    param_ids = {id(p) for p in params}
    param_bytes = sum(p.numel() * p.element_size() for p in params)
    trainer = _meta_trainer(spec, model)
    counter = [0, 0]  # live, peak

    def pack(t: torch.Tensor) -> _Saved:
        base = t if t._base is None else t._base
        size = 0 if id(base) in param_ids else t.numel() * t.element_size()  # weights are counted above
        return _Saved(t, size, counter)

    k = max(1, int(config.batches_at(0)))
    rows = k * int(config.batch_size)
    c, h, w = info.image_shape
    domains = tuple(info.domains) or (info.dataset,)
    batch = Batch({d: torch.zeros((rows, c, h, w), dtype=torch.uint8, device="meta") for d in domains})
    if trainer.wants_labels:
        batch.labels.update({d: torch.zeros(rows, dtype=torch.long, device="meta") for d in domains})
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda s: s.tensor):
        try:
            trainer.train_step(batch)
        except Exception:
            # A step that reads a value on the host (ControlVAE's float(kl) feeding its controller)
            # stops here on the meta device: its forward pass, and so every saved activation, is
            # already counted; only the backward pass (covered by ACTIVATION_SLACK) is missing.
            pass
    del trainer, model, batch
    fp = Footprint(parameters=sum(p.numel() for p in params), state_bytes=STATE_COPIES * param_bytes,
                   activation_bytes=int(counter[1] * ACTIVATION_SLACK), batch_bytes=rows * c * h * w * len(domains))
    with _cache_lock:
        _cache[key] = fp
    return fp


def check_training(spec: Any, config: Any, info: Any, device: Any) -> Footprint | None:
    """Refuse (GMError) a training configuration whose step cannot fit in the memory free on
    `device`; returns the estimate otherwise (None when this model cannot be traced on the meta
    device: then there is no bound rather than a refusal of work that may well fit)."""
    try:
        fp = training_footprint(spec, config, info)
    except GMError:
        raise
    except Exception:
        return None
    width = f" at width {config.width}" if hasattr(config, "width") else ""
    what = (f"One training step of {spec.name}{width} with batch_size {config.batch_size} "
            f"({fp.parameters / 1e6:.1f}M parameters: {fmt_bytes(fp.state_bytes)} of weights, gradients and "
            f"optimizer state, {fmt_bytes(fp.activation_bytes)} of activations)")
    check_fits(fp.total, device, what, "lower batch_size" + (" or width" if width else "")
               + " (--batch-size, --set width=...), or use a device with more memory")
    return fp


def data_info_of(spec: Any, config: Any) -> Any:
    """DataInfo of `spec`'s dataset from its registry entry (no data is loaded)."""
    from gm.data.registry import get_dataset_spec
    from gm.models.base import DataInfo

    ds = get_dataset_spec(spec.dataset)
    split = config.domain_split()
    return DataInfo(dataset=ds.name, image_shape=tuple(ds.image_shape), max_value=int(ds.max_value),
                    num_classes=len(ds.classes), size=0, class_names=tuple(ds.classes),
                    domains=tuple(ds.domains(split)) if split else ())


# ---- sampling -------------------------------------------------------------------------------------
def _inference_peak(model_fn: Any) -> int:
    """Peak bytes of the tensors alive while `model_fn()` runs on the meta device (views and
    in-place results share their input's memory and are not counted twice)."""
    import torch
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils._pytree import tree_leaves

    state = [0, 0]

    def free(size: int) -> None:
        state[0] -= size

    class Peak(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            if any(r.alias_info is not None for r in func._schema.returns):
                return out  # a view (weight.t()) or an in-place op: no new memory
            for t in tree_leaves(out):
                if isinstance(t, torch.Tensor) and t.device.type == "meta":
                    size = t.numel() * t.element_size()
                    state[0] += size
                    state[1] = max(state[1], state[0])
                    weakref.finalize(t, free, size)
            return out

    with Peak():
        model_fn()
    return state[1]


def sampling_bytes(spec: Any, config: Any, info: Any, n: int, nrow: int) -> int:
    """Memory of `model.sample(n)` and the PNG grid of `nrow` columns."""
    key = ("sample", spec.name, repr(dataclasses.asdict(config)), repr(info))
    with _cache_lock:
        per_image = _cache.get(key)
    if per_image is None:
        model = _meta_model(spec, config, info)
        try:  # the growth from 2 to 4 images: per-call constants (weight copies, statistics) cancel
            two, four = (_inference_peak(lambda k=k: model.sample(k, seed=0)) for k in (2, 4))
            per_image = max((four - two) // 2, four // 4 if four <= two else 0)
        except (RuntimeError, NotImplementedError, GMError):  # not samplable on meta: the images alone
            per_image = 0
        with _cache_lock:
            _cache[key] = per_image
    c, h, w = info.image_shape
    cols = max(1, nrow)
    grid = c * (math.ceil(n / cols) * (h + 2) + 2) * (cols * (w + 2) + 2)  # gm.images.make_grid, padding 2
    images = n * c * h * w * 4
    # the samples and their clamped copy; the grid as float32 (three temporaries), uint8 and PNG
    return int(INFERENCE_SLACK * (per_image * n + 2 * images)) + grid * (3 * 4 + 1 + 1)


def check_sampling(spec: Any, config: Any, info: Any, n: int, nrow: int, device: Any) -> None:
    """Refuse (GMError) `sample --n n --nrow nrow` when the samples and their grid cannot fit."""
    try:
        need = sampling_bytes(spec, config, info, n, nrow)
    except GMError:
        raise
    except Exception:  # the model cannot be traced on the meta device: bound the images alone
        c, h, w = info.image_shape
        need = 2 * n * c * h * w * 4
    check_fits(need, device, f"Sampling {n:,} images of {spec.name} into a grid of {nrow:,} columns",
               "ask for fewer images (--n) or fewer columns (--nrow)")


# ---- evaluation and image folders ---------------------------------------------------------------------
KNN_CHUNK = 1024      # gm.metrics.prd computes distances 1,024 rows at a time
FEATURE_BYTES = 512 * 4  # classifier features per image (128-d today; a margin for bigger evaluators)


def evaluation_bytes(n: int, image_bytes: int, knn: bool = True) -> int:
    """What `eval` keeps for n generated and n real images: 8-bit generated images, two feature sets,
    the k-NN distance blocks of precision/recall (two at a time), and the real images. `fid` and
    `stats` keep the real images and stream the rest (knn=False)."""
    if not knn:
        return n * image_bytes * 2 + 2 * n * FEATURE_BYTES
    return n * image_bytes * 2 + 2 * n * FEATURE_BYTES + 2 * KNN_CHUNK * n * 4 * 2


def check_evaluation(n: int, device: Any, image_shape: tuple[int, int, int] | None = None,
                     knn: bool = True) -> None:
    if image_shape is None:  # the largest registered dataset: a safe bound without opening anything
        from gm.data.registry import DATASETS
        image_bytes = max(math.prod(s.image_shape) for s in DATASETS.values())
    else:
        image_bytes = math.prod(image_shape)
    check_fits(evaluation_bytes(n, image_bytes, knn), device, f"Evaluating {n:,} generated and {n:,} real images",
               "pass a smaller --n")


def check_images(count: int, pixels: int, what: str) -> None:
    """Loading `count` images of `pixels` values each (uint8, then float32 in batches)."""
    check_fits(count * pixels * 2, "cpu", f"Loading {what} ({count:,} images, {fmt_bytes(count * pixels)})",
               "use fewer or smaller images")

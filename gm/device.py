"""Device choice: `auto` picks cuda, then mps, then cpu; and the host allocator's settings."""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

import torch

from gm.errors import GMError

DEVICE_CHOICES = ("auto", "cpu", "cuda", "mps")


def available_devices() -> list[str]:
    out = ["cpu"]
    if torch.cuda.is_available():
        out.insert(0, "cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        out.insert(0, "mps")
    return out


def max_processes() -> int:
    """The most torchrun processes this machine gives a job: one per GPU when there are several,
    else one per CPU core."""
    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    return gpus if gpus > 1 else max(1, os.cpu_count() or 1)


def check_processes(device: torch.device, processes: int) -> None:
    """A one-sentence GMError when `processes` cannot train on `device` (one GPU each; no MPS)."""
    if processes == 1:
        return
    if device.type == "mps":
        raise GMError("Several processes train on CUDA GPUs or on CPUs, not on MPS; use --device cpu.")
    if device.type == "cuda" and processes > torch.cuda.device_count():
        raise GMError(f"{processes} processes need {processes} GPUs, one each; this machine has "
                      f"{torch.cuda.device_count()}.")


def resolve_device(name: str = "auto") -> torch.device:
    """Turn a user's device choice into a torch.device, with a clear error if it is not there."""
    name = (name or "auto").lower()
    if name not in DEVICE_CHOICES and not name.startswith("cuda:"):
        raise GMError(f"Unknown device '{name}'; use one of {', '.join(DEVICE_CHOICES)}.")
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise GMError("CUDA was asked for but no CUDA GPU is visible; use --device cpu or auto.")
    if name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise GMError("MPS was asked for but is not available on this machine; use --device cpu or auto.")
    return torch.device(name)


# mallopt parameters (glibc's malloc.h)
_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD = -1, -2, -3
_MALLOC_ENV = ("MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_", "MALLOC_MMAP_THRESHOLD_")
_allocator_tuned: bool | None = None


def tune_host_allocator() -> bool:
    """Keep freed host memory for reuse instead of handing it back to the kernel after each step.

    A CPU training step allocates and frees tens of MB of activations. glibc's malloc serves blocks
    above its mmap threshold with fresh mappings and trims the heap's free top, so every step
    page-faults (and zeroes) the same memory again: 15-20% of a step for the models here, and the
    cause of most of the run-to-run spread between otherwise identical loops. Raising the mmap
    threshold to 256 MB and the trim threshold to 1 GB keeps that memory in the heap (the peak
    resident size is unchanged; it is just not returned between steps). Linux with glibc only;
    left alone when the user set MALLOC_*_ variables or GM_MALLOC_TUNING=0. Idempotent; returns
    whether the settings are in effect.
    """
    global _allocator_tuned
    if _allocator_tuned is None:
        _allocator_tuned = False
        wanted = os.environ.get("GM_MALLOC_TUNING", "1") != "0" and not any(v in os.environ for v in _MALLOC_ENV)
        if wanted and sys.platform.startswith("linux"):
            try:
                libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
                mallopt = libc.mallopt
            except (OSError, AttributeError):  # not glibc (musl, ...): nothing to tune
                return False
            mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
            _allocator_tuned = all(mallopt(param, value) == 1 for param, value in (
                (_M_MMAP_THRESHOLD, 256 << 20), (_M_TRIM_THRESHOLD, 1 << 30), (_M_TOP_PAD, 64 << 20)))
    return _allocator_tuned

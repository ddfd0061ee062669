"""Device choice: `auto` picks cuda, then mps, then cpu."""

from __future__ import annotations

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

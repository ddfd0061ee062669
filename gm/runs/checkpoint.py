"""Checkpoints: safetensors for tensors, JSON for the rest; never pickle.

Layout of ``<run>/checkpoints/step-<N>/``:
    model.safetensors   weights of every module, keys "<module>.<param>" (e.g. "generator.fc.weight")
    state.safetensors   every other tensor (optimizer moments, RNG states)
    state.json          the rest of the training state (counters, controller, optimizer hyperparameters),
                        with {"__tensor__": key} where a tensor from state.safetensors belongs
    meta.json           {"step", "format"}: written last, so its presence marks a complete checkpoint

The folder is written under a temporary name, every file fsynced, then renamed into place: a crash at
any moment leaves either the complete new checkpoint or none, and the previous one untouched.
"""

from __future__ import annotations

import os
import re
import shutil
import uuid
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from gm.errors import GMError
from gm.runs.atomic import fsync_dir, read_json, write_json_atomic

FORMAT = 1
_STEP_DIR = re.compile(r"^step-(\d+)$")


def flatten_tensors(tree: Any, prefix: str = "") -> tuple[Any, dict[str, torch.Tensor]]:
    """Split a nested structure into a JSON-able tree and a flat dict of tensors."""
    tensors: dict[str, torch.Tensor] = {}

    def walk(node: Any, path: str) -> Any:
        if isinstance(node, torch.Tensor):
            key = path or "tensor"
            tensors[key] = node.detach().to("cpu").contiguous().clone()
            return {"__tensor__": key}
        if isinstance(node, dict):
            return {"__dict__": [[walk(k, f"{path}.k{i}") if not isinstance(k, (str, int)) else k,
                                  walk(v, f"{path}.{k}")] for i, (k, v) in enumerate(node.items())]}
        if isinstance(node, (list, tuple)):
            items = [walk(v, f"{path}.{i}") for i, v in enumerate(node)]
            return {"__tuple__": items} if isinstance(node, tuple) else items
        if isinstance(node, float) and (node != node or node in (float("inf"), float("-inf"))):
            return {"__float__": repr(node)}
        if node is None or isinstance(node, (bool, int, float, str)):
            return node
        raise TypeError(f"cannot checkpoint a {type(node).__name__} at {path!r}")

    return walk(tree, prefix), tensors


def unflatten_tensors(tree: Any, tensors: dict[str, torch.Tensor]) -> Any:
    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            if "__tensor__" in node:
                return tensors[node["__tensor__"]]
            if "__dict__" in node:
                return {walk(k) if isinstance(k, dict) else k: walk(v) for k, v in node["__dict__"]}
            if "__tuple__" in node:
                return tuple(walk(v) for v in node["__tuple__"])
            if "__float__" in node:
                return float(node["__float__"])
            return {k: walk(v) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v) for v in node]
        return node

    return walk(tree)


def _fsync_file(path: Path) -> None:
    with open(path, "rb") as fh:
        os.fsync(fh.fileno())


def save_checkpoint(checkpoints_dir: Path, step: int, weights: dict[str, torch.Tensor],
                    state: dict[str, Any]) -> Path:
    """Atomically write checkpoint step-<step>; returns its folder."""
    checkpoints_dir = Path(checkpoints_dir)
    checkpoints_dir.mkdir(parents=True, exist_ok=True)
    final = checkpoints_dir / f"step-{step}"
    tmp = checkpoints_dir / f".tmp-step-{step}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        weights = {k: v.detach().to("cpu").contiguous().clone() for k, v in weights.items()}
        save_file(weights, str(tmp / "model.safetensors"), metadata={"format": str(FORMAT)})
        tree, tensors = flatten_tensors(state)
        save_file(tensors, str(tmp / "state.safetensors"))
        write_json_atomic(tmp / "state.json", tree)
        for name in ("model.safetensors", "state.safetensors"):
            _fsync_file(tmp / name)
        write_json_atomic(tmp / "meta.json", {"step": step, "format": FORMAT})
        fsync_dir(tmp)
        if final.exists():  # re-saving the same step (e.g. stop right after a periodic save)
            old = checkpoints_dir / f".old-step-{step}-{uuid.uuid4().hex[:8]}"
            os.replace(final, old)
            os.replace(tmp, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, final)
        fsync_dir(checkpoints_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def is_complete(path: Path) -> bool:
    path = Path(path)
    return all((path / n).is_file() for n in ("meta.json", "model.safetensors", "state.safetensors",
                                               "state.json"))


def list_checkpoints(checkpoints_dir: Path) -> list[tuple[int, Path]]:
    """Complete checkpoints, oldest first."""
    checkpoints_dir = Path(checkpoints_dir)
    if not checkpoints_dir.is_dir():
        return []
    found = []
    for child in checkpoints_dir.iterdir():
        m = _STEP_DIR.match(child.name)
        if m and is_complete(child):
            found.append((int(m.group(1)), child))
    return sorted(found)


def load_checkpoint(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any], int]:
    """(weights, state, step) of one checkpoint folder; a clear GMError if it is damaged."""
    path = Path(path)
    if not is_complete(path):
        raise GMError(f"Checkpoint {path} is incomplete or missing; resume from another checkpoint.")
    try:
        meta = read_json(path / "meta.json")
        weights = load_file(str(path / "model.safetensors"))
        tensors = load_file(str(path / "state.safetensors"))
        state = unflatten_tensors(read_json(path / "state.json"), tensors)
    except GMError:
        raise
    except Exception as exc:
        raise GMError(f"Checkpoint {path} is damaged ({type(exc).__name__}); delete it to fall back to an "
                      f"earlier one.") from None
    return weights, state, int(meta["step"])


def latest_checkpoint(checkpoints_dir: Path) -> tuple[int, Path] | None:
    """The newest checkpoint that actually loads (a damaged newest one is skipped)."""
    for step, path in reversed(list_checkpoints(checkpoints_dir)):
        try:
            read_json(path / "meta.json")
            return step, path
        except Exception:
            continue
    return None


def prune_checkpoints(checkpoints_dir: Path, keep: int, protect: set[int] | None = None) -> None:
    """Delete all but the newest `keep` checkpoints (and any step in `protect`), plus stale temp dirs."""
    checkpoints_dir = Path(checkpoints_dir)
    protect = protect or set()
    ckpts = list_checkpoints(checkpoints_dir)
    for step, path in ckpts[:-keep] if keep > 0 else ckpts:
        if step not in protect:
            shutil.rmtree(path, ignore_errors=True)
    for child in checkpoints_dir.iterdir() if checkpoints_dir.is_dir() else []:
        if child.name.startswith((".tmp-step-", ".old-step-")):
            shutil.rmtree(child, ignore_errors=True)

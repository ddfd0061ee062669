"""Checkpoints: safetensors for tensors, JSON for the rest; never pickle.

Layout of ``<run>/checkpoints/step-<N>/``:
    model.safetensors   weights of every module, keys "<module>.<param>" (e.g. "generator.fc.weight")
    state.safetensors   every other tensor (optimizer moments, RNG states)
    state.json          the rest of the training state (counters, controller, optimizer hyperparameters),
                        with {"__tensor__": key} where a tensor from state.safetensors belongs
    meta.json           {"step", "format", "sha256": {file: hex digest}}: written last, so its presence
                        marks a complete checkpoint

The folder is written under a temporary name, every file fsynced, then renamed into place: a crash at
any moment leaves either the complete new checkpoint or none, and the previous one untouched.

A checkpoint is trusted, not just complete: it is written only from a state whose every floating
tensor is finite (``NonFiniteState`` otherwise), and loading checks each file against the checksum in
meta.json (checkpoints written before checksums existed load unchecked) and the tensors for NaN/Inf
again. ``latest_good_checkpoint`` falls back past a damaged newest checkpoint with one warning line.
Only the holder of the run's lock (gm.runs.lock) writes, prunes or cleans a checkpoints folder.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load as load_bytes
from safetensors.torch import save as save_bytes

from gm.errors import GMError
from gm.runs.atomic import fsync_dir, read_json, write_json_atomic

FORMAT = 1
FILES = ("model.safetensors", "state.safetensors", "state.json", "meta.json")
_STEP_DIR = re.compile(r"^step-(\d+)$")
_LEFTOVER = re.compile(r"^\.(tmp|old)-step-(\d+)-[0-9a-f]+$")   # a killed writer's folder; may be whole
_PRUNED = ".pruned-step-"                                        # a folder being deleted by pruning
log = logging.getLogger(__name__)


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


def checkpoint_processes(path: Path) -> tuple[int, bool]:
    """(processes, per_rank_batch) that wrote a checkpoint, read from its state.json alone (no
    tensors loaded); (1, False) for one process or a checkpoint that cannot be read."""
    try:
        tree = json.loads((Path(path) / "state.json").read_text(encoding="utf-8"))
        pairs = dict((k, v) for k, v in tree["__dict__"] if isinstance(k, str))
        ranks = unflatten_tensors(pairs.get("ranks") or {}, _NoTensors())
        return int(ranks.get("world_size", 1)), bool(ranks.get("per_rank_batch", False))
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return 1, False


class _NoTensors(dict):
    def __missing__(self, key: str) -> None:
        return None



# ---- trust: finite states, checksums ------------------------------------------------------------
class NonFiniteState(GMError):
    """A state with a NaN or Inf tensor: never written as a checkpoint (the run has diverged)."""

    def __init__(self, step: int, name: str, value: float) -> None:
        super().__init__(f"Refusing to write checkpoint step-{step}: {name} holds {value}, and a checkpoint "
                         f"is written only from finite weights and state.")
        self.step, self.name, self.value = step, name, value


class CheckpointDamaged(GMError):
    """A checkpoint folder that does not load as it was written; ``reason`` says how."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"Checkpoint {path} is damaged ({reason}); resume or load an earlier checkpoint "
                         f"of the run.")
        self.path, self.reason = Path(path), reason


def first_non_finite(tensors: dict[str, torch.Tensor]) -> tuple[str, float] | None:
    """(name, nan or ±inf) of the first floating tensor holding a NaN or an Inf, else None."""
    for name, t in tensors.items():
        if not (t.is_floating_point() or t.is_complex()) or t.numel() == 0:
            continue
        if not bool(torch.isfinite(t).all()):
            bad = t[~torch.isfinite(t)].reshape(-1)[0]
            value = float("nan") if bool(torch.isnan(bad)) else float(bad.real if t.is_complex() else bad)
            return name.lstrip("."), value
    return None


def _state_name(key: str) -> str:
    return "state " + key.lstrip(".")


def save_file(tensors: dict[str, torch.Tensor], filename: str | os.PathLike,
              metadata: dict[str, str] | None = None) -> None:
    """safetensors' save_file, with the bytes written by Python and fsynced: a full disk is an OSError
    (ENOSPC) like every other write error, not a SafetensorError."""
    data = save_bytes(tensors, metadata=metadata)
    with open(filename, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def save_checkpoint(checkpoints_dir: Path, step: int, weights: dict[str, torch.Tensor],
                    state: dict[str, Any]) -> Path:
    """Atomically write checkpoint step-<step>; returns its folder.

    Raises NonFiniteState, writing nothing, when a weight or a state tensor holds a NaN or an Inf.
    """
    checkpoints_dir = Path(checkpoints_dir)
    weights = {k: v.detach().to("cpu").contiguous().clone() for k, v in weights.items()}
    tree, tensors = flatten_tensors(state)
    bad = first_non_finite(weights)
    if bad is None and (bad := first_non_finite(tensors)) is not None:
        bad = (_state_name(bad[0]), bad[1])
    if bad is not None:
        raise NonFiniteState(step, *bad)
    checkpoints_dir.mkdir(parents=True, exist_ok=True)
    final = checkpoints_dir / f"step-{step}"
    tmp = checkpoints_dir / f".tmp-step-{step}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        save_file(weights, str(tmp / "model.safetensors"), metadata={"format": str(FORMAT)})
        save_file(tensors, str(tmp / "state.safetensors"))
        write_json_atomic(tmp / "state.json", tree)
        sums = {name: _sha256_file(tmp / name) for name in FILES[:3]}
        write_json_atomic(tmp / "meta.json", {"step": step, "format": FORMAT, "sha256": sums})
        fsync_dir(tmp)
        if final.exists():  # re-saving the same step (e.g. stop right after a periodic save)
            old = checkpoints_dir / f".old-step-{step}-{uuid.uuid4().hex[:8]}"
            os.replace(final, old)
            os.replace(tmp, final)  # a kill between the two renames: clean_partial_checkpoints restores
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
    return all((path / n).is_file() for n in FILES)


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


class _Damage(Exception):
    pass


def _read_checked(path: Path, name: str, sums: dict[str, str] | None) -> bytes:
    try:
        data = (path / name).read_bytes()
    except FileNotFoundError:
        raise _Damage(f"{name} is missing") from None
    except OSError as exc:
        raise _Damage(f"{name} cannot be read: {exc.strerror}") from None
    if sums is not None:
        expected = sums.get(name)
        if not isinstance(expected, str):
            raise _Damage(f"meta.json has no checksum for {name}")
        if hashlib.sha256(data).hexdigest() != expected:
            raise _Damage(f"{name} does not match its checksum")
    return data


def _parse(name: str, data: bytes, parse) -> Any:
    try:
        return parse(data)
    except Exception as exc:
        what = "safetensors" if name.endswith(".safetensors") else "JSON"
        raise _Damage(f"{name} is not valid {what}: {type(exc).__name__}") from None


def load_checkpoint(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any], int]:
    """(weights, state, step) of one checkpoint folder, checked: each file against its checksum in
    meta.json (a checkpoint written before checksums existed has none and is not checked), and
    every floating tensor for NaN/Inf. Raises CheckpointDamaged (a GMError) on any damage."""
    path = Path(path)
    if not path.is_dir():
        raise GMError(f"Checkpoint {path} is missing; list a run's checkpoints in its checkpoints/ folder.")
    try:
        missing = [n for n in FILES if not (path / n).is_file()]
        if missing:
            raise _Damage(f"incomplete: no {missing[0]}")
        meta = _parse("meta.json", _read_checked(path, "meta.json", None), json.loads)
        if not isinstance(meta, dict) or not isinstance(meta.get("step"), int) or meta["step"] < 0:
            raise _Damage("meta.json holds no step")
        sums = meta.get("sha256")
        if sums is not None and not isinstance(sums, dict):
            raise _Damage("meta.json's checksums are unreadable")
        weights = _parse("model.safetensors", _read_checked(path, "model.safetensors", sums), load_bytes)
        tensors = _parse("state.safetensors", _read_checked(path, "state.safetensors", sums), load_bytes)
        tree = _parse("state.json", _read_checked(path, "state.json", sums), json.loads)
        try:
            state = unflatten_tensors(tree, tensors)
        except Exception as exc:
            raise _Damage(f"state.json does not match state.safetensors: {type(exc).__name__}") from None
        bad = first_non_finite(weights)
        if bad is not None:
            raise _Damage(f"weight {bad[0]} holds {bad[1]}")
        bad = first_non_finite(tensors)
        if bad is not None:
            raise _Damage(f"{_state_name(bad[0])} holds {bad[1]}")
    except _Damage as exc:
        raise CheckpointDamaged(path, str(exc)) from None
    return weights, state, int(meta["step"])


def latest_checkpoint(checkpoints_dir: Path) -> tuple[int, Path] | None:
    """The newest complete checkpoint whose meta.json reads: a quick look (nothing is verified) for
    listings; what loads weights uses :func:`latest_good_checkpoint`."""
    for step, path in reversed(list_checkpoints(checkpoints_dir)):
        try:
            read_json(path / "meta.json")
            return step, path
        except Exception:
            continue
    return None


def _recorded_checkpoints(checkpoints_dir: Path) -> list[tuple[int, Path]]:
    """step-<N> folders with a meta.json, complete or not (one missing a file is damaged, not
    unfinished: the writer renames a folder into place only once it is whole), oldest first."""
    if not checkpoints_dir.is_dir():
        return []
    found = []
    for child in checkpoints_dir.iterdir():
        m = _STEP_DIR.match(child.name)
        if m and (child / "meta.json").is_file():
            found.append((int(m.group(1)), child))
    return sorted(found)


def find_good_checkpoint(checkpoints_dir: Path) -> tuple[tuple[int, Path] | None, list[tuple[int, Path, str]]]:
    """(newest checkpoint that loads and verifies, or None; the damaged newer ones as (step, folder,
    reason), newest first). Quiet: :func:`latest_good_checkpoint` is the one that warns."""
    damaged = []
    for step, path in reversed(_recorded_checkpoints(Path(checkpoints_dir))):
        try:
            load_checkpoint(path)
        except GMError as exc:
            damaged.append((step, path, exc.reason if isinstance(exc, CheckpointDamaged) else str(exc)))
            continue
        return (step, path), damaged
    return None, damaged


def fallback_warning(run_name: str, found: tuple[int, Path] | None,
                     damaged: Iterable[tuple[int, Path, str]]) -> str:
    """The one line that says which damaged checkpoints were skipped and which one is used."""
    damaged = list(damaged)
    listed = " and ".join(f"step-{s} ({reason})" for s, _, reason in damaged)
    verb = "is" if len(damaged) == 1 else "are"
    head = f"Checkpoint{'s' if len(damaged) > 1 else ''} {listed} of run '{run_name}' {verb} damaged"
    if found is None:
        return f"{head}, and no earlier checkpoint is left."
    return f"{head}; using step-{found[0]} instead."


def latest_good_checkpoint(checkpoints_dir: Path, notes: list[str] | None = None,
                           damaged_out: list[Path] | None = None) -> tuple[int, Path] | None:
    """The newest checkpoint that loads and verifies (checksums, finite tensors), or None when the run
    has none. A damaged newer one is skipped with one warning line (logged, and appended to `notes`;
    the skipped folders to `damaged_out`); when every checkpoint is damaged this raises a GMError
    instead of pretending there is none."""
    checkpoints_dir = Path(checkpoints_dir)
    found, damaged = find_good_checkpoint(checkpoints_dir)
    if not damaged:
        return found
    if damaged_out is not None:
        damaged_out.extend(p for _, p, _ in damaged)
    run_name = checkpoints_dir.parent.name
    if found is None:
        raise GMError(f"Every checkpoint of run '{run_name}' is damaged ("
                      + "; ".join(f"step-{s}: {r}" for s, _, r in damaged)
                      + f"); delete {checkpoints_dir} to train the run again from the start, or train a new run.")
    line = fallback_warning(run_name, found, damaged)
    log.warning(line)
    if notes is not None:
        notes.append(line)
    return found


# ---- housekeeping (only the holder of the run's lock calls these) -------------------------------
def set_aside(path: Path) -> Path:
    """Move a damaged checkpoint folder out of the way as ``damaged-step-<N>`` (kept for a look, no
    longer listed, loaded or pruned); returns its new path."""
    path = Path(path)
    dest, i = path.with_name(f"damaged-{path.name}"), 1
    while dest.exists():
        i += 1
        dest = path.with_name(f"damaged-{path.name}-{i}")
    os.replace(path, dest)
    fsync_dir(path.parent)
    return dest


def clean_partial_checkpoints(checkpoints_dir: Path) -> list[str]:
    """Tidy what a killed writer left; returns a note per folder touched.

    A kill leaves at most: a temp folder of a checkpoint being written (``.tmp-step-N-*``), the
    previous copy of a step being re-saved (``.old-step-N-*``), a folder pruning had begun to delete
    (``.pruned-step-N-*``), or a ``step-N`` without its meta.json (older versions pruned in place). A
    whole, verified temp or old copy whose ``step-N`` is missing (the kill fell between the two
    renames of a re-save) is put back; everything else there is deleted. A ``step-N`` that has its
    meta.json but lacks another file is damage, not a leftover: resume skips it with a warning and
    sets it aside. Call this holding the run's lock only: another writer's temp folder looks
    exactly like a killed one's.
    """
    checkpoints_dir = Path(checkpoints_dir)
    if not checkpoints_dir.is_dir():
        return []
    notes = []
    children = sorted(checkpoints_dir.iterdir(), key=lambda p: (not p.name.startswith(".tmp-"), p.name))
    for child in children:
        if _STEP_DIR.match(child.name) and child.is_dir() and not (child / "meta.json").exists():
            shutil.rmtree(child, ignore_errors=True)
            notes.append(f"removed the unfinished {child.name}")
    for child in children:
        name = child.name
        if name.startswith(_PRUNED):
            shutil.rmtree(child, ignore_errors=True)
            notes.append(f"finished pruning {name}")
            continue
        if not name.startswith((".tmp-step-", ".old-step-")):
            continue
        m = _LEFTOVER.match(name)
        final = checkpoints_dir / f"step-{m.group(2)}" if m else None
        if final is not None and child.is_dir() and not final.exists() and is_complete(child):
            try:
                load_checkpoint(child)
            except GMError:
                pass
            else:
                os.replace(child, final)
                notes.append(f"restored {final.name} from {name}")
                continue
        if child.is_dir():
            shutil.rmtree(child, ignore_errors=True)
        else:
            child.unlink(missing_ok=True)
        notes.append(f"removed {name}")
    if notes:
        fsync_dir(checkpoints_dir)
    return notes


def prune_checkpoints(checkpoints_dir: Path, keep: int, protect: set[int] | None = None) -> None:
    """Delete all but the newest `keep` checkpoints (and any step in `protect`).

    Each folder is first renamed out of the listing, then deleted, so a kill mid-delete leaves no
    half a ``step-N``. Temp folders are never touched here (see :func:`clean_partial_checkpoints`).
    """
    checkpoints_dir = Path(checkpoints_dir)
    protect = protect or set()
    ckpts = list_checkpoints(checkpoints_dir)
    doomed = [(s, p) for s, p in (ckpts[:-keep] if keep > 0 else ckpts) if s not in protect]
    for step, path in doomed:
        gone = checkpoints_dir / f"{_PRUNED}{step}-{uuid.uuid4().hex[:8]}"
        try:
            os.replace(path, gone)
        except OSError:
            continue
        shutil.rmtree(gone, ignore_errors=True)
    if doomed:
        fsync_dir(checkpoints_dir)

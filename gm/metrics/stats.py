"""Real-image statistics, cached on disk and keyed by everything that changes them.

A cache entry is ``<cache>/stats/<dataset>-<split>-<features>-n<N>-seed<S>.npz`` (``mu``, ``sigma``
in float64: the file works as a pytorch-fid stats file) beside a ``.json`` of its key:

    {"dataset", "split", "n", "seed", "features", "extractor", "weights", "data", "format"}

``weights`` is the sha256 of the feature extractor's weights and ``data`` the sha256 of the selected
real images, so new evaluator weights, another Inception file or other data (the full MNIST instead of
the offline sample) all miss and overwrite the entry. ``<cache>`` is ``$GM_CACHE_DIR`` when set,
else ``checkpoints/cache`` of this checkout (git-ignored).
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from gm.errors import GMError
from gm.metrics.features import Extractor, Tracker, extract_moments

if TYPE_CHECKING:
    from gm.runs.distributed import Group

FORMAT = 1


def cache_dir() -> Path:
    env = os.environ.get("GM_CACHE_DIR")
    base = Path(env).expanduser() if env else Path(__file__).resolve().parents[2] / "checkpoints" / "cache"
    return base / "stats"


@dataclass
class Stats:
    mu: np.ndarray
    sigma: np.ndarray
    n: int
    key: dict[str, Any]
    path: Path | None = None
    cached: bool = False      # True when read from the cache instead of computed

    @property
    def key_id(self) -> str:
        return key_id(self.key)


def key_id(key: dict[str, Any]) -> str:
    """A short stable name of a key, recorded with every evaluation as its `stats_key`."""
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:12]


def make_key(dataset: str, split: str, n: int, seed: int, extractor: Extractor, data: str) -> dict[str, Any]:
    return {"dataset": dataset, "split": split, "n": int(n), "seed": int(seed), "features": extractor.kind,
            "extractor": extractor.name, "weights": extractor.weights_hash, "data": data, "format": FORMAT}


def entry_path(key: dict[str, Any], folder: Path | None = None) -> Path:
    folder = Path(folder) if folder else cache_dir()
    return folder / f"{key['dataset']}-{key['split']}-{key['features']}-n{key['n']}-seed{key['seed']}.npz"


def load_cached(key: dict[str, Any], folder: Path | None = None) -> Stats | None:
    """The cached statistics for exactly this key, or None (absent, other key, unreadable)."""
    path = entry_path(key, folder)
    meta_path = path.with_suffix(".json")
    if not (path.is_file() and meta_path.is_file()):
        return None
    try:
        stored = read_sidecar(meta_path)
        if stored != key:
            return None
        with np.load(path, allow_pickle=False) as f:
            mu, sigma = np.asarray(f["mu"], np.float64), np.asarray(f["sigma"], np.float64)
    except Exception:  # GMError (a damaged sidecar), a torn or foreign .npz: simply recomputed
        return None
    if mu.shape != (key_dims(sigma),) or not np.isfinite(sigma).all() or not np.isfinite(mu).all():
        return None
    return Stats(mu, sigma, int(key["n"]), key, path, cached=True)


def read_sidecar(path: Path) -> dict[str, Any]:
    """The key JSON beside a statistics .npz, checked against gm.runs.schema.STATS_KEY; a GMError
    (DamagedFile) names what is wrong with it."""
    from gm.runs import schema
    return schema.read_file(schema.STATS_FILE, path, owner=f"{path.with_suffix('.npz').name}", folder=path.parent)


def key_dims(sigma: np.ndarray) -> int:
    return int(sigma.shape[0]) if sigma.ndim == 2 and sigma.shape[0] == sigma.shape[1] else -1


def save_cached(key: dict[str, Any], mu: np.ndarray, sigma: np.ndarray, folder: Path | None = None) -> Path:
    """Write the entry (npz first, key JSON last: a JSON only exists beside a complete npz)."""
    from gm.runs.atomic import write_json_atomic

    path = entry_path(key, folder)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.with_suffix(".json").unlink(missing_ok=True)
        tmp = path.with_name(f".{path.stem}.tmp-{os.getpid()}-{threading.get_ident()}.npz")  # threads too
        np.savez(tmp, mu=np.asarray(mu, np.float64), sigma=np.asarray(sigma, np.float64))
        os.replace(tmp, path)
        write_json_atomic(path.with_suffix(".json"), key)
    except OSError as exc:
        raise GMError(f"Cannot write the stats cache in {path.parent} ({exc.strerror}); set GM_CACHE_DIR to a "
                      f"writable folder.") from None
    return path


def real_stats(dataset: str, extractor: Extractor, *, n: int = 5000, seed: int = 0, split: str = "train",
               data_dir: str | None = None, tracker: Tracker | None = None, folder: Path | None = None,
               use_cache: bool = True, refresh: bool = False, group: Group | None = None) -> Stats:
    """Statistics of n real images of a dataset split: from the cache when the key matches, else computed
    (reporting progress to `tracker`) and stored. `refresh` recomputes and overwrites a current entry.

    With a process `group` (every rank calls it): rank 0 alone reads the cache and tells the others
    (two ranks must never disagree on a hit, and a file appearing meanwhile could make them), a miss
    is computed sharded (gm.metrics.sharding) and rank 0 alone writes it; every rank returns the same."""
    from gm.metrics.sharding import main_then_share, shard
    from gm.metrics.sources import real_images

    real = real_images(dataset, n, seed, split, data_dir)
    key = make_key(dataset, split, n, seed, extractor, real.fingerprint)
    if use_cache and not refresh:
        hit = main_then_share(group, lambda: load_cached(key, folder))
        if hit is not None:
            return hit
    lo, hi = shard(n, extractor.batch_size, group)
    if tracker is not None:
        tracker.add_work(hi - lo)
    mu, sigma = extract_moments(extractor, real.images.batches(extractor.batch_size, lo, hi), tracker,
                                group=group).mean_and_cov()
    path = main_then_share(group, lambda: save_cached(key, mu, sigma, folder)) if use_cache else None
    return Stats(mu, sigma, n, key, path, cached=False)


def cached_or_none(dataset: str, extractor: Extractor, *, n: int, seed: int = 0, split: str = "train",
                   data_dir: str | None = None, folder: Path | None = None) -> Stats | None:
    """The cache entry if it is there and current (lets callers plan the work before starting)."""
    from gm.metrics.sources import real_images

    real = real_images(dataset, n, seed, split, data_dir)
    return load_cached(make_key(dataset, split, n, seed, extractor, real.fingerprint), folder)

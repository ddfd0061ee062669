"""Orchestration used by the CLI and the app: FID between two sources, every metric of one source,
and an up-front time estimate. Long work reports ``progress(done, total, eta_seconds)`` and stops at
the next batch when the ``cancel`` event is set (raising :class:`~gm.metrics.features.Cancelled`).

Each evaluation of a run folder appends one line per number to ``<run>/eval.jsonl``:

    {"step", "metric", "value", "n", "features", "stats_key", "time", "seed"}

``step`` is the checkpoint evaluated, ``features`` "inception" | "classifier" | "offline" | "encoder", ``stats_key``
the id of the reference statistics (see :mod:`gm.metrics.stats`), ``time`` when it was measured.

A translation run (a model with the "translates" capability) is measured by
:mod:`gm.metrics.translation` instead: its lines have ``features`` "translation", ``n`` images per
pair, no ``stats_key``, ``metric`` one of TRANSLATION_LINES, and on per-pair lines ``"pair": "<a>-><b>"``.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from gm.data.registry import SpecView
from gm.errors import GMError
from gm.metrics.features import (
    Extractor,
    ImageSet,
    ProgressFn,
    Tracker,
    extract,
    extract_moments,
    format_seconds,
    measure_rate,
)
from gm.metrics.frechet import frechet_distance, mean_and_cov
from gm.metrics.sharding import gather_arrays, local_count, main_then_share, shard, world_size
from gm.metrics.sources import Source, open_source, real_images, sample_batches
from gm.metrics.stats import cached_or_none, key_id, load_cached, make_key, real_stats, save_cached
from gm.models.base import ClassConditional, Encodes, SamplesFromNoise, Translates

if TYPE_CHECKING:
    from gm.runs.distributed import Group

FEATURES = ("inception", "classifier", "offline")
DEFAULT_N = 5000
MIG_BATCH = 500      # images per encoder call for MIG
LogFn = Callable[[str], None]


@dataclass
class FIDResult:
    value: float
    features: str          # "inception" | "classifier" | "offline"
    extractor: str
    n_a: int
    n_b: int
    a: str
    b: str
    stats_key: str
    step: int | None       # checkpoint step when A is a run folder
    seed: int
    seconds: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def get_extractor(features: str, dataset: str | None, device: torch.device | str = "cpu",
                  inception_weights: str | None = None) -> Extractor:
    """The feature extractor for `features`: Inception, or the dataset's shipped classifier."""
    device = torch.device(device)
    if features == "inception":
        from gm.metrics.inception import load_inception
        return load_inception(inception_weights, device)
    if features == "classifier":
        if dataset is None:
            raise GMError("Classifier features depend on the dataset; pass --dataset mnist or dsprites.")
        from gm.metrics.classifiers import ClassifierFeatures, load_classifier
        return ClassifierFeatures(load_classifier(dataset, device))
    if features == "offline":
        if dataset is None:
            raise GMError("Offline features depend on the dataset; pass --dataset mnist or dsprites.")
        from gm.metrics.offline import offline_extractor
        return offline_extractor(dataset, device)
    raise GMError(f"Unknown features '{features}'; use one of {', '.join(FEATURES)}.")


def _now() -> str:
    return _dt.datetime.now().isoformat(timespec="seconds")


def _content_id(mu: np.ndarray, sigma: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(mu).tobytes() + np.ascontiguousarray(sigma).tobytes()).hexdigest()[:12]


@dataclass
class _Run:
    model: Any
    run: Any
    step: int


def _open_run(path: Path, device: torch.device, *, translates: bool = False) -> _Run:
    """The run's latest good checkpoint as a model that samples from noise (or, with
    translates=True, one that translates: evaluate() measures those with gm.metrics.translation)."""
    from gm.models.loading import load_model
    from gm.runs.checkpoint import latest_good_checkpoint
    from gm.runs.folder import RunFolder

    run = RunFolder.open(path)
    found = latest_good_checkpoint(run.checkpoints_dir)
    if found is None:
        raise GMError(f"Run '{run.name}' has no checkpoint yet; train it first.")
    model = load_model(run, str(device), checkpoint=found[1])
    if not isinstance(model, SamplesFromNoise) and not (translates and isinstance(model, Translates)):
        raise GMError(f"Run '{run.name}' is a {run.read_config().get('model')} model, which does not sample "
                      f"from noise: FID and sample metrics are not available for it.")
    return _Run(model, run, found[0])


def _is_translation_run(path: Path) -> bool:
    """Whether the run's model translates between domains, read from its config before any weights
    load (an unknown model or a damaged folder is left for _open_run to report)."""
    from gm.registry import get_spec
    from gm.runs.folder import RunFolder

    try:
        return "translates" in get_spec(str(RunFolder.open(path).read_config().get("model"))).capabilities
    except (GMError, OSError, ValueError):
        return False


def _has_factors(dataset: str) -> bool:
    """Whether the dataset declares ground-truth factors (what MIG measures against)."""
    from gm.data.registry import get_dataset_spec
    return bool(get_dataset_spec(dataset).factors)


def _dataset_of(sources: list[Source | None], dataset: str | None) -> str | None:
    for s in sources:
        if s is not None and s.kind == "run" and s.dataset:
            if dataset is not None and dataset != s.dataset:
                raise GMError(f"{s.path} is a {s.dataset} run; --dataset {dataset} does not match it.")
            return s.dataset
    return dataset


def _n_images(src: Source, n: int) -> int:
    if src.kind == "run":
        return n
    if src.kind == "images":
        assert src.images is not None
        return len(src.images)
    return 0


def _image_shape(src: Source, run: _Run | None) -> tuple[int, int, int] | None:
    if run is not None:
        return tuple(run.model.image_shape)
    if src.images is not None:
        return src.images.image_shape
    return None


@dataclass
class _SourceStats:
    mu: np.ndarray
    sigma: np.ndarray
    n: int
    factor: np.ndarray | None = None   # D x N with factor @ factor.T == sigma, kept when N is small


def _source_stats(src: Source, run: _Run | None, extractor: Extractor | None, n: int, seed: int,
                  tracker: Tracker, group: Group | None = None) -> _SourceStats:
    """Statistics of a source; with a process `group`, each rank measures its share of the batches
    (gm.metrics.sharding) and every rank gets the statistics of all of them."""
    if src.kind == "stats":
        assert src.mu is not None and src.sigma is not None
        return _SourceStats(src.mu, src.sigma, int(src.meta.get("n", 0) or 0))
    assert extractor is not None
    size = extractor.batch_size
    lo, hi = shard(_n_images(src, n), size, group)
    if run is not None:
        # Samples are drawn chunk by chunk as the extractor asks for them: never all n images at once.
        batches = _rebatch(sample_batches(run.model, n, seed, start=lo, stop=hi), size)
    else:
        assert src.images is not None
        batches = src.images.batches(size, lo, hi)
    moments = extract_moments(extractor, batches, tracker, group=group)
    mu, sigma = moments.mean_and_cov()
    return _SourceStats(mu, sigma, moments.n, moments.factor())


def _rebatch(chunks, size: int):
    """Regroup sampling chunks into the extractor's batch size (features do not depend on batching)."""
    buf: list[torch.Tensor] = []
    count = 0
    for chunk in chunks:
        buf.append(chunk)
        count += chunk.shape[0]
        while count >= size:
            joined = torch.cat(buf)
            yield joined[:size]
            rest = joined[size:]
            buf, count = ([rest] if rest.shape[0] else []), rest.shape[0]
    if count:
        yield torch.cat(buf)


def estimate_seconds(extractor: Extractor, images: int, image_shape: tuple[int, int, int]) -> tuple[float, float]:
    """(seconds, images per second) that `images` feature extractions will roughly take here."""
    rate = measure_rate(extractor, image_shape)
    return images / rate, rate


def announce_estimate(extractor: Extractor, images: int, shape: tuple[int, int, int] | None, log: LogFn,
                      real: int = 0) -> None:
    """Tell the user up front how long the feature extraction will roughly take (CPU runs)."""
    if images and shape:
        secs, rate = estimate_seconds(extractor, images, shape)
        log(f"{extractor.kind} features of {images:,} images on {extractor.device.type}: about "
            f"{format_seconds(secs)} ({rate:.1f} img/s measured)"
            + (f"; {real:,} of them are real images, cached afterwards" if real else ""))


def _fid_sources(a: str | Path, b: str | Path | None, dataset: str | None) -> tuple[Source, Source | None, str | None]:
    """fid()'s sources and dataset, or its one-sentence error."""
    src_a = open_source(a)
    src_b = open_source(b) if b is not None else None
    ds = _dataset_of([src_a, src_b], dataset)
    if src_b is None and ds is None:
        raise GMError(f"{a} is not a run folder, so its dataset is unknown; pass --dataset mnist or dsprites "
                      f"(or give B).")
    return src_a, src_b, ds


def _eval_source(a: str | Path, dataset: str | None) -> tuple[Source, str]:
    """evaluate()'s source (images, not statistics) and dataset, or its one-sentence error."""
    src = open_source(a)
    if src.kind == "stats":
        raise GMError(f"{a} holds statistics, not images; `eval` needs a run folder or images.")
    ds = _dataset_of([src], dataset)
    if ds is None:
        raise GMError(f"{a} is not a run folder, so its dataset is unknown; pass --dataset mnist or dsprites.")
    return src, ds


def check_sources(a: str | Path, b: str | Path | None = None, *, dataset: str | None = None,
                  images_only: bool = False) -> None:
    """The checks fid() (and, with images_only, evaluate()) makes of its sources before any model or
    feature work, with the same one-sentence errors: the CLI runs them once before it starts several
    processes, so a mistyped path is one line rather than one per process and a launcher report."""
    if images_only:
        _eval_source(a, dataset)
    else:
        _fid_sources(a, b, dataset)


def fid(a: str | Path, b: str | Path | None = None, *, n: int = DEFAULT_N, features: str = "inception",
        dataset: str | None = None, seed: int = 0, real_seed: int = 0, split: str = "train",
        device: str = "auto", data_dir: str | None = None, inception_weights: str | None = None,
        extractor: Extractor | None = None, progress: ProgressFn | None = None,
        cancel: threading.Event | None = None, record: bool = True, log: LogFn | None = None,
        cache_folder: Path | None = None, group: Group | None = None) -> FIDResult:
    """FID between A and B (each a run folder, image folder, images .npz or stats .npz).

    Without B, A is compared with the cached statistics of n real images of its dataset (chosen with
    `real_seed`). A run folder is sampled n times from its latest checkpoint with `seed`. When A is a
    run folder the result is appended to its eval.jsonl (unless record=False).

    With a process `group` (gm.runs.distributed; every rank calls fid with the same arguments and
    its own `device`), each rank samples and measures its share of the images, the statistics are
    summed over the ranks in float64 and rank 0 computes, records and hands out the same result:
    equal to one process's (gm.metrics.sharding). Progress then counts this rank's share.
    """
    from gm.device import resolve_device

    if features not in FEATURES:
        raise GMError(f"Unknown features '{features}'; use one of {', '.join(FEATURES)}.")
    if n < 2:
        raise GMError(f"--n must be at least 2; got {n}.")
    start = time.perf_counter()
    dev = resolve_device(device)
    src_a, src_b, ds = _fid_sources(a, b, dataset)
    runs = {id(s): _open_run(s.path, dev) for s in (src_a, src_b) if s is not None and s.kind == "run"}
    run_a, run_b = runs.get(id(src_a)), runs.get(id(src_b)) if src_b is not None else None
    needs_features = src_a.kind != "stats" or src_b is None or src_b.kind != "stats"
    if needs_features and extractor is None:
        extractor = get_extractor(features, ds, dev, inception_weights)
    if extractor is not None:
        features = extractor.kind

    size = extractor.batch_size if extractor is not None else 1
    tracker = Tracker(local_count(_n_images(src_a, n), size, group)
                      + (local_count(_n_images(src_b, n), size, group) if src_b else 0), progress, cancel)
    if log is not None and extractor is not None and dev.type == "cpu":
        real = 0
        if src_b is None:
            real = 0 if cached_or_none(ds, extractor, n=n, seed=real_seed, split=split, data_dir=data_dir,
                                       folder=cache_folder) else local_count(n, size, group)
        shape = _image_shape(src_a, run_a) or (_image_shape(src_b, run_b) if src_b else None)
        announce_estimate(extractor, tracker.total + real, shape, log, real)

    st_a = _source_stats(src_a, run_a, extractor, n, seed, tracker, group)
    mu_a, sigma_a, n_a = st_a.mu, st_a.sigma, st_a.n
    factor_b = None
    if src_b is None:
        assert extractor is not None and ds is not None
        ref = real_stats(ds, extractor, n=n, seed=real_seed, split=split, data_dir=data_dir, tracker=tracker,
                         folder=cache_folder, group=group)
        if log is not None:
            log(f"real statistics {'from cache' if ref.cached else 'computed and cached'}: {ref.path}")
        mu_b, sigma_b, n_b, stats_key = ref.mu, ref.sigma, ref.n, ref.key_id
        b_desc = f"{ds} {split} real n={n} seed={real_seed}"
    else:
        st_b = _source_stats(src_b, run_b, extractor, n, seed, tracker, group)
        mu_b, sigma_b, n_b, factor_b = st_b.mu, st_b.sigma, st_b.n, st_b.factor
        stats_key = key_id(src_b.meta) if src_b.kind == "stats" and src_b.meta else _content_id(mu_b, sigma_b)
        b_desc = str(src_b.path)
    if extractor is not None and (mu_a.shape[0] != extractor.dims or mu_b.shape[0] != extractor.dims):
        raise GMError(f"The statistics are {mu_a.shape[0]}-d and {mu_b.shape[0]}-d but {extractor.kind} features "
                      f"are {extractor.dims}-d; use statistics made with the same --features.")

    def finish() -> FIDResult:
        # Rank 0 alone: the eigenvalue problem costs seconds at 2,048 dimensions, and only one may record.
        value = frechet_distance(mu_a, sigma_a, mu_b, sigma_b, factor1=st_a.factor, factor2=factor_b)
        result = FIDResult(value, features, extractor.name if extractor else "stats", n_a, n_b, str(src_a.path),
                           b_desc, stats_key, run_a.step if run_a else None, seed, time.perf_counter() - start)
        if record and run_a is not None:
            run_a.run.append_eval({"step": run_a.step, "metric": "fid", "value": value, "n": n_a,
                                   "features": features, "stats_key": stats_key, "time": _now(), "seed": seed})
        return result

    return main_then_share(group, finish)


def estimate(a: str | Path, *, n: int = DEFAULT_N, features: str = "inception", dataset: str | None = None,
             real_seed: int = 0, split: str = "train", device: str = "auto", data_dir: str | None = None,
             inception_weights: str | None = None, extractor: Extractor | None = None) -> dict[str, Any]:
    """How long fid(a) would take here: {"images", "seconds", "images_per_second", "real_cached"}."""
    from gm.device import resolve_device

    dev = resolve_device(device)
    src = open_source(a)
    ds = _dataset_of([src], dataset)
    if ds is None:
        raise GMError(f"{a} is not a run folder; pass --dataset mnist or dsprites.")
    extractor = extractor or get_extractor(features, ds, dev, inception_weights)
    cached = cached_or_none(ds, extractor, n=n, seed=real_seed, split=split, data_dir=data_dir) is not None
    images = _n_images(src, n) + (0 if cached else n)
    if src.kind == "run":
        from gm.runs.folder import RunFolder
        shape = tuple(RunFolder.open(src.path).read_config().get("data_shape", {}).get("image_shape", (1, 28, 28)))
    else:
        shape = src.images.image_shape if src.images is not None else (1, 28, 28)
    secs, rate = estimate_seconds(extractor, images, shape) if images else (0.0, float("inf"))
    return {"images": images, "seconds": secs, "images_per_second": rate, "real_cached": cached}


# ---- every metric -------------------------------------------------------------------------------
# dataset -> (the evaluator prediction whose histogram is mode coverage, its class names), read live
# from each dataset's spec (DatasetSpec.coverage, DatasetSpec.classes).
COVERAGE_OF = SpecView(lambda spec: (spec.coverage, spec.classes) if spec.coverage else None)


def evaluate(a: str | Path, *, dataset: str | None = None, n: int | None = None, seed: int = 0, real_seed: int = 0,
             split: str = "train", device: str = "auto", data_dir: str | None = None, inception: bool = False,
             inception_weights: str | None = None, inception_extractor: Extractor | None = None,
             progress: ProgressFn | None = None, cancel: threading.Event | None = None, record: bool = True,
             log: LogFn | None = None, cache_folder: Path | None = None,
             group: Group | None = None) -> dict[str, Any]:
    """Every metric that applies to A (a run folder, image folder or images .npz), as one flat dict.

    Classifier FID, mode coverage (class histogram, classes covered, KL to uniform), precision /
    recall (k = 3, classifier features), ACGAN accuracy for class-conditional runs, MIG for VAE-family
    runs on dSprites, and Inception FID when `inception` is true. A translation run gets the
    translation figures instead (gm.metrics.translation; `n` images per domain pair).
    `n` defaults to 5,000 images (the assignment's minimum), and to 500 per pair for a translation run.

    With a process `group` (gm.runs.distributed; every rank calls evaluate with the same arguments and
    its own `device`): sampling and every feature pass (classifier, offline evaluator, encoder,
    Inception; a translation run's translations) are split among the ranks by whole batches
    (gm.metrics.sharding); per-image features and predictions are gathered in one-process order and
    Inception statistics summed in float64. The figures that need every image at once (the Fréchet
    distances, k-NN precision / recall and density / coverage, histograms, within-class diversity,
    MIG's binning) are then computed on rank 0 only, from exactly the arrays one process has, and
    recorded there; every rank returns rank 0's dict. Progress counts this rank's share.
    """
    from gm.device import resolve_device
    from gm.metrics.classifiers import ClassifierFeatures, load_classifier

    start = time.perf_counter()
    dev = resolve_device(device)
    src, ds = _eval_source(a, dataset)
    if src.kind == "run" and _is_translation_run(src.path):
        from gm.metrics.translation import DEFAULT_N as TRANSLATION_N
        return _evaluate_translation(_open_run(src.path, dev, translates=True), ds, n=n or TRANSLATION_N,
                                     seed=seed, split=split,
                                     device=dev, data_dir=data_dir, progress=progress, cancel=cancel,
                                     record=record, log=log, start=start, group=group)
    n = n or DEFAULT_N
    run = _open_run(src.path, dev) if src.kind == "run" else None
    cf = ClassifierFeatures(load_classifier(ds, dev))
    conditional = run is not None and isinstance(run.model, ClassConditional) and run.model.num_classes > 0
    # MIG needs an encoder and the dataset's ground-truth factors.
    do_mig = run is not None and isinstance(run.model, Encodes) and _has_factors(ds)
    n_gen = _n_images(src, n)
    real = real_images(ds, n, real_seed, split, data_dir)
    size = cf.batch_size
    what = COVERAGE_OF[ds][0]
    tracker = Tracker(local_count(n_gen, size, group) + local_count(n, size, group)
                      + (local_count(n_gen, size, group) if conditional else 0)
                      + (local_count(len(real.images), MIG_BATCH, group) if do_mig else 0), progress, cancel)

    # Generated images: classifier features and predictions in one pass, kept as 8-bit for the offline
    # evaluator and Inception (8-bit is what they were quantised to: nothing is lost, and ranks send less).
    lo, hi = shard(n_gen, size, group)
    parts: dict[str, list[np.ndarray]] = {"feats": [], "kept": []}
    batches = _rebatch(sample_batches(run.model, n, seed, start=lo, stop=hi), size) if run else \
        src.images.batches(size, lo, hi)
    for x in batches:
        tracker.check()
        f, p = cf.features_and_predictions(x)
        parts["feats"].append(f)
        for k, v in p.items():
            parts.setdefault(f"pred:{k}", []).append(v)
        parts["kept"].append(torch.round(x * 255).to(torch.uint8).numpy())
        tracker.advance(x.shape[0])
    gen = gather_arrays(parts, group)
    gen_feats, kept = gen.pop("feats"), torch.from_numpy(gen.pop("kept"))
    gen_preds = {k.removeprefix("pred:"): v for k, v in gen.items()}

    lo, hi = shard(len(real.images), size, group)
    local = [extract(cf, real.images.batches(size, lo, hi), tracker)] if hi > lo else []
    real_feats = gather_arrays({"feats": local}, group)["feats"]

    of = _offline_features(ds, dev)
    offline = None
    if of is not None:
        # Not counted in the progress: it re-reads images already counted and takes a fraction of the
        # classifier pass.
        tracker.check()
        offline = (*_offline_all(of, lambda lo, hi: kept[lo:hi].float() / 255, len(kept), group),
                   *_offline_all(of, real.images.batch, len(real.images), group))
        tracker.check()

    labels = cond = cond_probs = None
    if conditional:
        labels = torch.arange(n_gen) % int(run.model.num_classes)
        lo, hi = shard(n_gen, size, group)
        cparts: dict[str, list[np.ndarray]] = {"got": [], "images": []}
        for x in _rebatch(sample_batches(run.model, n_gen, seed, labels=labels, start=lo, stop=hi), size):
            tracker.check()
            cparts["got"].append(cf.features_and_predictions(x)[1][what])
            cparts["images"].append(torch.round(x * 255).to(torch.uint8).numpy())
            tracker.advance(x.shape[0])
        cond = gather_arrays(cparts, group)
        if of is not None:
            cond_images = torch.from_numpy(cond["images"])
            cond_probs = _offline_all(of, lambda lo, hi: cond_images[lo:hi].float() / 255, n_gen, group)[1]

    codes = _mig_codes(run, real, dev, tracker, group) if do_mig else None

    moments = ref_i = None
    if inception:
        gen_set = ImageSet(kept, 255.0, "generated")
        ext = inception_extractor or get_extractor("inception", ds, dev, inception_weights)
        lo, hi = shard(len(gen_set), ext.batch_size, group)
        if log is not None and dev.type == "cpu":
            real_left = 0 if cached_or_none(ds, ext, n=n, seed=real_seed, split=split, data_dir=data_dir,
                                            folder=cache_folder) else local_count(n, ext.batch_size, group)
            announce_estimate(ext, hi - lo + real_left, gen_set.image_shape, log, real_left)
        tracker.add_work(hi - lo)
        ref_i = real_stats(ds, ext, n=n, seed=real_seed, split=split, data_dir=data_dir, tracker=tracker,
                           folder=cache_folder, group=group)
        moments = extract_moments(ext, gen_set.batches(ext.batch_size, lo, hi), tracker, group=group)

    def finish() -> dict[str, Any]:
        from gm.metrics.coverage import conditional_accuracy, coverage
        from gm.metrics.prd import precision_recall

        key = make_key(ds, split, n, real_seed, cf, real.fingerprint)
        ref = load_cached(key, cache_folder)
        if ref is None:  # keep the cache in step, so `fid --features classifier` later reuses exactly these
            mu_r, sigma_r = mean_and_cov(real_feats)
            save_cached(key, mu_r, sigma_r, cache_folder)
        else:
            mu_r, sigma_r = ref.mu, ref.sigma
        stats_key = key_id(key)
        mu_g, sigma_g = mean_and_cov(gen_feats)

        result: dict[str, Any] = {"source": str(src.path), "dataset": ds, "step": run.step if run else None,
                                  "n": int(gen_feats.shape[0]), "n_real": n, "seed": seed, "real_seed": real_seed,
                                  "stats_key": stats_key, "classifier": cf.name}
        result["fid_classifier"] = frechet_distance(mu_g, sigma_g, mu_r, sigma_r)
        names = COVERAGE_OF[ds][1]
        cov = coverage(gen_preds[what], len(names))
        result.update({"coverage_of": what, "class_names": list(names), **cov})
        result.update(precision_recall(real_feats, gen_feats, k=3))

        if offline is not None:
            result.update(_offline_metrics(ds, of, *offline, real, n, split, real_seed, cache_folder))

        if conditional:
            assert labels is not None and cond is not None
            result["acgan_accuracy"] = conditional_accuracy(cond["got"], labels.numpy())
            if cond_probs is not None:
                result.update(_recognised_as_requested(cond_probs, labels))

        if codes is not None:
            from gm.metrics.mig import mig
            out = mig(codes, real.dataset.factor_classes[real.indices].numpy(), tuple(real.dataset.factor_names))
            result.update({"mig": out["mig"], "mig_per_factor": out["per_factor"]})

        if moments is not None and ref_i is not None:
            mu_i, sigma_i = moments.mean_and_cov()
            result["fid_inception"] = frechet_distance(mu_i, sigma_i, ref_i.mu, ref_i.sigma, factor1=moments.factor())
            result["stats_key_inception"] = ref_i.key_id

        result["seconds"] = round(time.perf_counter() - start, 3)
        if record and run is not None:
            _record(run, result)
        if log is not None:
            log(f"evaluated {result['n']:,} images in {format_seconds(result['seconds'])}"
                + (f" on {world_size(group)} processes" if world_size(group) > 1 else ""))
        return result

    return main_then_share(group, finish)


def _offline_all(of: Any, images: Callable[[int, int], torch.Tensor], total: int,
                 group: Group | None) -> tuple[np.ndarray, np.ndarray]:
    """(features, probabilities) of the offline evaluator for images [0, total) (`images(lo, hi)` gives
    a range in [0, 1]), each rank taking its share in whole batches of the evaluator's batch size."""
    lo, hi = shard(total, of.batch_size, group)
    parts: dict[str, list[np.ndarray]] = {"f": [], "p": []}
    if hi > lo:
        f, p = of.all(images(lo, hi))
        parts = {"f": [f], "p": [p]}
    out = gather_arrays(parts, group)
    return out["f"], out["p"]


def _offline_metrics(ds: str, of: Any, g_feats: np.ndarray, g_probs: np.ndarray, r_feats: np.ndarray,
                     r_probs: np.ndarray, real: Any, n: int, split: str, real_seed: int,
                     cache_folder: Path | None) -> dict[str, Any]:
    """fid_offline, recognisable_share(_real) and within_class_diversity on the offline evaluator's
    features (gm.metrics.offline) of the generated images already drawn and of the same real images.
    Datasets without an offline evaluator (or a checkout without its weights) get none of these keys."""
    from gm.metrics.offline import (
        classes_recognised,
        recognisable_share,
        within_class_diversity,
    )
    from gm.metrics.prd import density_coverage, precision_recall

    key = make_key(ds, split, n, real_seed, of, real.fingerprint)
    ref = load_cached(key, cache_folder)
    if ref is None:
        mu_r, sigma_r = mean_and_cov(r_feats)
        save_cached(key, mu_r, sigma_r, cache_folder)
    else:
        mu_r, sigma_r = ref.mu, ref.sigma
    mu_g, sigma_g = mean_and_cov(g_feats)
    share, share_real = recognisable_share(g_probs), recognisable_share(r_probs)
    pr = precision_recall(r_feats, g_feats, k=3)
    dc = density_coverage(r_feats, g_feats, k=5)
    return {"fid_offline": frechet_distance(mu_g, sigma_g, mu_r, sigma_r), "stats_key_offline": key_id(key),
            "offline_evaluator": of.name, "recognisable_share": share, "recognisable_share_real": share_real,
            "recognisable_ratio": share / share_real if share_real else None,
            "classes_recognised": classes_recognised(g_probs),
            "within_class_diversity": within_class_diversity(g_feats, g_probs, r_feats, r_probs),
            "precision_offline": pr["precision"], "recall_offline": pr["recall"],
            "density_offline": dc["density"], "coverage_offline": dc["coverage"]}


def _offline_features(ds: str, dev: torch.device) -> Any:
    """The dataset's offline evaluator as an extractor, or None (no evaluator for the dataset, or a
    checkout without its weights: then the offline keys are simply absent)."""
    from gm.metrics.offline import OFFLINE, OfflineFeatures, load_offline

    if ds not in OFFLINE:
        return None
    try:
        return OfflineFeatures(load_offline(ds, dev))
    except GMError:
        return None


def _recognised_as_requested(probs: np.ndarray, labels: torch.Tensor) -> dict[str, Any]:
    """Share of a conditional model's samples the offline evaluator recognises (probability >= 0.9)
    as the class they were asked for: stricter than acgan_accuracy, which credits any argmax."""
    from gm.metrics.offline import recognised_class

    return {"recognised_as_requested": float((recognised_class(probs) == labels.numpy()).mean())}


def _mig_codes(run: _Run | None, real: Any, dev: torch.device, tracker: Tracker,
               group: Group | None) -> np.ndarray | None:
    """A VAE-family run's encoder means of the real dSprites images (MIG's input; each rank encodes its
    share, gathered in order), or None when the model has no encoder to read."""
    from gm.metrics.mig import encode, model_encoder

    encoder = model_encoder(run.model) if run is not None else None
    lo, hi = shard(len(real.images), MIG_BATCH, group)
    if encoder is None:
        tracker.advance(hi - lo)
        return None
    local = [encode(encoder, real.images.data[lo:hi].float() / real.images.max_value, dev, batch_size=MIG_BATCH,
                    tracker=tracker)] if hi > lo else []
    return gather_arrays({"codes": local}, group)["codes"]


def _evaluate_translation(run: _Run, ds: str, *, n: int, seed: int, split: str, device: torch.device,
                          data_dir: str | None, progress: ProgressFn | None, cancel: threading.Event | None,
                          record: bool, log: LogFn | None, start: float,
                          group: Group | None = None) -> dict[str, Any]:
    """evaluate() of a translation run: gm.metrics.translation's figures on n images per domain pair
    of the run's dataset (it samples nothing from noise, so FID and coverage do not apply). With a
    process `group` each rank translates its share of every pair's batches; rank 0 records."""
    from gm.data import load_dataset
    from gm.metrics.translation import evaluate_translation

    dataset = load_dataset(ds, data_dir, train=split == "train")
    out = evaluate_translation(run.model, dataset, n=n, seed=seed, device=device, progress=progress, cancel=cancel,
                               group=group)

    def finish() -> dict[str, Any]:
        result: dict[str, Any] = {"source": str(run.run.path), "dataset": ds, "step": run.step,
                                  "kind": "translation", **out}
        result["seconds"] = round(time.perf_counter() - start, 3)
        if record:
            _record_translation(run, result)
        if log is not None:
            if result.get("note"):
                log(result["note"])
            shown = ", ".join(f"{k} {result[k]:.4g}" for k in TRANSLATION_LINES if isinstance(result.get(k), float))
            log(f"translation of {result['n']:,} images per pair ({len(result['pairs'])} pairs): {shown}; "
                f"{format_seconds(result['seconds'])}")
        return result

    return main_then_share(group, finish)


# What a translation evaluation writes to eval.jsonl (features "translation"): each figure overall,
# and again per domain pair with "pair": "<source>-><target>" on the line (gm.translate_views reads both).
TRANSLATION_LINES = ("target_accuracy", "content_error", "gt_iou", "gt_l1", "position_error_px", "cycle_l1",
                     "parameters")


def _record_translation(run: _Run, result: dict[str, Any]) -> None:
    """One eval.jsonl line per translation figure, overall and per domain pair."""
    lines = [(k, result[k], result["n"], None) for k in TRANSLATION_LINES if result.get(k) is not None]
    for pair, figures in result["pairs"].items():
        lines += [(k, figures[k], figures["n"], pair) for k in TRANSLATION_LINES if figures.get(k) is not None]
    now = _now()
    for metric, value, n, pair in lines:
        record = {"step": run.step, "metric": metric, "value": value, "n": n, "features": "translation",
                  "stats_key": None, "time": now, "seed": result["seed"]}
        if pair is not None:
            record["pair"] = pair
        run.run.append_eval(record)


def _record(run: _Run, result: dict[str, Any]) -> None:
    """One eval.jsonl line per number of an evaluate() result."""
    key = result["stats_key"]
    lines = [("fid", result["fid_classifier"], "classifier", key),
             ("precision", result["precision"], "classifier", key),
             ("recall", result["recall"], "classifier", key),
             ("classes_covered", result["classes_covered"], "classifier", None),
             ("kl_to_uniform", result["kl_to_uniform"], "classifier", None)]
    if "acgan_accuracy" in result:
        lines.append(("acgan_accuracy", result["acgan_accuracy"], "classifier", None))
    if "mig" in result:
        lines.append(("mig", result["mig"], "encoder", None))
    if "fid_inception" in result:
        lines.append(("fid", result["fid_inception"], "inception", result["stats_key_inception"]))
    if "fid_offline" in result:  # own metric names: "fid" lines stay classifier / inception
        lines += [("fid_offline", result["fid_offline"], "offline", result["stats_key_offline"]),
                  ("recognisable_share", result["recognisable_share"], "offline", None),
                  ("recognisable_share_real", result["recognisable_share_real"], "offline", None),
                  ("within_class_diversity", result["within_class_diversity"], "offline", None),
                  ("recognisable_ratio", result.get("recognisable_ratio"), "offline", None),
                  ("classes_recognised", result.get("classes_recognised"), "offline", None),
                  ("precision", result.get("precision_offline"), "offline", result["stats_key_offline"]),
                  ("recall", result.get("recall_offline"), "offline", result["stats_key_offline"]),
                  ("density", result.get("density_offline"), "offline", result["stats_key_offline"]),
                  ("coverage", result.get("coverage_offline"), "offline", result["stats_key_offline"])]
    if "recognised_as_requested" in result:
        lines.append(("recognised_as_requested", result["recognised_as_requested"], "offline", None))
    lines = [line for line in lines if line[1] is not None]   # no diversity without recognisable samples
    now = _now()
    for metric, value, features, stats_key in lines:
        run.run.append_eval({"step": run.step, "metric": metric, "value": value, "n": result["n"],
                             "features": features, "stats_key": stats_key, "time": now, "seed": result["seed"]})

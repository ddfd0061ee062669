"""Image-to-image translation scored the way the papers do and against ground truth they never had.

For every (source, target) pair a model translates, `n` images of the source domain (a seeded
choice) are translated and measured:

    target_accuracy     share the dataset's evaluator assigns to the requested domain (the papers'
                        classification metric; dSprites by shape: the shape head, by scale: the
                        scale head binned into small / large)
    content_error       share whose kept content (the evaluator's other heads: scale, posX, posY for
                        dSprites by shape; position may be off by one index) is read differently from
                        the source's true factors: a translation must change the domain and nothing else
    gt_iou              IoU of translation > 0.5 with the true counterpart (gm.data.domains.counterparts)
    gt_l1               mean |translation - counterpart| per pixel
    position_error_px   mean distance in pixels between the centroids of translation > 0.5 and of the
                        counterpart (an empty translation counts from the canvas centre)
    cycle_l1            mean |F(G(x)) - x| per pixel: the cycle the models train on
    parameters          model.translator_parameters(): the papers' "parameters" column

``pairs`` holds the figures of each pair under "source->target"; the top-level figures are their
means (every pair weighs the same, as the papers' tables average over attributes). A dataset without
ground truth gets no gt_* / position keys and ``note`` says why in one sentence.

Only the :class:`~gm.models.base.Translates` API is called, so any translator (and the test doubles
in tests/test_translation_metrics.py) is measured the same way.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from gm.data.base import ImageDataset
from gm.errors import GMError
from gm.metrics.features import ProgressFn, Tracker
from gm.models.base import Translates

if TYPE_CHECKING:
    from gm.runs.distributed import Group

DEFAULT_N = 500   # images per pair: 0.02 standard error on a share, seconds on a CPU per pair
KEYS = ("target_accuracy", "content_error", "gt_iou", "gt_l1", "position_error_px", "cycle_l1")
GROUND_TRUTH_KEYS = ("gt_iou", "gt_l1", "position_error_px")
# Evaluator heads whose reading may be off by this many indices and still count as kept: adjacent
# dSprites positions are 1 px apart, closer than a translator (or the evaluator) can be asked to hit.
CONTENT_TOLERANCE = {"posX": 1, "posY": 1}


# ---- pure helpers -------------------------------------------------------------------------------
def _flat_masks(masks: torch.Tensor) -> torch.Tensor:
    m = torch.as_tensor(masks)
    if m.dim() == 4:          # N x C x H x W: a pixel is on when any channel is
        m = m.bool().any(dim=1)
    return m.bool()


def iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """float N: intersection over union of two stacks of masks (N x H x W or N x C x H x W, bool or
    0/1). Two empty masks agree perfectly (1.0): nothing was to be drawn and nothing was."""
    a, b = _flat_masks(a), _flat_masks(b)
    inter = (a & b).flatten(1).sum(1).double()
    union = (a | b).flatten(1).sum(1).double()
    return torch.where(union > 0, inter / union.clamp(min=1), torch.ones_like(union))


def centroids(masks: torch.Tensor) -> torch.Tensor:
    """float N x 2: the (x, y) pixel centroid of each mask (N x H x W or N x C x H x W). An empty
    mask has none; it gets the canvas centre, so an empty translation is neither free nor infinite."""
    m = _flat_masks(masks).double()
    h, w = m.shape[-2:]
    mass = m.flatten(1).sum(1)
    ys = torch.arange(h, dtype=torch.float64)
    xs = torch.arange(w, dtype=torch.float64)
    cx = (m.sum(1) * xs).sum(1) / mass.clamp(min=1)
    cy = (m.sum(2) * ys).sum(1) / mass.clamp(min=1)
    empty = mass == 0
    cx = torch.where(empty, torch.full_like(cx, (w - 1) / 2), cx)
    cy = torch.where(empty, torch.full_like(cy, (h - 1) / 2), cy)
    return torch.stack([cx, cy], dim=1)


def centroid_distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """float N: pixels between the centroids of two stacks of masks."""
    return (centroids(a) - centroids(b)).norm(dim=1)


def per_image_l1(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """float N: mean absolute difference per pixel of each image pair."""
    return (a.double() - b.double()).abs().flatten(1).mean(1)


# ---- reading domains and content with the dataset's evaluator ------------------------------------
def _domain_head(spec: Any, by: str, heads: set[str]) -> str | None:
    """The evaluator prediction that reads split `by`: the head named after the factor, or "class"
    when the split is the class factor (MNIST's digits). None when the evaluator cannot read it."""
    if by in heads:
        return by
    if by == spec.class_factor and "class" in heads:
        return "class"
    return None


def _true_values(dataset: ImageDataset, head: str, index: torch.Tensor) -> np.ndarray | None:
    """The true index of what evaluator head `head` reads, for rows `index` (None when unknown)."""
    if head == "class":
        return None if dataset.labels is None else dataset.labels[index].numpy()
    if dataset.factor_classes is not None and head in dataset.factor_names:
        return dataset.factor_classes[index, dataset.factor_names.index(head)].numpy()
    return None


def _split_of(model: Any, by: str | None) -> str:
    if by is not None:
        return by
    config = getattr(model, "config", None)
    split = config.domain_split() if config is not None and hasattr(config, "domain_split") else None
    if not split:
        raise GMError("This translator does not say which domain split it was trained on; pass by=.")
    return str(split)


def _eval_mode(model: Any) -> contextlib.AbstractContextManager[Any]:
    """The model's networks in eval mode for the block (a live training job's model included), then
    as they were: normalisation must not use the statistics of the batch being measured."""
    evaluating = getattr(model, "evaluating", None)
    return evaluating() if callable(evaluating) else contextlib.nullcontext()


def _device_of(model: Any) -> torch.device | None:
    try:
        return torch.device(model.device)
    except (AttributeError, StopIteration, TypeError, RuntimeError):
        return None


@torch.no_grad()
def _translate(model: Any, images: torch.Tensor, to: str, source: str | None) -> torch.Tensor:
    dev = _device_of(model)
    x = images if dev is None else images.to(dev)
    return model.translate(x, to=to, source=source).detach().float().cpu().clamp(0, 1)


@torch.no_grad()
def _reconstruct(model: Any, images: torch.Tensor, translated: torch.Tensor, source: str, to: str) -> torch.Tensor:
    """F(G(x)). The default cycle is the translation sent back, so the translation already made is
    reused; a model that overrides reconstruct (its own cycle) is asked for it."""
    if type(model).reconstruct is Translates.reconstruct:
        return _translate(model, translated, source, to)
    dev = _device_of(model)
    x = images if dev is None else images.to(dev)
    return model.reconstruct(x, source=source, to=to).detach().float().cpu().clamp(0, 1)


def choose_sources(dataset: ImageDataset, by: str, domain: str, n: int, seed: int) -> torch.Tensor:
    """int64 indices of min(n, domain size) images of `domain`, a seeded choice that depends on
    (seed, domain) only: every target of one source is measured on the same images."""
    from gm.data.registry import get_dataset_spec

    if seed < 0:
        raise GMError(f"The seed must be 0 or more; got {seed}.")
    spec = get_dataset_spec(dataset.name)
    names = spec.domains(by)
    if domain not in names:
        raise GMError(f"Unknown domain '{domain}' of the {dataset.name} split '{by}'; its domains: "
                      f"{', '.join(names)}.")
    members = torch.nonzero(spec.domain_index(dataset, by) == names.index(domain)).reshape(-1).numpy()
    if len(members) == 0:
        raise GMError(f"This {dataset.name} dataset has no images of domain '{domain}'.")
    rng = np.random.default_rng([int(seed), names.index(domain)])
    return torch.from_numpy(np.sort(rng.choice(members, size=min(int(n), len(members)), replace=False)))


# ---- the evaluation -------------------------------------------------------------------------------
def evaluate_translation(model: Any, dataset: ImageDataset, *, n: int = DEFAULT_N, seed: int = 0,
                         device: torch.device | str | None = None, by: str | None = None,
                         classifier: Any = None, batch_size: int = 100, progress: ProgressFn | None = None,
                         cancel: threading.Event | None = None, group: Group | None = None) -> dict[str, Any]:
    """Every translation metric of `model` on `dataset` (the dataset it was trained on), per pair and
    overall (the module docstring defines each key).

    `n` images per pair, chosen with `seed`; `device` runs the evaluator (default: the model's);
    `by` is the domain split (default: the model's config.domain_split()); `classifier` a loaded
    evaluator to use instead of the dataset's shipped one. Cancelling (`cancel.set()`) raises
    :class:`~gm.metrics.features.Cancelled` at the next batch. With a process `group` (every rank
    calls it alike), each rank translates its share of every pair's batches and the per-image scores
    are gathered in order (gm.metrics.sharding): every rank returns the one-process figures.
    """
    from gm.data.registry import get_dataset_spec
    from gm.metrics.classifiers import CLASSIFIER_FOR, load_classifier

    if not isinstance(model, Translates):
        raise GMError(f"{type(model).__name__} does not translate between domains; translation metrics need "
                      f"a translation model.")
    if n < 1:
        raise GMError(f"n must be at least 1 image per pair; got {n}.")
    asked = by
    by = _split_of(model, by)
    spec = get_dataset_spec(dataset.name)
    data = getattr(model, "data", None)
    if data is not None and getattr(data, "dataset", dataset.name) not in ("", dataset.name):
        raise GMError(f"The model was trained on {data.dataset}, not {dataset.name}; evaluate it on its own dataset.")

    def split_of(domain: str) -> str:
        """A domain's split: `by` when given, else the model's (a StarGAN with the mask vector
        combines two splits)."""
        if asked is None and hasattr(model, "domain_split_of"):
            return str(model.domain_split_of(domain))
        return by

    for d in model.domains:
        names = spec.domains(split_of(d))
        if d not in names:
            raise GMError(f"The model's domain '{d}' is not one of the {dataset.name} split '{split_of(d)}' "
                          f"({', '.join(names)}).")
    names = spec.domains(by)
    pairs = tuple(model.pairs())
    if not pairs:
        raise GMError("The model translates no domain pair.")

    dev = torch.device(device) if device is not None else (_device_of(model) or torch.device("cpu"))
    if classifier is None and dataset.name in CLASSIFIER_FOR:
        classifier = load_classifier(dataset.name, dev)
    with _eval_mode(model):
        return _measure(model, dataset, split_of, by, spec, pairs, n=n, seed=seed, classifier=classifier,
                        batch_size=batch_size, progress=progress, cancel=cancel, group=group)


def _measure(model: Any, dataset: ImageDataset, split_of: Callable[[str], str], by: str, spec: Any,
             pairs: tuple[tuple[str, str], ...], *, n: int, seed: int, classifier: Any, batch_size: int,
             progress: ProgressFn | None, cancel: threading.Event | None,
             group: Group | None = None) -> dict[str, Any]:
    """evaluate_translation's work, with the model in eval mode (`split_of`: each domain's split,
    `by` the model's first)."""
    from gm.data.domains import counterparts
    from gm.metrics.classifiers import predict
    from gm.metrics.sharding import gather_arrays, local_count, shard

    chosen = {s: choose_sources(dataset, split_of(s), s, n, seed) for s in dict.fromkeys(s for s, _ in pairs)}
    ground_truth, note = True, None
    try:   # one image tells whether the dataset can draw true counterparts at all
        counterparts(dataset, chosen[pairs[0][0]][:1], split_of(pairs[0][0]), pairs[0][1])
    except GMError as exc:
        ground_truth, note = False, str(exc)
    tracker = Tracker(sum(local_count(len(chosen[s]), batch_size, group) for s, _ in pairs), progress, cancel)
    per_pair: dict[str, dict[str, Any]] = {}
    for source, target in pairs:
        index = chosen[source]
        parts: dict[str, list[np.ndarray]] = {}
        lo, hi = shard(len(index), batch_size, group)   # whole batches: each the one one process translates
        for start in range(lo, hi, batch_size):
            tracker.check()
            rows = index[start:min(start + batch_size, hi)]
            x = dataset.take(rows).float() / dataset.max_value
            y = _translate(model, x, target, source)
            if tuple(y.shape) != tuple(x.shape):
                raise GMError(f"The model turned {tuple(x.shape)} images into {tuple(y.shape)} when "
                              f"translating {source} to {target}; a translation keeps the image shape.")
            r = _reconstruct(model, x, y, source, target)
            split = split_of(source)
            scores = _batch_scores(dataset, spec, split, spec.domains(split), rows, x, y, r, source, target,
                                   classifier, predict, counterparts if ground_truth else None)
            for k, v in scores.items():
                parts.setdefault(k, []).append(v)
            tracker.advance(len(rows))
        scores = gather_arrays(parts, group)
        figures: dict[str, Any] = {"n": len(index)}
        for k in KEYS:
            if k in scores:
                figures[k] = float(scores[k].mean())
        per_pair[f"{source}->{target}"] = figures

    result: dict[str, Any] = {"split": by, "domains": list(model.domains), "n": max(len(i) for i in chosen.values()),
                              "seed": seed, "classifier": getattr(classifier, "name", None),
                              "parameters": int(model.translator_parameters())}
    for k in KEYS:
        values = [p[k] for p in per_pair.values() if k in p]
        if values and len(values) == len(per_pair):
            result[k] = float(np.mean(values))
    result["pairs"] = per_pair
    if note:
        result["note"] = note
    return result


def _batch_scores(dataset: ImageDataset, spec: Any, by: str, names: tuple[str, ...], rows: torch.Tensor,
                  x: torch.Tensor, y: torch.Tensor, r: torch.Tensor, source: str, target: str,
                  classifier: Any, predict: Any, counterparts: Any) -> dict[str, np.ndarray]:
    """Per-image scores of one batch (each metric's mean over images is the pair's figure)."""
    out = {"cycle_l1": per_image_l1(r, x).numpy()}
    if classifier is not None:
        preds = predict(classifier, y)
        head = _domain_head(spec, by, set(preds))
        if head is not None:
            size = spec.factor_sizes[spec.factors.index(by)] if by in spec.factors else len(spec.classes)
            domain = preds[head].astype(np.int64) * len(names) // size
            out["target_accuracy"] = (domain == names.index(target)).astype(np.float64)
        kept = [h for h in preds if h != head]
        wrong = np.zeros(len(rows), dtype=bool)
        known = False
        for h in kept:
            truth = _true_values(dataset, h, rows)
            if truth is None:
                continue
            known = True
            wrong |= np.abs(preds[h].astype(np.int64) - truth.astype(np.int64)) > CONTENT_TOLERANCE.get(h, 0)
        if known:
            out["content_error"] = wrong.astype(np.float64)
    if counterparts is not None:
        truth_images = counterparts(dataset, rows, by, target).float() / dataset.max_value
        made, true = y > 0.5, truth_images > 0.5
        out["gt_iou"] = iou(made, true).numpy()
        out["gt_l1"] = per_image_l1(y, truth_images).numpy()
        out["position_error_px"] = centroid_distance(made, true).numpy()
    return out


# ---- the translation grid -------------------------------------------------------------------------
def _grid_source(model: Any, to_domains: tuple[str, ...]) -> str:
    """The one source domain every requested target can be reached from (a CycleGAN's other
    domain), or a one-sentence GMError asking for it (a StarGAN translates from any domain)."""
    pairs = tuple(model.pairs())
    candidates = [s for s in model.domains if all((s, t) in pairs for t in to_domains)]
    if len(candidates) != 1:
        raise GMError(f"Say which domain the source images are ({', '.join(model.domains)}): this model "
                      f"translates into {', '.join(to_domains)} from more than one domain.")
    return candidates[0]


@torch.no_grad()
def translation_grid(model: Any, sources: torch.Tensor, to_domains: str | list[str] | tuple[str, ...], *,
                     source: str | None = None) -> tuple[torch.Tensor, int]:
    """(images, per_row) of a translation grid: the sources in the first row, then for each target
    domain a row of translations and a row of their cycle reconstructions (StarGAN-style: one row
    pair per target), so what changed and what came back sit under each source image.

    `sources` are N x C x H x W in [0, 1] of domain `source` (default: the one domain every target
    is translated from, when there is only one). Each (source, target) must be one of model.pairs().
    """
    if not isinstance(model, Translates):
        raise GMError(f"{type(model).__name__} does not translate between domains.")
    targets = (to_domains,) if isinstance(to_domains, str) else tuple(to_domains)
    if not targets:
        raise GMError("Name at least one target domain.")
    for t in targets:
        if t not in model.domains:
            raise GMError(f"Unknown domain '{t}'; this model translates between {', '.join(model.domains)}.")
    source = source or _grid_source(model, targets)
    if source not in model.domains:
        raise GMError(f"Unknown domain '{source}'; this model translates between {', '.join(model.domains)}.")
    pairs = tuple(model.pairs())
    for t in targets:
        if (source, t) not in pairs:
            have = ", ".join(f"{a}->{b}" for a, b in pairs)
            raise GMError(f"This model does not translate {source} to {t}; its pairs: {have}.")
    x = sources.detach().float().cpu()
    if x.dim() == 3:
        x = x.unsqueeze(1)
    rows = [x]
    with _eval_mode(model):
        for t in targets:
            y = _translate(model, x, t, source)
            rows += [y, _reconstruct(model, x, y, source, t)]
    return torch.cat(rows), int(x.shape[0])


__all__ = ["CONTENT_TOLERANCE", "DEFAULT_N", "GROUND_TRUTH_KEYS", "KEYS", "centroid_distance", "centroids",
           "choose_sources", "evaluate_translation", "iou", "per_image_l1", "translation_grid"]

"""What users look at in a translation model (CycleGAN, StarGAN, any model that declares
``Translates``): one image translated and cycled back next to its true counterpart, batches laid out
like ``gm translate``, the training losses grouped by kind, and the translation metrics of
``gm eval`` read back from a run folder.

Every function dispatches on the ``translates`` capability and on metric names, never on a model's
name. No Streamlit here: the app's pages and the walkthrough call these.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from gm.errors import GMError
from gm.images import make_grid
from gm.models.base import Translates
from gm.runs.folder import RunFolder

# ---- the model --------------------------------------------------------------------------------


def translator_of(model: Any) -> Translates:
    """`model` when it translates, else a one-sentence GMError."""
    if not isinstance(model, Translates):
        raise GMError(f"{type(model).__name__} does not translate between domains; the Translate view is "
                      f"not available for this model.")
    return model


def targets_by_source(model: Any) -> dict[str, list[str]]:
    """Source domain -> the domains the model translates it into (from ``model.pairs()``), in the
    model's domain order."""
    out: dict[str, list[str]] = {}
    for source, target in translator_of(model).pairs():
        out.setdefault(source, []).append(target)
    return out


def domain_name(domain: str, lang: str) -> str:
    """A domain ("square") named in `lang` by the catalogs' [domain] table, else as the data names it."""
    from gm import i18n
    key = f"domain.{domain}"
    text = i18n.t(key, lang)
    return str(domain) if text == key else text


def as_unit(images: torch.Tensor, max_value: int) -> torch.Tensor:
    """uint8 images (0..max_value) -> float N x C x H x W in [0, 1] (floats pass through)."""
    if images.dim() == 3:
        images = images.unsqueeze(1)
    if images.dtype == torch.uint8:
        return images.float() / max(1, int(max_value))
    return images.float().clamp(0, 1)


@dataclass
class Translation:
    """One source batch sent to one target domain: the translations G(x) and the cycle F(G(x))."""

    target: str
    translated: torch.Tensor
    reconstructed: torch.Tensor
    truth: torch.Tensor | None = None    # the true counterparts, where the dataset has them


@torch.no_grad()
def translate(model: Any, images: torch.Tensor, source: str, targets: Sequence[str]) -> list[Translation]:
    """`images` (float in [0, 1]) of domain `source` translated into each of `targets` and cycled
    back, in eval mode without gradients. A target the model does not translate `source` into gets
    a one-sentence GMError."""
    m = translator_of(model)
    allowed = targets_by_source(m).get(source, [])
    wrong = [t for t in targets if t not in allowed]
    if wrong:
        raise GMError(f"This model does not translate '{source}' into {', '.join(wrong)}; it translates "
                      f"'{source}' into {', '.join(allowed) or 'nothing'}.")
    evaluating = getattr(m, "evaluating", None)
    device = getattr(m, "device", torch.device("cpu"))
    x = images.to(device).float()
    out = []
    with evaluating() if evaluating is not None else contextlib.nullcontext():
        for target in targets:
            there = m.translate(x, to=target, source=source)
            back = m.reconstruct(x, source=source, to=target)
            out.append(Translation(target, there.detach().float().clamp(0, 1).cpu(),
                                   back.detach().float().clamp(0, 1).cpu()))
    return out


def true_counterparts(dataset: Any, index: torch.Tensor, split: str | None, target: str) -> torch.Tensor | None:
    """uint8 counterparts of images `index` of `dataset` (one domain of `split`) drawn in domain
    `target`: the ground truth (gm.data.domains.counterparts). None where the dataset has none."""
    if not split:
        return None
    try:
        from gm.data.domains import counterparts
    except ImportError:   # a gm without ground truth counterparts
        return None
    try:
        return counterparts(dataset, index, split, target)
    except GMError:
        return None


def attach_truth(translations: list[Translation], dataset: Any, index: torch.Tensor, split: str | None,
                 max_value: int) -> bool:
    """Fill each translation's `truth` from the dataset's ground truth; whether it has one."""
    found = False
    for tr in translations:
        truth = true_counterparts(dataset, index, split, tr.target)
        if truth is not None:
            tr.truth = as_unit(truth, max_value)
            found = True
    return found


def batch_grid(sources: torch.Tensor, translations: list[Translation], *, cycle: bool = True,
               truth: bool = True) -> np.ndarray:
    """The layout of ``gm translate``: sources in the first row, then for each target its
    translations, its cycle reconstructions and (when known) its true counterparts."""
    rows = [sources.float().cpu()]
    for tr in translations:
        rows.append(tr.translated)
        if cycle:
            rows.append(tr.reconstructed)
        if truth and tr.truth is not None:
            rows.append(tr.truth.float().cpu())
    return make_grid(torch.cat(rows), nrow=int(sources.shape[0]))


def difference(a: torch.Tensor, b: torch.Tensor) -> float:
    """Mean absolute difference of two image batches (what gt_l1 and cycle_l1 average)."""
    return float((a.float() - b.float()).abs().mean())


def iou(a: torch.Tensor, b: torch.Tensor, threshold: float = 0.5) -> float:
    """Intersection over union of the two images' pixels above `threshold` (1 when both are empty)."""
    x, y = a.float() > threshold, b.float() > threshold
    union = int((x | y).sum())
    return 1.0 if union == 0 else int((x & y).sum()) / union


# ---- training losses, grouped by kind (Monitor) -------------------------------------------------
# Logged metric -> (loss kind, chart). The kinds are the parts of the papers' objectives; a chart
# groups keys of one scale. A metric this table does not name gets a chart of its own under "other",
# so a new translator's curves show without an edit here. Titles: [translate.kind] / [translate.chart].
LOSS_KINDS: dict[str, tuple[str, str]] = {
    "d_x": ("adversarial", "discriminators"),
    "d_y": ("adversarial", "discriminators"),
    "d_adv": ("adversarial", "discriminators"),
    "g_adv": ("adversarial", "generator"),
    "d_loss": ("adversarial", "totals"),
    "g_loss": ("adversarial", "totals"),
    "cycle": ("cycle", "cycle"),
    "rec": ("cycle", "cycle"),
    "idt": ("identity", "identity"),
    "d_cls": ("classification", "class_losses"),
    "g_cls": ("classification", "class_losses"),
    "cls_acc": ("classification", "class_accuracy"),
    "gp": ("gp", "gp"),
}
KIND_ORDER = ("adversarial", "cycle", "identity", "classification", "gp", "other")
NOT_CHARTED = frozenset({"step", "epoch", "time"})


@dataclass
class LossGroup:
    kind: str
    charts: list[tuple[str, tuple[str, ...]]] = field(default_factory=list)   # (chart id, keys)


def _is_scalar(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def loss_groups(records: Sequence[dict[str, Any]]) -> list[LossGroup]:
    """The logged scalars of a translation run in charts grouped by loss kind (:data:`LOSS_KINDS`):
    kinds in :data:`KIND_ORDER`, charts and keys in the table's order, then the keys it does not name
    in logging order; kinds with nothing logged are left out."""
    recent = records[-50:]
    logged = [k for k in dict.fromkeys(k for r in recent for k in r)
              if k not in NOT_CHARTED and any(_is_scalar(r.get(k)) for r in recent)]
    table = list(LOSS_KINDS)
    logged.sort(key=lambda k: table.index(k) if k in LOSS_KINDS else len(table))   # stable: others keep their order
    charts: dict[str, dict[str, list[str]]] = {kind: {} for kind in KIND_ORDER}
    for key in logged:
        kind, chart = LOSS_KINDS.get(key, ("other", key))
        charts[kind].setdefault(chart, []).append(key)
    return [LossGroup(kind, [(chart, tuple(keys)) for chart, keys in charts[kind].items()])
            for kind in KIND_ORDER if charts[kind]]


# ---- translation metrics (Evaluate, the walkthrough) ------------------------------------------------
# What `gm eval` measures on a translation run: share of translations recognised as the requested
# domain, share whose kept factors changed, IoU and L1 against the true counterpart, centroid
# distance in pixels, cycle L1, and the parameters needed to translate.
METRIC_KEYS = ("target_accuracy", "content_error", "gt_iou", "gt_l1", "position_error_px", "cycle_l1",
               "parameters")
# How each is shown: a share as a percentage, a count with thousands separators, else decimals.
FORMATS = {"target_accuracy": ".1%", "content_error": ".1%", "gt_iou": ".3f", "gt_l1": ".4f",
           "position_error_px": ".2f", "cycle_l1": ".4f", "parameters": ",.0f"}
# Which way is better, for the tables' help texts.
HIGHER_IS_BETTER = frozenset({"target_accuracy", "gt_iou"})


@dataclass
class Scores:
    """A run's translation metrics: over every pair (mean over pairs) and per "source->target"."""

    overall: dict[str, float] = field(default_factory=dict)
    pairs: dict[str, dict[str, float]] = field(default_factory=dict)
    step: int | None = None
    n: int | None = None
    origin: str = ""     # "eval.jsonl", "metrics.json" or "result"

    def __bool__(self) -> bool:
        return bool(self.overall or self.pairs)

    def value(self, key: str) -> float | None:
        """The overall figure, else the mean over pairs that have it."""
        if key in self.overall:
            return self.overall[key]
        values = [p[key] for p in self.pairs.values() if key in p]
        return float(np.mean(values)) if values else None


def _numbers(table: Any) -> dict[str, float]:
    if not isinstance(table, dict):
        return {}
    return {k: float(table[k]) for k in METRIC_KEYS if _is_scalar(table.get(k))}


def _pairs(table: Any) -> dict[str, dict[str, float]]:
    if not isinstance(table, dict):
        return {}
    return {str(pair): _numbers(values) for pair, values in table.items() if _numbers(values)}


def pair_name(source: str, target: str) -> str:
    return f"{source}->{target}"


def scores_from_result(result: dict[str, Any] | None) -> Scores:
    """The translation metrics of an evaluate() result (empty when it has none)."""
    if not isinstance(result, dict):
        return Scores()
    n = result.get("n")
    return Scores(_numbers(result), _pairs(result.get("pairs")), result.get("step"),
                  int(n) if _is_scalar(n) else None, "result")


def _line_pair(line: dict[str, Any]) -> str | None:
    """The domain pair an eval.jsonl line is about ("square->ellipse"), or None for an overall figure."""
    for key in ("pair", "features"):
        value = line.get(key)
        if isinstance(value, str) and "->" in value:
            return value
    return None


def scores_of(run: RunFolder) -> Scores:
    """The newest translation metrics of a run: eval.jsonl lines of the newest evaluated step (newest
    line wins), else the summary a shipped pretrained run carries in metrics.json."""
    out = Scores()
    lines = [line for line in run.read_eval() if line.get("metric") in METRIC_KEYS and _is_scalar(line.get("value"))]
    if lines:
        newest = lines[-1]
        batch = [line for line in lines if line.get("time") == newest.get("time")] if newest.get("time") else lines
        for line in batch:
            pair = _line_pair(line)
            if pair is None:
                out.overall[line["metric"]] = float(line["value"])
            else:
                out.pairs.setdefault(pair, {})[line["metric"]] = float(line["value"])
        out.step, out.n, out.origin = newest.get("step"), newest.get("n"), "eval.jsonl"
        if out:
            return out
    summary_path = run.path / "metrics.json"
    if summary_path.is_file():
        try:
            summary = json.loads(summary_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            summary = {}
        if isinstance(summary, dict):
            found = Scores(_numbers(summary), _pairs(summary.get("pairs")), summary.get("steps"),
                           summary.get("eval_n"), "metrics.json")
            if found:
                return found
    return Scores()


def formatted(key: str, value: float | None, number: Callable[[float, str], str]) -> str:
    """A metric as the tables show it ("—" when not measured); `number(value, spec)` localises digits."""
    if value is None:
        return "—"
    return number(value, FORMATS.get(key, ".3f"))


def score_rows(scores: Scores, label: Callable[[str], str], number: Callable[[float, str], str], *,
               every_pair: str, keys: Sequence[str] = METRIC_KEYS) -> list[dict[str, str]]:
    """Table rows: every pair together first (the overall figures), then one row per pair.
    `label(key)` names the columns (and the first column with key "pair")."""
    rows = []
    first = label("pair")
    entries = [(every_pair, {k: scores.value(k) for k in keys})]
    entries += [(pair.replace("->", " → "), values) for pair, values in sorted(scores.pairs.items())]
    for name, values in entries:
        row = {first: name}
        row.update({label(k): formatted(k, values.get(k), number) for k in keys})
        rows.append(row)
    return rows


def parameters_of(model: Any) -> int | None:
    """The parameters a user needs to translate (discriminators excluded), or None."""
    try:
        return int(translator_of(model).translator_parameters())
    except (GMError, AttributeError, TypeError):
        return None


def short_count(value: float, lang: str = "en") -> str:
    """52,600,000 -> "52.6M", 1,234,000 -> "1.23M", 48,000 -> "48K" (the papers' parameter column),
    in the language's digits."""
    from gm.i18n import number
    for limit, suffix in ((1e6, "M"), (1e3, "K")):
        if value >= limit:
            return number(value / limit, lang, ".3g") + suffix
    return number(value, lang, ".0f")

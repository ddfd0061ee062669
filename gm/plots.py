"""Plotly figures for training curves, TensorBoard-style: EMA smoothing with the raw curve faint,
outliers ignored for the y range, log-y, step or wall-time axis, downsampled long histories.

Pure functions of metric records (the dicts of metrics.jsonl); no Streamlit here.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import plotly.graph_objects as go

from gm.runs.reader import scalar_keys

# (chart id, metric keys, reference-line key), in display order. A chart shows when one of its keys
# is logged, whatever the model; a logged scalar no chart names gets a chart of its own (titled by
# its key), so a new kind of model has curves without an edit here. Titles live in the language
# catalogs under [chart] (gm/i18n/*.toml).
CHARTS: list[tuple[str, tuple[str, ...], str | None]] = [
    ("kl", ("kl",), "kl_target"),
    ("beta", ("beta",), None),
    ("controller", ("p_term", "i_term"), None),
    ("recon", ("recon",), None),
    ("loss", ("loss",), None),
    ("losses", ("d_loss", "g_loss"), None),
    ("d_outputs", ("d_real", "d_fake"), None),
    ("d_acc", ("d_acc",), None),
    ("w_dist", ("w_dist",), None),
    ("gp", ("gp",), None),
    ("rotation", ("d_rot", "g_rot"), None),
    ("rot_acc", ("rot_acc",), None),
    ("class", ("d_cls", "g_cls"), None),
    ("cls_acc", ("cls_acc", "fake_cls_acc"), None),
    ("noise_sigma", ("noise_sigma",), None),
]
NOT_CHARTED = frozenset({"step", "epoch", "time"} | {ref for _, _, ref in CHARTS if ref})

AXIS_TITLES = {"step": "step", "time": "wall time (s)", "epoch": "epoch"}
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf")


def charts_for(records: Sequence[dict[str, Any]], lang: str = "en"
               ) -> list[tuple[str, tuple[str, ...], str | None]]:
    """The charts that apply to a run, (title, keys, reference): those with one of their keys logged,
    then one chart per logged scalar that no chart names."""
    from gm.i18n import t
    recent = records[-50:]
    present = set().union(*(r.keys() for r in recent)) if recent else set()
    out = [(t(f"chart.{chart}", lang), tuple(k for k in keys if k in present), ref)
           for chart, keys, ref in CHARTS if any(k in present for k in keys)]
    named = {k for _, keys, _ in CHARTS for k in keys} | NOT_CHARTED
    scalars = [k for k in dict.fromkeys(k for r in recent for k in r)
               if k not in named and any(isinstance(r.get(k), (int, float)) and not isinstance(r.get(k), bool)
                                         for r in recent)]
    return out + [(k, (k,), None) for k in scalars]


def ema(values: Sequence[float], weight: float) -> np.ndarray:
    """TensorBoard's debiased exponential moving average (weight 0 = raw, 0.99 = very smooth).

    Vectorised (a first-order IIR filter) so a 10,000-step history smooths in well under a
    millisecond; non-finite points are skipped and come back as NaN, as in TensorBoard.
    """
    y = np.asarray(values, dtype=float)
    if weight <= 0:
        return y
    out = np.full(y.shape, np.nan)
    finite = np.isfinite(y)
    if not finite.any():
        return out
    from scipy.signal import lfilter
    x = y[finite]
    smoothed = lfilter([1 - weight], [1, -weight], x)
    smoothed /= 1 - weight ** np.arange(1, len(x) + 1)
    out[finite] = smoothed
    return out


def downsample(x: np.ndarray, ys: list[np.ndarray], max_points: int = 2000) -> tuple[np.ndarray, list[np.ndarray]]:
    """Keep at most ~max_points, always keeping the first and last points (even stride)."""
    n = len(x)
    if n <= max_points:
        return x, ys
    idx = np.unique(np.concatenate([np.linspace(0, n - 1, max_points).round().astype(int), [n - 1]]))
    return x[idx], [y[idx] for y in ys]


def robust_range(values: Iterable[np.ndarray], log_y: bool = False) -> list[float] | None:
    """A y range from the 1st-99th percentiles, padded, so a few spikes don't flatten the curve."""
    data = np.concatenate([np.asarray(v, dtype=float) for v in values]) if values else np.array([])
    data = data[np.isfinite(data)]
    if log_y:
        data = data[data > 0]
    if data.size < 5:
        return None
    if log_y:
        data = np.log10(data)
    lo, hi = np.percentile(data, [1, 99])
    if hi - lo <= 1e-9 * max(1.0, abs(hi)):
        # A flat series (β = 1 for a plain VAE): show a flat line, not float rounding noise.
        pad = max(abs(hi) * 0.1, 1e-3)
        return [float(lo - pad), float(hi + pad)]
    pad = 0.08 * (hi - lo)
    return [float(lo - pad), float(hi + pad)]


def series(records: Sequence[dict[str, Any]], key: str, x_axis: str = "step") -> tuple[np.ndarray, np.ndarray]:
    rows = [r for r in records if isinstance(r.get(key), (int, float))]
    x = np.array([r.get(x_axis, r["step"]) for r in rows], dtype=float)
    y = np.array([r[key] for r in rows], dtype=float)
    return x, y


def line_mode(xs: Sequence[float]) -> str:
    """"lines", or "markers" for a single point: a line through one point draws nothing, and a
    run's first logged row would otherwise be an empty chart."""
    return "lines" if len(xs) > 1 else "markers"


def line_figure(records: Sequence[dict[str, Any]], keys: Sequence[str], *, title: str = "",
                smoothing: float = 0.6, log_y: bool = False, x_axis: str = "step",
                reference: str | None = None, max_points: int = 2000, height: int = 300,
                names: Sequence[str] | None = None, reference_name: str = "set point",
                x_title: str | None = None) -> go.Figure:
    """One chart: each key smoothed (solid) over its raw curve (faint)."""
    fig = go.Figure()
    shown = []
    for i, key in enumerate(keys):
        x, y = series(records, key, x_axis)
        if len(x) == 0:
            continue
        smooth = ema(y, smoothing) if smoothing > 0 else y
        xd, (yd, sd) = downsample(x, [y, smooth], max_points)
        color = PALETTE[i % len(PALETTE)]
        label = names[i] if names else key
        if smoothing > 0:
            fig.add_trace(go.Scatter(x=xd, y=yd, mode="lines", name=f"{label} (raw)", opacity=0.25,
                                     line={"color": color, "width": 1}, showlegend=False, hoverinfo="skip"))
        fig.add_trace(go.Scatter(x=xd, y=sd, mode=line_mode(xd), name=label, line={"color": color, "width": 2},
                                 marker={"color": color, "size": 8}))
        shown.append(yd)
    if reference:
        x, y = series(records, reference, x_axis)
        if len(x):
            xd, (yd,) = downsample(x, [y], max_points)
            fig.add_trace(go.Scatter(x=xd, y=yd, mode="lines", name=reference_name,
                                     line={"color": "#888", "dash": "dash", "width": 1.5}))
            shown.append(yd)
    fig.update_layout(title={"text": title, "font": {"size": 14}}, height=height,
                      margin={"l": 10, "r": 10, "t": 36, "b": 10},
                      legend={"orientation": "h", "y": -0.2}, hovermode="x unified")
    fig.update_xaxes(title_text=x_title or AXIS_TITLES.get(x_axis, x_axis))
    if log_y:
        fig.update_yaxes(type="log")
    yr = robust_range(shown, log_y)
    if yr is not None:
        fig.update_yaxes(range=yr)
    return fig


def overlay_figure(runs: Sequence[tuple[str, Sequence[dict[str, Any]]]], key: str, *,
                   references: Sequence[tuple[str, float]] = (), **kwargs: Any) -> go.Figure:
    """The same metric from several runs on one chart (e.g. KL at set points 8 and 14), with optional
    horizontal reference lines (name, value) such as the set points themselves."""
    fig = go.Figure()
    shown = []
    smoothing = kwargs.get("smoothing", 0.6)
    x_axis = kwargs.get("x_axis", "step")
    for i, (name, records) in enumerate(runs):
        x, y = series(records, key, x_axis)
        if not len(x):
            continue
        s = ema(y, smoothing) if smoothing > 0 else y
        xd, (yd, sd) = downsample(x, [y, s], kwargs.get("max_points", 2000))
        color = PALETTE[i % len(PALETTE)]
        if smoothing > 0:
            fig.add_trace(go.Scatter(x=xd, y=yd, mode="lines", opacity=0.25, showlegend=False,
                                     line={"color": color, "width": 1}, hoverinfo="skip"))
        fig.add_trace(go.Scatter(x=xd, y=sd, mode=line_mode(xd), name=name, line={"color": color, "width": 2},
                                 marker={"color": color, "size": 8}))
        shown.append(yd)
    xs = [x for tr in fig.data for x in (tr.x[0], tr.x[-1])] if fig.data else [0, 1]
    for i, (name, value) in enumerate(references):
        fig.add_trace(go.Scatter(x=[min(xs), max(xs)], y=[value, value], mode="lines", name=name,
                                 line={"color": PALETTE[i % len(PALETTE)], "dash": "dash", "width": 1.5}))
        shown.append(np.array([value]))
    fig.update_layout(title={"text": kwargs.get("title", key), "font": {"size": 14}},
                      height=kwargs.get("height", 340), margin={"l": 10, "r": 10, "t": 36, "b": 10},
                      legend={"orientation": "h", "y": -0.2}, hovermode="x unified")
    fig.update_xaxes(title_text=kwargs.get("x_title") or AXIS_TITLES.get(x_axis, x_axis))
    if kwargs.get("log_y"):
        fig.update_yaxes(type="log")
    yr = robust_range(shown, kwargs.get("log_y", False))
    if yr is not None:
        fig.update_yaxes(range=yr)
    return fig


def kl_dims_figure(kl_dims: Sequence[float], height: int = 260, lang: str = "en") -> go.Figure:
    """Per-dimension KL bars: dimensions with KL < 0.1 nats are marked inactive (collapsed)."""
    from gm.i18n import t
    colors = ["#1f77b4" if v >= 0.1 else "#cccccc" for v in kl_dims]
    fig = go.Figure(go.Bar(x=[f"z{i}" for i in range(len(kl_dims))], y=list(kl_dims), marker_color=colors))
    fig.update_layout(title={"text": t("chart.kl_dims", lang), "font": {"size": 14}},
                      height=height, margin={"l": 10, "r": 10, "t": 36, "b": 10})
    return fig


def bar_figure(labels: Sequence[str], values: Sequence[float], title: str, height: int = 280) -> go.Figure:
    fig = go.Figure(go.Bar(x=list(labels), y=list(values)))
    fig.update_layout(title={"text": title, "font": {"size": 14}}, height=height,
                      margin={"l": 10, "r": 10, "t": 36, "b": 10})
    return fig


def records_to_csv(records: Sequence[dict[str, Any]]) -> str:
    """metrics.jsonl as CSV (list-valued metrics such as kl_dims are left out)."""
    keys = ["step", "epoch", "time"] + [k for k in scalar_keys(records) if k not in ("step", "epoch", "time")]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=keys, extrasaction="ignore")
    writer.writeheader()
    for r in records:
        writer.writerow({k: r.get(k, "") for k in keys})
    return buf.getvalue()

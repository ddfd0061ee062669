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
    return _finish(fig, shown, title=title, height=height, log_y=log_y,
                   x_title=x_title or AXIS_TITLES.get(x_axis, x_axis))


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
    return _finish(fig, shown, title=kwargs.get("title", key), height=kwargs.get("height", 340),
                   log_y=bool(kwargs.get("log_y")),
                   x_title=kwargs.get("x_title") or AXIS_TITLES.get(x_axis, x_axis))


# ---- layout and ticks ------------------------------------------------------------------------------------
# Charts are drawn at whatever width their container has (a phone, a third of a report row), so nothing
# is placed by fractions of the plot area: the title and the legend take their own room at the top and
# bottom of the figure (automargin, yref="container"), and every axis grows the margins its tick
# labels and title need (automargin). A legend placed at y=-0.2 of the plot area landed on the x-axis
# title whenever the plot was short, and fixed 10 px margins cut wide tick labels.
def frame(fig: go.Figure, title: str, height: int, *, legend: bool = True) -> go.Figure:
    """Title, margins and legend of every gm chart; axes make room for their own labels."""
    fig.update_layout(
        # Just above the plot area ("paper"): plotly draws a wrapped, several-line title anchored to
        # the top of the container one line too high, cut off at the top.
        title={"text": title, "font": {"size": 14}, "x": 0, "xanchor": "left", "xref": "container",
               "y": 1, "yanchor": "bottom", "yref": "paper", "automargin": True,
               "pad": {"t": 8, "l": 10, "r": 10, "b": 12}},
        height=height, margin={"l": 10, "r": 18, "t": 4 if title else 16, "b": 8, "autoexpand": True},
        showlegend=None if legend else False)
    if legend:
        fig.update_layout(legend={"orientation": "h", "x": 0, "xanchor": "left", "y": 0, "yanchor": "bottom",
                                  "yref": "container"})
    fig.update_xaxes(automargin=True)
    fig.update_yaxes(automargin=True)
    return fig


def _finish(fig: go.Figure, shown: list[np.ndarray], *, title: str, height: int, log_y: bool,
            x_title: str) -> go.Figure:
    frame(fig, title, height)
    fig.update_layout(hovermode="x unified")
    xs = [np.asarray(tr.x, dtype=float) for tr in fig.data if tr.x is not None and len(tr.x)]
    fig.update_xaxes(title_text=x_title)
    number_ticks(fig.layout.xaxis, xs)
    yr = robust_range(shown, log_y)
    if log_y:
        fig.update_yaxes(type="log")
        log_ticks(fig.layout.yaxis, yr if yr is not None else _log_extent(shown))
    else:
        number_ticks(fig.layout.yaxis, yr if yr is not None else shown)
    if yr is not None:
        fig.update_yaxes(range=yr)
    return fig


PLAIN_RANGE = (1e-4, 1e7)   # tick values whose plain decimals stay short; beyond, powers of ten


def number_ticks(axis: Any, values: Any) -> None:
    """One tick-label format on a linear axis: plain decimals with thousands separators ("5,000",
    "0.25"), or, for very large or very small numbers, m×10ⁿ on every tick — never plotly's default
    mix of SI suffixes ("5k", "2μ") on one chart with plain numbers on the next."""
    data = _finite(values)
    biggest = float(np.abs(data).max()) if data.size else 0.0
    plain = biggest == 0.0 or PLAIN_RANGE[0] <= biggest < PLAIN_RANGE[1]
    axis.update(exponentformat="none" if plain else "power", showexponent="all", separatethousands=True,
                tickformat="")


def log_ticks(axis: Any, log_range: Sequence[float] | None) -> None:
    """Ticks of a log axis in one format, from its range (log10 units).

    Plotly's own choice over one to four decades labels 1-2-5 with the mantissa alone ("2", "5",
    "10", "20", "50", "100"), and mixes "1000" with "10k" and "1μ" with "0.01". Over two and a half
    decades or more the ticks here are powers of ten; over less, a 1-2-5 (or 1-9, or evenly spaced)
    sequence; every label is written the same way (plain decimals, or m×10ⁿ when the values are very
    large or small)."""
    axis.update(exponentformat="none", showexponent="all", separatethousands=True, tickformat="")
    if log_range is None:
        return
    lo, hi = float(min(log_range)), float(max(log_range))
    span = hi - lo
    if span >= 2.5:
        step = max(1, int(np.ceil(span / 6)))
        first = int(np.ceil(lo / step) * step)
        values = [10.0 ** k for k in range(first, int(np.floor(hi)) + 1, step)]
    else:
        values = []
        for mantissas in ((1, 2, 5), range(1, 10)):
            values = [m * 10.0 ** k for k in range(int(np.floor(lo)), int(np.ceil(hi)) + 1) for m in mantissas
                      if lo <= np.log10(m * 10.0 ** k) <= hi]
            if len(values) >= 3:
                break
        if len(values) < 3:   # a narrow range: evenly spaced values, as on a linear axis
            values = _nice_ticks(10.0 ** lo, 10.0 ** hi)
        if len(values) > 8:
            values = values[::int(np.ceil(len(values) / 8))]
    if len(values) < 2:
        return   # less than a tick's worth of room: plotly's own ticks, written plainly
    axis.update(tickmode="array", tickvals=values, ticktext=tick_labels(values))


def tick_labels(values: Sequence[float]) -> list[str]:
    """Labels in one format for the given tick values: "0.02", "0.1", "1,000" or "2×10⁻⁷", "10⁻⁶"."""
    if all(v == 0 or PLAIN_RANGE[0] <= abs(v) < PLAIN_RANGE[1] for v in values):
        digits = max(len(np.format_float_positional(round(abs(v), 12), trim="-").partition(".")[2])
                     for v in values)
        texts = [f"{v:,.{digits}f}" for v in values]
        return [t.rstrip("0").rstrip(".") if "." in t else t for t in texts]
    return [_power(v) for v in values]


def _nice_ticks(lo: float, hi: float, most: int = 6) -> list[float]:
    """Round values (steps of 1, 2, 2.5 or 5 times a power of ten) between lo and hi."""
    if not hi > lo:
        return []
    raw = (hi - lo) / most
    base = 10.0 ** np.floor(np.log10(raw))
    step = next(m * base for m in (1, 2, 2.5, 5, 10) if m * base >= raw)
    first = np.ceil(lo / step) * step
    return [float(round(v, 12)) for v in np.arange(first, hi + step * 1e-9, step)]


_SUPERSCRIPT = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")


def _power(value: float) -> str:
    if value == 0:
        return "0"
    exponent = int(np.floor(np.log10(abs(value)) + 1e-9))
    mantissa = value / 10.0 ** exponent
    power = "10" + str(exponent).translate(_SUPERSCRIPT)
    return power if abs(mantissa - 1) < 1e-9 else f"{mantissa:g}×{power}"


def _finite(values: Any) -> np.ndarray:
    if values is None:
        return np.array([])
    if isinstance(values, np.ndarray):
        data = values.astype(float).ravel()
    else:
        parts = [np.asarray(v, dtype=float).ravel() for v in values] if len(values) else []
        data = np.concatenate(parts) if parts else np.array([])
    return data[np.isfinite(data)]


def _log_extent(values: Sequence[np.ndarray]) -> list[float] | None:
    data = _finite(values)
    data = data[data > 0]
    return [float(np.log10(data.min())), float(np.log10(data.max()))] if data.size else None


def kl_dims_figure(kl_dims: Sequence[float], height: int = 260, lang: str = "en") -> go.Figure:
    """Per-dimension KL bars: dimensions with KL < 0.1 nats are marked inactive (collapsed)."""
    from gm.i18n import t
    colors = ["#1f77b4" if v >= 0.1 else "#cccccc" for v in kl_dims]
    fig = go.Figure(go.Bar(x=[f"z{i}" for i in range(len(kl_dims))], y=list(kl_dims), marker_color=colors))
    frame(fig, t("chart.kl_dims", lang), height, legend=False)
    number_ticks(fig.layout.yaxis, list(kl_dims))
    return fig


def bar_figure(labels: Sequence[str], values: Sequence[float], title: str, height: int = 280) -> go.Figure:
    fig = go.Figure(go.Bar(x=list(labels), y=list(values)))
    frame(fig, title, height, legend=False)
    number_ticks(fig.layout.yaxis, list(values))
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

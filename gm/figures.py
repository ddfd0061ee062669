"""Static pictures of what the app shows: plotly figures as PNG and LaTeX equations as SVG.

The app's charts are plotly figures (gm.plots); exporting them as PNG with plotly itself needs
kaleido and a Chrome, which a CPU box or the hosted demo may not have. These functions draw the
same figure with matplotlib instead (no browser, works offline): line and bar charts, heatmaps with
text, subplot domains, titles, legends, log axes and y ranges — what gm's figures use.

Persian labels are shaped and reordered for display (arabic-reshaper, python-bidi) and drawn with the
bundled Vazirmatn font, because matplotlib does neither on its own.
"""

from __future__ import annotations

import functools
import io
import re
from typing import Any

import numpy as np

_ARABIC = re.compile(r"[\u0600-\u06FF\u0750-\u077F\uFB50-\uFDFF\uFE70-\uFEFF]")
_BIDI_CONTROLS = re.compile("[\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_DASHES = {"dash": (0, (5, 3)), "dot": (0, (1, 2)), "dashdot": (0, (5, 2, 1, 2)), "solid": "-"}


@functools.cache
def _font_family() -> list[str]:
    from matplotlib import font_manager

    from gm.i18n import FONTS
    path = FONTS / "Vazirmatn-Regular.ttf"
    if path.is_file():
        font_manager.fontManager.addfont(str(path))
        return ["DejaVu Sans", "Vazirmatn"]
    return ["DejaVu Sans"]


def display_text(text: Any) -> str:
    """Text as matplotlib must draw it: Arabic-script runs shaped and in visual order, and the
    invisible bidi controls (isolates, marks: gm.i18n puts them around Latin runs in Persian text)
    applied, then dropped, since matplotlib would draw them as missing glyphs."""
    text = "" if text is None else str(text)
    text = re.sub(r"<[^>]+>", "", text)   # plotly allows a little HTML in titles
    if _ARABIC.search(text):
        import arabic_reshaper
        from bidi import get_display  # python-bidi >= 0.5: with isolates, unlike bidi.algorithm
        text = get_display(arabic_reshaper.reshape(text))
    return _BIDI_CONTROLS.sub("", text)


def _colour(value: Any, default: str = "#1f77b4") -> str:
    return value if isinstance(value, str) and value else default


def _axis_key(name: str) -> str:
    """Trace axis reference ("x", "x2") -> layout property ("xaxis", "xaxis2")."""
    return name[0] + "axis" + name[1:]


def figure_png(fig: Any, *, width: float = 7.0, height: float | None = None, dpi: int = 130) -> bytes:
    """A plotly Figure drawn with matplotlib, as PNG bytes."""
    canvas = figure_mpl(fig, width=width, height=height, dpi=dpi)
    buf = io.BytesIO()
    canvas.savefig(buf, format="png")
    return buf.getvalue()


def _tick_formatter() -> Any:
    """Tick labels in gm's one format (gm.plots.tick_labels: "1,000", "0.25", "2×10⁻⁷"), as on the
    interactive charts, instead of matplotlib's offsets and "1e4" multipliers."""
    from matplotlib.ticker import Formatter

    from gm.plots import tick_labels

    class TickLabels(Formatter):
        def __call__(self, x, pos=None):
            return tick_labels([float(x)])[0]

        def format_ticks(self, values):
            return tick_labels([float(v) for v in values]) if len(values) else []

    return TickLabels()


def figure_mpl(fig: Any, *, width: float = 7.0, height: float | None = None, dpi: int = 130) -> Any:
    """A plotly Figure drawn as a matplotlib Figure, laid out so that no text leaves the picture."""
    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import NullFormatter

    layout = fig.layout
    if height is None:
        height = (layout.height or 320) / 320 * width * 0.55
    canvas = Figure(figsize=(width, height), dpi=dpi)
    FigureCanvasAgg(canvas)
    family = _font_family()
    axes: dict[tuple[str, str], Any] = {}
    domains: dict[tuple[str, str], tuple[Any, Any]] = {}

    def axes_for(trace) -> Any:
        xref, yref = getattr(trace, "xaxis", None) or "x", getattr(trace, "yaxis", None) or "y"
        if (xref, yref) not in axes:
            domains[(xref, yref)] = (layout[_axis_key(xref)].domain or (0, 1), layout[_axis_key(yref)].domain or (0, 1))
            axes[(xref, yref)] = canvas.add_axes((0.1, 0.1, 0.8, 0.8))
        return axes[(xref, yref)]

    categorical: set[Any] = set()
    for trace in fig.data:
        ax = axes_for(trace)
        kind = trace.type
        if kind == "scatter":
            line = trace.line or {}
            dash = _DASHES.get(getattr(line, "dash", None) or "solid", "-")
            x, y = np.asarray(trace.x, dtype=float), np.asarray(trace.y, dtype=float)
            style = {"color": _colour(line.color), "alpha": float(trace.opacity or 1.0),
                     "label": display_text(trace.name) if trace.showlegend is not False and trace.name else None}
            if len(x) == 1:   # a line through one point draws nothing
                ax.plot(x, y, marker="o", linestyle="none", **style)
            else:
                ax.plot(x, y, linewidth=float(line.width or 1.5), linestyle=dash, **style)
        elif kind == "bar":
            labels = [display_text(x) for x in trace.x]
            colours = trace.marker.color if trace.marker is not None and trace.marker.color is not None else None
            ax.bar(range(len(labels)), list(trace.y), color=list(colours) if isinstance(colours, (list, tuple))
                   else _colour(colours))
            ax.set_xticks(range(len(labels)), labels, fontfamily=family)
            categorical.add(ax)
        elif kind == "heatmap":
            z = np.asarray(trace.z, dtype=float)
            cmap = matplotlib.colormaps["turbo" if trace.colorscale else "viridis"]
            lo = trace.zmin if trace.zmin is not None else float(z.min())
            hi = trace.zmax if trace.zmax is not None else float(z.max())
            ax.imshow(z, cmap=cmap, vmin=lo, vmax=hi, aspect="auto")
            if trace.text is not None:
                for (i, j), value in np.ndenumerate(np.asarray(trace.text)):
                    r, g, bl, _ = cmap((z[i, j] - lo) / max(hi - lo, 1e-9))
                    ink = "black" if 0.299 * r + 0.587 * g + 0.114 * bl > 0.55 else "white"   # readable on any cell
                    ax.text(j, i, str(value), ha="center", va="center", fontsize=9, color=ink)
            ax.set_xticks([])
            ax.set_yticks([])
            categorical.add(ax)
    if not axes:
        domains[("x", "y")] = ((0, 1), (0, 1))
        axes[("x", "y")] = canvas.add_axes((0.1, 0.1, 0.8, 0.8))
    for (xref, yref), ax in axes.items():
        xa, ya = layout[_axis_key(xref)], layout[_axis_key(yref)]
        if ya.type == "log":
            ax.set_yscale("log")
            if ya.range is not None:
                ax.set_ylim(10.0 ** ya.range[0], 10.0 ** ya.range[1])
            ax.yaxis.set_minor_formatter(NullFormatter())
        elif ya.range is not None:
            ax.set_ylim(*ya.range)
        if ya.tickvals is not None:
            ax.set_yticks(list(ya.tickvals), [display_text(t) for t in (ya.ticktext or ya.tickvals)])
        else:
            ax.yaxis.set_major_formatter(_tick_formatter())
        if ax not in categorical:
            ax.margins(x=0)   # as plotly: the x axis spans the data, first logged step to last
            ax.xaxis.set_major_formatter(_tick_formatter())
        if xa.title and xa.title.text:
            ax.set_xlabel(display_text(xa.title.text), fontfamily=family)
        ax.grid(alpha=0.25)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8, prop={"family": family, "size": 8})
    notes = [(canvas.text(0, 0, display_text(note.text), ha="center", va="bottom", fontsize=9, fontfamily=family),
              float(note.x), float(note.y)) for note in layout.annotations or ()]   # subplot titles
    title = layout.title.text if layout.title is not None else None
    _fit(canvas, axes, domains, notes, title, family)
    return canvas


def _fit(canvas: Any, axes: dict, domains: dict, notes: list, title: str | None, family: list[str]) -> None:
    """Place the title, then grow or shrink the plotting region until every tick label, axis title,
    legend and subplot title lies inside the picture with a small pad.

    Fixed fractions (axes from 8 % to 96 % of the width) cut long tick labels ("1,500" at the left
    edge) and a long title at both ends; measuring what was drawn is the only fit that holds for
    every label, language and picture size."""
    renderer = canvas.canvas.get_renderer()
    width, height = canvas.bbox.width, canvas.bbox.height
    pad = 0.012 * max(width, height)
    top = height - pad
    if title:
        logical = re.sub(r"<br\s*/?>", " ", str(title))
        rtl = bool(_ARABIC.search(logical))
        lines = _wrap(logical, width - 2 * pad, renderer, family, 11)
        text = canvas.text(1 - pad / width if rtl else pad / width, 1 - pad / height,
                           "\n".join(display_text(line) for line in lines), ha="right" if rtl else "left",
                           va="top", fontsize=11, fontfamily=family)
        top = text.get_window_extent(renderer).y0 - pad
    region = [pad, pad, width - pad, top]   # left, bottom, right, top of the plotting region, pixels

    def place() -> None:
        x0, y0, x1, y1 = region
        for key, ax in axes.items():
            (dx0, dx1), (dy0, dy1) = domains[key]
            ax.set_position(((x0 + (x1 - x0) * dx0) / width, (y0 + (y1 - y0) * dy0) / height,
                             (x1 - x0) * (dx1 - dx0) / width, (y1 - y0) * (dy1 - dy0) / height))
        for text, nx, ny in notes:
            text.set_position(((x0 + (x1 - x0) * nx) / width, (y0 + (y1 - y0) * ny + 3) / height))

    for _ in range(4):
        place()
        boxes = [ax.get_tightbbox(renderer) for ax in axes.values()]
        boxes += [text.get_window_extent(renderer) for text, _, _ in notes]
        boxes = [b for b in boxes if b is not None]
        lo_x, lo_y = min(b.x0 for b in boxes), min(b.y0 for b in boxes)
        hi_x, hi_y = max(b.x1 for b in boxes), max(b.y1 for b in boxes)
        moved = [pad - lo_x, pad - lo_y, (width - pad) - hi_x, top - hi_y]
        if max(abs(m) for m in moved) < 0.5:
            break
        region = [r + m for r, m in zip(region, moved)]
        if region[2] - region[0] < 0.3 * width or region[3] - region[1] < 0.3 * height:
            break   # no room to spare: keep what fits best rather than a sliver of a plot
    place()


def _wrap(text: str, room: float, renderer: Any, family: list[str], size: float) -> list[str]:
    """Words of a (logical-order) title in as many lines as it needs to fit `room` pixels."""
    from matplotlib.font_manager import FontProperties
    prop = FontProperties(family=family, size=size)

    def wide(s: str) -> float:
        return renderer.get_text_width_height_descent(display_text(s), prop, ismath=False)[0]

    lines: list[str] = []
    for word in text.split():
        if lines and wide(f"{lines[-1]} {word}") <= room:
            lines[-1] = f"{lines[-1]} {word}"
        else:
            lines.append(word)
    return lines or [""]


@functools.lru_cache(maxsize=256)
def equation_svg(latex: str, fontsize: int = 15) -> str:
    """A LaTeX equation (matplotlib's mathtext subset) as a standalone SVG string, for offline reports."""
    from matplotlib.figure import Figure

    canvas = Figure(figsize=(0.01, 0.01))
    canvas.text(0, 0, f"${latex}$", fontsize=fontsize)
    buf = io.StringIO()
    canvas.savefig(buf, format="svg", bbox_inches="tight", pad_inches=0.05, transparent=True)
    svg = buf.getvalue()
    return svg[svg.index("<svg"):]   # drop the XML prolog and doctype: the SVG goes inline into HTML

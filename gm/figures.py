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
    """Text as matplotlib must draw it: Arabic-script runs shaped and in visual order."""
    text = "" if text is None else str(text)
    text = re.sub(r"<[^>]+>", "", text)   # plotly allows a little HTML in titles
    if not _ARABIC.search(text):
        return text
    import arabic_reshaper
    from bidi.algorithm import get_display
    return get_display(arabic_reshaper.reshape(text))


def _colour(value: Any, default: str = "#1f77b4") -> str:
    return value if isinstance(value, str) and value else default


def _axis_key(name: str) -> str:
    """Trace axis reference ("x", "x2") -> layout property ("xaxis", "xaxis2")."""
    return name[0] + "axis" + name[1:]


def figure_png(fig: Any, *, width: float = 7.0, height: float | None = None, dpi: int = 130) -> bytes:
    """A plotly Figure drawn with matplotlib, as PNG bytes."""
    import matplotlib
    from matplotlib.figure import Figure

    layout = fig.layout
    if height is None:
        height = (layout.height or 320) / 320 * width * 0.55
    canvas = Figure(figsize=(width, height), dpi=dpi)
    family = _font_family()
    axes: dict[tuple[str, str], Any] = {}

    def axes_for(trace) -> Any:
        xref, yref = getattr(trace, "xaxis", None) or "x", getattr(trace, "yaxis", None) or "y"
        if (xref, yref) not in axes:
            xd = layout[_axis_key(xref)].domain or (0, 1)
            yd = layout[_axis_key(yref)].domain or (0, 1)
            left, bottom = 0.08 + 0.88 * xd[0], 0.14 + 0.74 * yd[0]
            axes[(xref, yref)] = canvas.add_axes((left, bottom, 0.88 * (xd[1] - xd[0]), 0.74 * (yd[1] - yd[0])))
        return axes[(xref, yref)]

    for trace in fig.data:
        ax = axes_for(trace)
        kind = trace.type
        if kind == "scatter":
            line = trace.line or {}
            dash = _DASHES.get(getattr(line, "dash", None) or "solid", "-")
            ax.plot(np.asarray(trace.x, dtype=float), np.asarray(trace.y, dtype=float), color=_colour(line.color),
                    linewidth=float(line.width or 1.5), linestyle=dash, alpha=float(trace.opacity or 1.0),
                    label=display_text(trace.name) if trace.showlegend is not False and trace.name else None)
        elif kind == "bar":
            labels = [display_text(x) for x in trace.x]
            colours = trace.marker.color if trace.marker is not None and trace.marker.color is not None else None
            ax.bar(range(len(labels)), list(trace.y), color=list(colours) if isinstance(colours, (list, tuple))
                   else _colour(colours))
            ax.set_xticks(range(len(labels)), labels, fontfamily=family)
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
    if not axes:
        canvas.add_axes((0.08, 0.14, 0.88, 0.74))
    for (xref, yref), ax in axes.items():
        xa, ya = layout[_axis_key(xref)], layout[_axis_key(yref)]
        if ya.type == "log":
            ax.set_yscale("log")
        if ya.range is not None and ya.type != "log":
            ax.set_ylim(*ya.range)
        if xa.title and xa.title.text:
            ax.set_xlabel(display_text(xa.title.text), fontfamily=family)
        ax.grid(alpha=0.25)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8, prop={"family": family, "size": 8})
    title = layout.title.text if layout.title is not None else None
    if title:
        canvas.suptitle(display_text(title), fontsize=11, fontfamily=family)
    for note in layout.annotations or ():   # subplot titles
        canvas.text(0.08 + 0.88 * float(note.x), 0.14 + 0.74 * float(note.y) + 0.01, display_text(note.text),
                    ha="center", va="bottom", fontsize=9, fontfamily=family)
    buf = io.BytesIO()
    canvas.savefig(buf, format="png")
    return buf.getvalue()


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

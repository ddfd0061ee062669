"""A single self-contained HTML file from walkthrough blocks: what a student hands in.

Everything is inside the file — plotly.js (interactive charts) or PNG charts, sample grids as data:
URLs, equations as inline SVG, the Persian font — so it opens offline and from an e-mail attachment,
with no CDN. Persian reports are laid out right to left; equations, code, charts and tables of
numbers stay left to right.
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import re
from pathlib import Path
from typing import Any

from gm import __version__, i18n
from gm.walkthrough.blocks import Block

STYLE = """
:root { --ink: #1d2330; --muted: #5b6472; --line: #e3e6eb; --accent: #2f6fdf; --warn: #a35a00; }
* { box-sizing: border-box; }
body { margin: 0 auto; max-width: 1080px; padding: 28px 32px 64px; color: var(--ink);
       font: 15px/1.6 system-ui, -apple-system, 'Segoe UI', Roboto, 'Helvetica Neue', Arial, sans-serif; }
body.rtl { font-family: 'Vazirmatn', Tahoma, 'Noto Naskh Arabic', sans-serif; }
h1 { font-size: 26px; margin: 0 0 4px; } h2 { font-size: 21px; margin-top: 44px; padding-top: 12px;
border-top: 2px solid var(--line); } .sub { color: var(--muted); margin-bottom: 18px; }
nav ul { columns: 2; list-style: none; padding: 0; } nav a { color: var(--accent); text-decoration: none; }
.eq { direction: ltr; text-align: center; margin: 10px 0; overflow-x: auto; }
.eq svg { max-width: 100%; height: auto; }
.math { direction: ltr; unicode-bidi: isolate; white-space: nowrap; }
.math svg { vertical-align: middle; margin: 0 -2px; }   /* mathtext pads its SVG */
body.rtl ol { list-style-type: persian; }
code, pre { direction: ltr; unicode-bidi: isolate; font-family: ui-monospace, Menlo, Consolas, monospace;
            background: #f3f5f8; border-radius: 4px; padding: 1px 5px; font-size: 13px; }
pre { padding: 10px 12px; overflow-x: auto; }
.row { display: grid; grid-template-columns: repeat(auto-fit, minmax(280px, 1fr)); gap: 16px; margin: 12px 0; }
figure { margin: 0; } figure img { width: 100%; image-rendering: pixelated; border: 1px solid var(--line); }
figcaption, .caption { color: var(--muted); font-size: 13px; margin-top: 4px; }
.row > div { min-width: 0; }
.chart { direction: ltr; border: 1px solid var(--line); border-radius: 6px; padding: 4px; }
#js-plotly-tester { direction: ltr; }
.chart img { width: 100%; }
table { border-collapse: collapse; margin: 6px 0 14px; font-size: 13.5px; }
.table-scroll { max-width: 100%; overflow-x: auto; }
caption { caption-side: top; text-align: start; color: var(--muted); font-size: 13px; padding-bottom: 4px; }
th, td { border: 1px solid var(--line); padding: 4px 10px; text-align: start; }
th { background: #f6f7f9; }
.metrics { display: grid; grid-template-columns: repeat(auto-fit, minmax(200px, 1fr)); gap: 12px; margin: 12px 0; }
.metric { border: 1px solid var(--line); border-radius: 6px; padding: 10px 14px; }
.metric .label { color: var(--muted); font-size: 13px; } .metric .value { font-size: 26px; font-weight: 600; }
.metric .help { color: var(--muted); font-size: 12px; }
.note { border-inline-start: 4px solid var(--accent); background: #f1f6ff; padding: 8px 14px; margin: 10px 0; }
.note.warning { border-color: var(--warn); background: #fff6ea; }
.train { border: 1px dashed var(--line); border-radius: 6px; padding: 8px 14px; margin: 12px 0; }
footer { margin-top: 48px; color: var(--muted); font-size: 12.5px; }
@media print { .chart { break-inside: avoid; } h2 { break-before: page; } }
"""


# Draws every chart of the page once it is parsed and laid out, and again whenever its box changes
# size (a grid row reflowing, a phone turned, fonts arriving), so a chart always fills its own box.
# Long titles are wrapped to the chart's width, since plotly never wraps a title. The plotly text
# tester is kept left to right (STYLE): in a right-to-left page it inherited the direction, measured
# every tick label mirrored, and the margins it computed cut the labels ("15" showed as ".5").
CHARTS_JS = """
(function () {
  var config = {displaylogo: false, responsive: !window.ResizeObserver};
  var canvas = document.createElement("canvas").getContext("2d");
  var rtl = document.documentElement.getAttribute("dir") === "rtl";
  function wrapped(text, font, width) {
    if (!text) return text;
    canvas.font = (font.size || 14) + "px " + (font.family || "sans-serif");
    var lines = [], line = "";
    String(text).split(/<br\\s*\\/?>/i).join(" ").split(/\\s+/).forEach(function (word) {
      var next = line ? line + " " + word : word;
      if (line && canvas.measureText(next.replace(/<[^>]+>/g, "")).width > width) { lines.push(line); line = word; }
      else line = next;
    });
    lines.push(line);
    return lines.join("<br>");
  }
  function titled(gd, layout) {
    var title = layout.title || {};
    if (!gd._gmTitle) return null;
    var font = (gd._fullLayout && gd._fullLayout.title && gd._fullLayout.title.font) ||
               {size: (title.font || {}).size || 14, family: '"Open Sans", verdana, arial, sans-serif'};
    var text = wrapped(gd._gmTitle, font, Math.max(60, gd.clientWidth - 28));
    // A right-to-left page: the title reads from the right, as a right-to-left paragraph.
    return rtl ? text.split("<br>").map(function (l) { return "\u202b" + l + "\u202c"; }).join("<br>") : text;
  }
  // data-fitting marks a chart being drawn or refitted (the layout tests wait for none).
  function busy(gd, change) {
    gd._gmBusy = (gd._gmBusy || 0) + change;
    if (gd._gmBusy > 0) gd.setAttribute("data-fitting", ""); else gd.removeAttribute("data-fitting");
  }
  function draw(holder) {
    var gd = document.getElementById(holder.getAttribute("data-plotly-for"));
    if (!gd) return;
    var fig = JSON.parse(holder.textContent);
    var layout = fig.layout || {};
    gd._gmTitle = layout.title && layout.title.text;
    if (gd._gmTitle) {
      layout.title.text = titled(gd, layout);
      if (rtl && layout.title.xref === "container" && layout.title.x === 0) {
        layout.title.x = 1;
        layout.title.xanchor = "right";
      }
    }
    busy(gd, 1);
    var width = gd.clientWidth;
    function refit() {
      if (gd.clientWidth === width || !gd.clientWidth) return;
      width = gd.clientWidth;
      busy(gd, 1);
      Plotly.Plots.resize(gd).then(function () {
        var text = titled(gd, gd.layout);
        if (text === null || text === gd.layout.title.text) return;
        // Twice: plotly grows the top margin for a title of more lines, but draws that title where the
        // old margin put it (cut off at the top) until the next relayout.
        return Plotly.relayout(gd, {"title.text": text}).then(function () {
          return Plotly.relayout(gd, {"title.automargin": true});
        });
      }).then(function () { busy(gd, -1); }, function () { busy(gd, -1); });
    }
    Plotly.newPlot(gd, fig.data, layout, config).then(function () {
      if (window.ResizeObserver) new ResizeObserver(refit).observe(gd);
      refit();   // the box may have changed while the chart was drawn
      if (document.fonts && document.fonts.ready) {
        busy(gd, 1);
        document.fonts.ready.then(function () { return gd.clientWidth && Plotly.Plots.resize(gd); })
          .then(function () { busy(gd, -1); }, function () { busy(gd, -1); });
      }
    }).then(function () { busy(gd, -1); }, function () { busy(gd, -1); });
  }
  function drawAll() {
    Array.prototype.forEach.call(document.querySelectorAll("script[data-plotly-for]"), draw);
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", drawAll);
  else drawAll();
})();
"""


_INLINE_MATH = re.compile(i18n.INLINE_MATH)


def _math_rule(state: Any, silent: bool) -> bool:
    """markdown-it inline rule: "$...$" (gm.i18n.INLINE_MATH) is one formula, taken before Markdown's
    escapes and emphasis can touch its backslashes and underscores."""
    if state.src[state.pos] != "$":
        return False
    found = _INLINE_MATH.match(state.src, state.pos)
    if found is None:
        return False
    if not silent:
        state.push("math_inline", "", 0).content = found.group()[1:-1]
    state.pos = found.end()
    return True


def _math_html(renderer: Any, tokens: list, idx: int, options: Any, env: Any) -> str:
    """An inline formula as SVG, drawn like the equations, and left to right inside Persian text."""
    from gm.figures import equation_svg
    tex = tokens[idx].content
    try:
        inner = equation_svg(tex, 11)
    except Exception:  # TeX that matplotlib's mathtext cannot draw: its source, still left to right
        inner = f"<code>{html.escape(tex)}</code>"
    return f'<span class="math" dir="ltr">{inner}</span>'


def _markdown(text: str) -> str:
    from markdown_it import MarkdownIt
    md = MarkdownIt("commonmark", {"html": False}).enable("table")
    md.inline.ruler.before("escape", "math_inline", _math_rule)
    md.add_render_rule("math_inline", _math_html)
    return md.render(text)


def _png_data_url(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode()


def image_bytes(image: Any) -> bytes:
    """PNG bytes of an image block: its file, or the tensor/array encoded (2x, pixelated)."""
    if isinstance(image, Path):
        return image.read_bytes()
    from gm.images import to_png_bytes
    return to_png_bytes(image, 2)


def _chart(block: Block, interactive: bool) -> str:
    if interactive:
        # The figure travels as JSON and is drawn by CHARTS_JS once the whole page is laid out: plotly
        # sizes a chart to its container when it draws it, and a chart drawn while the page was still
        # being parsed took the width of a half-built grid row (the first chart of three got the whole
        # row), then kept it, cut off by its cell.
        import plotly.io as pio
        data = pio.to_json(block.figure, validate=False).replace("</", "<\\/")
        height = int(block.figure.layout.height or 450)
        div_id = html.escape(f"chart-{block.key}")
        inner = (f'<div class="plot" id="{div_id}" style="height:{height}px"></div>'
                 f'<script type="application/json" data-plotly-for="{div_id}">{data}</script>')
    else:
        from gm.figures import figure_png
        inner = f'<img alt="{html.escape(block.key)}" src="{_png_data_url(figure_png(block.figure))}">'
    caption = f'<div class="caption">{_markdown(block.caption)}</div>' if block.caption else ""
    return f'<div class="chart" dir="ltr" data-key="{html.escape(block.key)}">{inner}</div>{caption}'


def _table(block: Block) -> str:
    rows = block.rows or []
    if not rows:
        return ""
    head = "".join(f'<th dir="auto">{html.escape(str(c))}</th>' for c in rows[0])
    # dir="auto": a cell of shapes or code ("64 x 7 x 7") reads left to right inside a Persian table.
    body = "".join("<tr>" + "".join(f'<td dir="auto">{html.escape(str(v))}</td>' for v in r.values()) + "</tr>"
                   for r in rows)
    caption = f"<caption>{html.escape(block.caption)}</caption>" if block.caption else ""
    # Scrolls inside its own box: a table wider than a phone would otherwise widen the whole page.
    return (f'<div class="table-scroll"><table data-key="{html.escape(block.key)}">{caption}<thead><tr>{head}'
            f'</tr></thead><tbody>{body}</tbody></table></div>')


def _metrics(block: Block) -> str:
    items = "".join(
        f'<div class="metric"><div class="label">{html.escape(m.label)}</div>'
        f'<div class="value">{html.escape(m.value)}</div><div class="help">{_markdown(m.help)}</div></div>'
        for m in block.metrics)
    return f'<div class="metrics" data-key="{html.escape(block.key)}">{items}</div>'


def render_block(block: Block, interactive: bool = True) -> str:
    from gm.figures import equation_svg
    if block.kind == "markdown":
        return _markdown(block.text)
    if block.kind == "equation":
        return f'<div class="eq">{equation_svg(block.text)}</div>'
    if block.kind in ("chart", "demo"):
        return _chart(block, interactive)
    if block.kind == "image":
        return (f'<figure data-key="{html.escape(block.key)}"><img alt="{html.escape(block.caption)}" '
                f'src="{_png_data_url(image_bytes(block.image))}"><figcaption>{html.escape(block.caption)}'
                f'</figcaption></figure>')
    if block.kind == "table":
        return _table(block)
    if block.kind == "metrics":
        return _metrics(block)
    if block.kind == "train":
        return f'<div class="train">{_markdown(block.text)}</div>'
    if block.kind == "note":
        return f'<div class="note {html.escape(block.level)}">{_markdown(block.text)}</div>'
    return ""


def render_blocks(blocks: list[Block], interactive: bool = True) -> str:
    """Blocks in order; consecutive grids or charts share a row, as on the page."""
    out, i = [], 0
    while i < len(blocks):
        kind = blocks[i].kind
        if kind in ("image", "chart"):
            j = i
            while j < len(blocks) and blocks[j].kind == kind:
                j += 1
            out.append('<div class="row">' + "".join(f"<div>{render_block(b, interactive)}</div>"
                                                     for b in blocks[i:j]) + "</div>")
            i = j
            continue
        out.append(render_block(blocks[i], interactive))
        i += 1
    return "\n".join(out)


def document(title: str, sections: list[tuple[str, str, list[Block]]], lang: str, *, subtitle: str = "",
             interactive: bool = True) -> str:
    """A whole HTML page: `sections` are (anchor, heading, blocks)."""
    lang = i18n.check_language(lang)
    rtl = i18n.is_rtl(lang)
    has_charts = interactive and any(b.kind in ("chart", "demo") for _, _, blocks in sections for b in blocks)
    script = ""
    if has_charts:
        from plotly.offline import get_plotlyjs
        script = f"<script>{get_plotlyjs()}</script>"
    toc = "".join(f'<li><a href="#{html.escape(a)}">{html.escape(h)}</a></li>' for a, h, _ in sections)
    body = "".join(f'<section id="{html.escape(a)}"><h2>{html.escape(h)}</h2>{render_blocks(blocks, interactive)}'
                   f"</section>" for a, h, blocks in sections)
    stamp = _dt.datetime.now().strftime("%Y-%m-%d %H:%M")
    footer = i18n.t("report.footer", lang, version=__version__, date=stamp)
    return (f'<!DOCTYPE html>\n<html lang="{lang}" dir="{"rtl" if rtl else "ltr"}"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{html.escape(title)}</title><style>{i18n.font_face_css(lang)}{STYLE}</style>{script}</head>"
            f'<body class="{"rtl" if rtl else "ltr"}"><header><h1>{html.escape(title)}</h1>'
            f'<div class="sub">{html.escape(subtitle)}</div></header>'
            f'<nav><ul>{toc}</ul></nav>{body}<footer>{_markdown(footer)}</footer>'
            f'{"<script>" + CHARTS_JS + "</script>" if has_charts else ""}</body></html>')

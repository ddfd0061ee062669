"""Home's model gallery drawn as one HTML block.

Drawn with Streamlit elements, each card was five (a bordered container, two captions, a title, an
image) and each grid one more request to the server: 55 React components and 11 image fetches, which
cost a new visitor ~0.3 s of Home's first load on 2 cores (BENCHMARKS.md, "In the browser"). Here the
whole gallery is one element with the grids inline as PNG data, laid out by a CSS grid that also
reflows to one column on a phone.
"""

from __future__ import annotations

import base64
import html
import io
from dataclasses import dataclass
from pathlib import Path

from PIL import Image


@dataclass(frozen=True)
class Card:
    """One model: its name, dataset and one-line description, and the shipped run's newest grid."""
    name: str
    dataset: str
    description: str
    image_png: bytes | None = None
    image_caption: str = ""
    figures: str | None = None   # the measured line (held-out digits, true counterparts)


# Colours follow the theme's text colour (currentColor), so the cards read in light and dark themes;
# the border and caption tones are Streamlit's own (20 % and 60 % of the text colour).
_CSS = """
.gm-cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(15rem, 1fr)); gap: 1rem; }
.gm-card { border: 1px solid color-mix(in srgb, currentColor 20%, transparent); border-radius: 0.5rem;
  padding: 1rem; margin: 0; display: flex; flex-direction: column; gap: 0.5rem; }
.gm-card h4 { margin: 0; padding: 0; font-size: 1rem; font-weight: 600; }
.gm-card .gm-note { margin: 0; font-size: 0.875rem; color: color-mix(in srgb, currentColor 60%, transparent); }
.gm-card figure { margin: 0; }
.gm-card img { width: 100%; height: auto; display: block; }
.gm-card figcaption { font-size: 0.875rem; text-align: center; margin-top: 0.25rem;
  color: color-mix(in srgb, currentColor 60%, transparent); }
.gm-cards[dir="rtl"] { font-family: 'Vazirmatn', Tahoma, 'Noto Naskh Arabic', sans-serif; }
.gm-cards[dir="rtl"] .gm-card h4 bdi { direction: ltr; }
"""


def grid_png(path: Path) -> bytes | None:
    """The PNG file's bytes to inline, or None when it cannot be read or is not a whole PNG (the
    card then keeps its text: a damaged grid must not show as a broken picture)."""
    try:
        data = path.read_bytes()
        with Image.open(io.BytesIO(data)) as image:
            if image.format != "PNG":
                return None
            image.verify()   # every chunk's checksum, without decoding the pixels
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        return None
    return data


def card_html(card: Card) -> str:
    e = html.escape
    parts = [f'<article class="gm-card" data-model="{e(card.name)}">',
             f"<h4><bdi>{e(card.name)}</bdi> · <bdi>{e(card.dataset)}</bdi></h4>",
             f'<p class="gm-note">{e(card.description)}</p>']
    if card.image_png:
        data = base64.b64encode(card.image_png).decode("ascii")
        parts.append(f'<figure><img src="data:image/png;base64,{data}" alt="{e(card.name)}: {e(card.image_caption)}">'
                     f"<figcaption>{e(card.image_caption)}</figcaption></figure>")
        if card.figures:
            parts.append(f'<p class="gm-note">{e(card.figures)}</p>')
    parts.append("</article>")
    return "".join(parts)


def gallery_html(cards: list[Card], *, rtl: bool = False) -> str:
    """The cards as one HTML block (its own <style>, which must hold no CSS comments: st.html drops
    such a sheet)."""
    direction = ' dir="rtl"' if rtl else ""
    body = "".join(card_html(c) for c in cards)
    return f'<style>{_CSS}</style><div class="gm-cards"{direction}>{body}</div>'

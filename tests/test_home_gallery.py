"""Home's model gallery (pages/_cards.py): one HTML block that must say what the Streamlit
elements it replaced said, safely, in both languages."""

from __future__ import annotations

import base64
import html
import re

import pytest

from gm import i18n
from gm.registry import MODELS
from pages._cards import Card, gallery_html, grid_png


def gallery_cards(at) -> list[dict]:
    """Home's gallery as an AppTest sees it: per card its model, grid caption (None without a
    grid) and text lines (description, then the measured figures)."""
    cards = []
    for el in at.get("html"):
        for model, body in re.findall(r'<article class="gm-card" data-model="([^"]+)">(.*?)</article>', el.proto.body):
            caption = re.search(r"<figcaption>(.*?)</figcaption>", body)
            cards.append({"model": html.unescape(model),
                          "caption": html.unescape(caption.group(1)) if caption else None,
                          "notes": [html.unescape(n) for n in re.findall(r'<p class="gm-note">(.*?)</p>', body)]})
    return cards


def test_a_card_shows_its_text_escaped_and_its_grid_inline():
    png = b"\x89PNG\r\n\x1a\n not really a picture"
    page = gallery_html([Card("vae", "dsprites", "a <script>alert(1)</script> & more", image_png=png,
                              image_caption="pretrained, step 4,000", figures="83% recognisable")])
    assert "<script>" not in page and "&lt;script&gt;" in page and "&amp; more" in page
    data = re.search(r'src="data:image/png;base64,([^"]+)"', page).group(1)
    assert base64.b64decode(data) == png
    assert re.findall(r"<figcaption>(.*?)</figcaption>", page) == ["pretrained, step 4,000"]
    assert 'alt="vae: pretrained, step 4,000"' in page
    assert "83% recognisable" in page and 'data-model="vae"' in page


def test_a_card_without_a_grid_has_no_picture_and_no_figures():
    page = gallery_html([Card("stargan", "dsprites", "one generator", figures="should not show")])
    assert "<figure" not in page and "<img" not in page and "should not show" not in page
    assert "stargan" in page and "one generator" in page


def test_the_gallery_reads_right_to_left_in_persian_only():
    assert '<div class="gm-cards" dir="rtl">' in gallery_html([Card("vae", "dsprites", "x")], rtl=True)
    assert '<div class="gm-cards">' in gallery_html([Card("vae", "dsprites", "x")], rtl=False)


def test_the_gallery_style_holds_no_css_comment():
    # st.html silently drops a <style> whose sheet holds a comment: no card would have a border
    style = re.search(r"<style>(.*?)</style>", gallery_html([]), re.S).group(1)
    assert "/*" not in style and ".gm-card" in style


@pytest.mark.parametrize("lang", list(i18n.LANGUAGES))
def test_model_descriptions_are_plain_text(lang):
    # the gallery shows them as text, not Markdown: emphasis, code or formulas would show their marks
    for name in MODELS:
        text = i18n.t(f"model.{name}", lang)
        assert not re.search(r"[*`$_]{1,2}\S", text.replace("kl_target", "")), (lang, name, text)
        assert html.unescape(html.escape(text)) == text


@pytest.mark.parametrize("damage", ["missing", "empty", "text", "truncated", "jpeg"])
def test_a_damaged_grid_file_leaves_its_card_without_a_picture(tmp_path, damage):
    from PIL import Image
    path = tmp_path / "step-100.png"
    good = tmp_path / "good.png"
    Image.new("L", (32, 32), 128).save(good)
    data = good.read_bytes()
    if damage == "empty":
        path.write_bytes(b"")
    elif damage == "text":
        path.write_text("not a picture")
    elif damage == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif damage == "jpeg":
        Image.new("L", (32, 32), 128).save(path, format="JPEG")
    assert grid_png(path) is None
    assert grid_png(good) == data

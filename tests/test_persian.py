"""Persian, right to left, with Latin inside it: formulas, English messages, paths and run names keep
their order and punctuation; the Home list is a list; every config field has a label in words.

The bidi algorithm lays out a Latin run inside Persian text left to right, but the neutral characters
at its edges (brackets, signs, spaces) take the paragraph's direction: "K_p / (1 + exp(e))" followed
by a Persian word came out as "((K_p / (1 + exp(e". What keeps a run whole is an isolate: inline maths
(KaTeX in the app, SVG in the report), a code span, or the invisible isolates U+2066..U+2069.
"""

from __future__ import annotations

import re

import pytest
from markdown_it import MarkdownIt
from streamlit.testing.v1 import AppTest

from gm import i18n
from gm.config import describe
from gm.registry import MODELS
from tests.conftest import REPO

_PERSIAN_LETTER = "[\u0600-\u065F\u066E-\u06D3\u06D5-\u06EF\u06FA-\u06FF\uFB50-\uFDFF\uFE70-\uFEFF\u200c]"
# Kept left to right as one unit: a code span, inline maths (Pandoc's dollars), an isolated run.
_LTR_SPANS = re.compile(r"`[^`]*`|\$(?=[^\s$])[^$\n]*?(?<=[^\s$\\])\$(?!\d)|[\u2066\u2067\u2068][^\u2069]*\u2069")
_L = r"[A-Za-z]"
_OPERATOR = r"[=<>≈~/|‖−]"
# What makes a Latin run a formula: a sub- or superscript (K_p, w^c), an operator between Latin
# operands (L_S + L_C, z ~ N), a function applied (D(G(z)), exp(e)), a squared letter (r²), a number
# in scientific notation (2e-4), a shell variable ($HF_TOKEN).
_FORMULA = re.compile(rf"{_L}[_^]|[_^]{_L}|{_L}\)* ?{_OPERATOR} ?\(*{_L}|{_L} ?[·+×] ?{_L}|{_L}\(|{_L}[²³½]"
                      r"|\d[eE][-+−]?\d|\$")


def unisolated_formulas(text: str) -> list[str]:
    """The formula-like Latin runs of a Persian string that are not inside inline maths, a code span
    or an isolate (placeholders are filled by the code, which isolates their values itself)."""
    plain = re.sub(r"\{[^}]*\}", " ", _LTR_SPANS.sub(" ", text))
    runs = re.split(f"{_PERSIAN_LETTER}+", plain)   # stretches between two Persian words
    return [run.strip() for run in runs if re.search(_L, run) and _FORMULA.search(run)]


def test_the_checker_finds_the_formulas_that_came_out_scrambled():
    assert unisolated_formulas("**جملهٔ P** = K_p / (1 + exp(e)) میان صفر و K_p است")
    assert unisolated_formulas("D(x)")                       # a chart legend, a metric label
    assert unisolated_formulas("واگرایی KL میان q(z | x) و پیشین N(0, I) شکل بسته دارد")
    assert unisolated_formulas("برنامه هیچ‌گاه $HF_TOKEN یا ورود ذخیره‌شده را به کار نمی‌برد")
    assert unisolated_formulas("(LSGAN، D با 2e-4)")
    fine = ["**جملهٔ $P$** = $K_p / (1 + \\exp(e))$ میان صفر و $K_p$ است", "\u2066D(x)\u2069",
            "هیچ‌گاه `$HF_TOKEN` یا", "(بدون pickle) و β = ۱ در VAE", "n = {n:,} تصویر", "IoU با حقیقت"]
    assert not [t for t in fine if unisolated_formulas(t)]


def test_formulas_in_persian_text_are_isolated():
    offenders = {key: found for key, text in i18n.catalog("fa").items() if (found := unisolated_formulas(text))}
    assert not offenders, offenders


def _inline_maths(text: str) -> list[str]:
    return [m.group()[1:-1] for m in _LTR_SPANS.finditer(text) if m.group().startswith("$")]


def test_inline_formulas_are_tex_both_renderers_draw():
    """KaTeX draws them in the app; the HTML report draws them with matplotlib's mathtext, which
    knows less TeX: every one must parse there. Their braces are TeX's, not placeholders: a string
    with a formula and placeholders fills the placeholders and leaves the formula alone."""
    from gm.figures import equation_svg
    found = 0
    for lang in i18n.LANGUAGES:
        for key, text in i18n.catalog(lang).items():
            for tex in _inline_maths(text):
                found += 1
                assert "<svg" in equation_svg(tex, 11), (key, tex)
    assert found > 40
    text = i18n.t("walkthrough.translation.cyclegan", "fa", lambda_cyc=10, lambda_idt=0.5, pool=50)
    assert "{" not in text and "۱۰" in text
    text = "$v_{KL}$ و $\\mathcal{N}(0, I)$ با {n:,} تصویر"
    assert i18n.placeholders(text) == {"n"}
    assert i18n._Formatter("fa").fill(text, {"n": 5000}) == "$v_{KL}$ و $\\mathcal{N}(0, I)$ با ۵٬۰۰۰ تصویر"


def test_report_markdown_isolates_inline_maths_and_code():
    from gm.report import _markdown
    out = _markdown(i18n.t("walkthrough.controlvae.terms", "fa", kp=0.01, ki=0.001, beta_min=1, beta_max=100))
    assert out.count('<span class="math" dir="ltr"><svg') == 7
    text = re.sub(r"<svg.*?</svg>", "", out, flags=re.S)
    assert "$" not in text and "\\exp" not in text and "K_p" not in text and "۰٫۰۱" in text
    assert "<code>" in _markdown("مقدار `1e-4` را")
    assert "<code>$HF_TOKEN</code>" in _markdown("متغیر `$HF_TOKEN` را")
    assert _markdown("از $5 تا $10") .count("<svg") == 0   # dollars as money are no formula


# ---- Latin values and English messages in right-to-left text -------------------------------------
FSI, PDI, LRI, RLM = "\u2068", "\u2069", "\u2066", "\u200f"


def test_latin_values_filled_into_persian_text_are_isolated():
    text = i18n.t("home.hub_loaded", "fa", repo="owner/gm-vae", name="vae-2024.01")
    assert f"{FSI}owner/gm-vae{PDI}" in text and f"«{FSI}vae-2024.01{PDI}»" in text
    assert i18n.t("home.hub_loaded", "en", repo="owner/gm-vae", name="vae-2024.01") == \
        "Loaded owner/gm-vae as run 'vae-2024.01'."
    # An English error inside a Persian sentence, a path in a caption: isolated too.
    assert f"{FSI}Unknown run 'x'.{PDI}" in i18n.t("explore.waiting", "fa", name="Unknown run 'x'.")
    # A Persian value is Persian text already; a number takes Persian digits (a sign isolates itself).
    label = i18n.t("walkthrough.role.controlvae_kl8", "fa")
    assert FSI not in i18n.t("walkthrough.common.hparams", "fa", label=label)
    assert i18n.t("home.grid_caption", "fa", who="vae", step=-3).endswith(f"{LRI}-۳{PDI}")
    # Inside a code span the value is copied into a terminal: no invisible characters there.
    text = i18n.t("walkthrough.common.train", "fa", label="VAE", command="python -m gm train vae")
    assert "`python -m gm train vae`" in text and f"{FSI}VAE{PDI}" in text
    assert i18n.isolate("abc") == f"{FSI}abc{PDI}" and i18n.isolate(i18n.isolate("abc")) == f"{FSI}abc{PDI}"


def test_png_charts_draw_isolated_runs_without_their_controls():
    """The ZIP's PNG charts (matplotlib, python-bidi): an isolated run name in a Persian title is laid
    out by the whole bidi algorithm (bidi.algorithm's old one raised on isolates), then the invisible
    controls are dropped, since matplotlib would draw them as boxes."""
    from gm.figures import display_text
    title = i18n.t("walkthrough.wgan.losses_title", "fa", label="WGAN-GP")
    assert f"{FSI}WGAN-GP{PDI}" in title
    shown = display_text(title)
    assert "WGAN-GP" in shown and not re.search("[\u200e\u200f\u2066-\u2069]", shown)
    assert display_text(i18n.t("metric.d_fake", "fa")) == "D(G(z))"


def test_persian_strings_that_start_with_a_latin_word_still_read_right_to_left():
    """An alert takes each paragraph's direction from its first strong letter (so that an English
    error reads left to right): a Persian sentence opening with "VAE" gets a right-to-left mark."""
    text = i18n.t("walkthrough.vae.intro", "fa")
    assert text.startswith(RLM + "VAE")
    assert i18n.t("walkthrough.data.intro", "fa").startswith("**" + RLM + "dSprites")
    assert not i18n.t("walkthrough.vae.intro", "en").startswith(RLM)
    assert not i18n.t("metric.kl", "fa").startswith(RLM)            # "KL" alone is no Persian text
    # A value isolated at the start is skipped, as the bidi algorithm skips it.
    assert i18n.t("home.hub_loaded", "fa", repo="a/b", name="c").startswith(FSI)


def test_the_rtl_css_lets_alerts_take_their_direction_from_their_text():
    from pages._ui import _RTL_CSS
    css = re.sub(r"\s+", " ", _RTL_CSS)
    rule = re.search(r'\[data-testid="stAlert"\] \[data-testid="stMarkdownContainer"\][^{]*\{([^}]*)\}', css)
    assert rule and "unicode-bidi: plaintext" in rule.group(1) and "text-align: start" in rule.group(1)
    # Maths and code stay left to right and isolated inside right-to-left text.
    ltr = re.search(r"\.katex,[^{]*\{([^}]*)\}", css)
    assert ltr and "code" in ltr.group() and "direction: ltr" in ltr.group(1) and "unicode-bidi: isolate" in ltr.group(1)
    assert "list-style-type: persian" in css


# ---- the "Start here" list ----------------------------------------------------------------------------
def _items(text: str) -> int:
    return MarkdownIt("commonmark").render(text).count("<li>")


def test_start_here_is_a_list_in_every_language():
    counts = {lang: _items(i18n.t("home.start_steps", lang)) for lang in i18n.LANGUAGES}
    assert counts["en"] == 5 and set(counts.values()) == {5}, counts


def test_no_persian_list_is_numbered_with_persian_digits():
    """Markdown knows "1." and "1)" as list markers, not "۱.": such a list is one paragraph."""
    bad = [key for key, text in i18n.catalog("fa").items() if re.search(r"(^|\n)[ \t]*[۰-۹]+[.)] ", text)]
    assert not bad, bad
    en = i18n.catalog("en")
    for key, text in i18n.catalog("fa").items():   # the same lists and items in both languages
        if key in en and _items(en[key]) > 1:
            assert _items(text) == _items(en[key]), key


# ---- config fields ---------------------------------------------------------------------------------------
def _fields() -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for spec in MODELS.values():
        for f in describe(spec.config_cls):
            out.setdefault(f["name"], []).append(spec.name)
    return out


def test_every_config_field_has_a_label_in_every_language():
    """A new config field without a label in [field] fails here (its name would be the Train form's
    label); in Persian its help text is translated under [config] too."""
    fields = _fields()
    assert {"latent_dim", "lr", "kl_dims_every", "batch_size"} <= set(fields)
    for lang in i18n.LANGUAGES:
        cat = i18n.catalog(lang)
        missing = sorted(name for name in fields if not cat.get(f"field.{name}", "").strip())
        assert not missing, (lang, missing, [fields[n] for n in missing])
    fa = i18n.catalog("fa")
    untranslated = sorted(name for name in fields if not re.search(_PERSIAN_LETTER, fa[f"field.{name}"]))
    assert not untranslated, untranslated
    no_help = sorted(name for name, f in fields.items() if f"config.{name}" not in fa)
    assert not no_help, no_help


@pytest.mark.parametrize("lang", ["fa", "en"])
def test_the_train_form_labels_fields_in_words_with_their_names(app, lang):
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=120)
    at.query_params["lang"] = lang
    at.run()
    at.switch_page("pages/train.py").run()
    assert not at.exception, [e.value for e in at.exception]
    widgets = {w.key: w for w in [*at.number_input, *at.selectbox, *at.checkbox, *at.text_input] if w.key}
    form = {key.rsplit(".", 1)[1]: w for key, w in widgets.items() if key.startswith("cfg.vae.")}
    assert {"latent_dim", "lr", "kl_dims_every", "batch_size"} <= set(form)
    for name, widget in form.items():
        assert widget.label == f"{i18n.t(f'field.{name}', lang)} `{name}`", name
    if lang == "fa":
        assert form["lr"].help == i18n.t("config.lr", "fa")   # the help text in Persian too

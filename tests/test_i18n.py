"""The language catalogs: same keys and placeholders in every language, Persian digits and punctuation,
and the app's labels switching with the sidebar's language control."""

from __future__ import annotations

import re

from streamlit.testing.v1 import AppTest

from gm import i18n
from gm.config import fields_of
from gm.registry import MODELS
from tests.conftest import REPO


def _config_fields() -> set[str]:
    return {f.name for spec in MODELS.values() for f in fields_of(spec.config_cls)}


def test_every_language_has_every_key_with_the_same_placeholders():
    en = i18n.catalog("en")
    assert len(en) > 300
    for lang in i18n.LANGUAGES:
        cat = i18n.catalog(lang)
        missing = sorted(set(en) - set(cat))
        assert not missing, f"{lang} lacks {missing[:10]}"
        # [config] translates dataclass help texts, whose English lives in gm/ (not in en.toml).
        extra = sorted(k for k in set(cat) - set(en)
                       if not (k.startswith("config.") and k.split(".", 1)[1] in _config_fields()))
        assert not extra, f"{lang} has keys English does not: {extra[:10]}"
        for key, text in cat.items():
            if key in en:
                assert i18n.placeholders(text) == i18n.placeholders(en[key]), (lang, key)
            assert text.strip(), (lang, key)


def test_numbers_take_the_languages_digits():
    assert i18n.number(1234.5, "en", ",.1f") == "1,234.5"
    assert i18n.number(1234.5, "fa", ",.1f") == "۱٬۲۳۴٫۵"
    assert i18n.number(0.891, "fa", ".0%") == "۸۹٪"
    assert i18n.number(-3, "fa") == "\u2066-۳\u2069"   # a sign stays left of the digits in RTL text
    text = i18n.t("walkthrough.vae.losses_explain", "fa", steps=4000, recon_first=2849.1, recon_last=34.6,
                  kl_first=0.38, kl_peak=31.4, kl_peak_step=490, kl_last=26.4, loss_last=61.1)
    assert "۲٬۸۴۹" in text and "۴٬۰۰۰" in text and "۳۴٫۶" in text
    assert "2,849" not in text and "4,000" not in text


def test_unknown_language_and_key_fall_back_visibly():
    assert i18n.check_language("xx") == "en"
    assert i18n.t("home.title", "xx") == i18n.t("home.title", "en")
    assert i18n.t("no.such.key", "fa") == "no.such.key"


# Latin digits belong to maths and code only: "$\ln 10$", "L1", `1e-4`, and to Markdown's list
# markers ("1.": "۱." is no list). A number in running Persian text must use Persian digits.
_MATH_NEAR = re.compile(r"[A-Za-z()\[\]_^=+−\-/*·≈|‖Σ]")


def test_persian_text_writes_its_numbers_in_persian_digits():
    offenders = []
    for key, text in i18n.catalog("fa").items():
        plain = re.sub(r"(^|\n)\d+\. ", r"\1", i18n.LTR_SPANS.sub("", re.sub(r"\{[^}]*\}", "", text)))
        for m in re.finditer(r"[0-9]+", plain):
            around = plain[max(0, m.start() - 3):m.start()] + plain[m.end():m.end() + 3]
            if not _MATH_NEAR.search(around):
                offenders.append((key, plain[max(0, m.start() - 15):m.end() + 15]))
    assert not offenders, offenders[:5]
    # Persian punctuation in running text: no Latin comma or semicolon between two Persian words.
    latin_punct = [(k, v) for k, v in i18n.catalog("fa").items() if re.search(r"[\u0600-\u06FF][,;] [\u0600-\u06FF]", v)]
    assert not latin_punct, latin_punct[:3]


def test_font_is_bundled_for_persian():
    css = i18n.font_face_css("fa")
    assert css.count("@font-face") == 2 and "data:font/woff2;base64," in css
    assert i18n.font_face_css("en") == ""
    assert (i18n.FONTS / "OFL.txt").is_file()


def test_language_switch_translates_the_whole_app(app):
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=120)
    at.run()
    assert at.title[0].value == i18n.t("home.title", "en")
    switch = at.get("button_group")[0]
    switch.set_value("fa").run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.title[0].value == i18n.t("home.title", "fa")
    assert at.query_params.get("lang") in ("fa", ["fa"])
    css = "".join(el.proto.body for el in at.get("html"))
    assert "direction: rtl" in css and "Vazirmatn" in css
    for page in ("pages/train.py", "pages/monitor.py", "pages/explore.py", "pages/evaluate.py", "pages/compare.py"):
        at.switch_page(page).run()
        assert not at.exception, (page, [e.value for e in at.exception])
        name = page.split("/")[1][:-3]
        assert at.title[0].value.startswith(i18n.t(f"{name}.title", "fa")[:6]), page


def test_a_lang_query_parameter_opens_the_app_in_that_language(app):
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=120)
    at.query_params["lang"] = "fa"
    at.run()
    assert at.title[0].value == i18n.t("home.title", "fa")

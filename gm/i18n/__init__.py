"""Interface languages: every string of the app and the walkthrough, one TOML file per language.

    gm/i18n/en.toml     English (the reference: every key lives here)
    gm/i18n/fa.toml     Persian (فارسی), written right to left

A translator edits only those files: tables group the keys by page (``[train]``, ``[walkthrough.gan]``),
values are Markdown, and ``{name}`` or ``{value:.2f}`` placeholders are filled in by the code. In
Persian the numbers that fill placeholders are written with Persian digits and separators
(۱۲٬۳۴۵٫۶۷, ٪); text the translator writes should use Persian digits and punctuation (، ؛ ؟) too.
Maths and code stay left to right: keep `code spans`, model names and LaTeX as they are.

No Streamlit here: the app (pages/_ui.py) and the HTML report (gm/report.py) both read this module.
"""

from __future__ import annotations

import functools
import re
import string
import sys
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

LANGUAGES: dict[str, str] = {"en": "English", "fa": "فارسی"}
DEFAULT_LANGUAGE = "en"
RTL_LANGUAGES = frozenset({"fa"})
FOLDER = Path(__file__).resolve().parent
FONTS = FOLDER / "fonts"

PERSIAN_DIGITS = str.maketrans("0123456789", "۰۱۲۳۴۵۶۷۸۹")
_LRI, _PDI = "\u2066", "\u2069"   # left-to-right isolate: keeps "-3" or "1e-4" readable inside RTL text


def check_language(lang: str) -> str:
    """`lang` if it is a known language code, else the default (a bad ?lang= in a URL is no error)."""
    return lang if lang in LANGUAGES else DEFAULT_LANGUAGE


def is_rtl(lang: str) -> bool:
    return lang in RTL_LANGUAGES


def _flatten(table: dict[str, Any], prefix: str = "") -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in table.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_flatten(value, name + "."))
        else:
            out[name] = str(value)
    return out


@functools.cache
def catalog(lang: str) -> dict[str, str]:
    """Every string of one language, keyed "page.name" (nested TOML tables joined with dots)."""
    path = FOLDER / f"{check_language(lang)}.toml"
    with open(path, "rb") as fh:
        return _flatten(tomllib.load(fh))


def localize_number(text: str, lang: str) -> str:
    """A number already formatted in English ("1,234.5", "12%", "-3") in the language's digits."""
    if lang != "fa":
        return text
    out = text.replace(",", "٬").replace(".", "٫").replace("%", "٪").translate(PERSIAN_DIGITS)
    # A sign or an exponent would be reordered by the RTL paragraph around it: isolate the number.
    return f"{_LRI}{out}{_PDI}" if re.search(r"[-+eE]", text) else out


def number(value: float | int, lang: str, spec: str = "") -> str:
    """format(value, spec) with the language's digits, e.g. number(1234.5, "fa", ",.1f") = ۱٬۲۳۴٫۵."""
    return localize_number(format(value, spec), lang)


def measure(name: str, value: float, lang: str) -> str:
    """A measured number as reports show it: FIDs with 2 decimals (none from 1,000 on: an untrained
    model's FID is in the thousands), counts (``classes_covered``) whole, the rest with 3 decimals."""
    if name.startswith("fid"):
        return number(value, lang, ",.0f" if value >= 1000 else ".2f")
    if name == "classes_covered":
        return number(int(value), lang)
    return number(value, lang, ".3f")


def localize_digits(text: str, lang: str) -> str:
    """Latin digits in running text (not code) written in the language's digits."""
    return text.translate(PERSIAN_DIGITS) if lang == "fa" else text


class _Formatter(string.Formatter):
    def __init__(self, lang: str) -> None:
        super().__init__()
        self.lang = lang

    def format_field(self, value: Any, format_spec: str) -> str:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return number(value, self.lang, format_spec)
        return super().format_field(value, format_spec)


def t(key: str, lang: str = DEFAULT_LANGUAGE, /, **values: Any) -> str:
    """The string `key` in `lang` (English when the translation lacks it), placeholders filled.

    A key missing from English too comes back as the key itself, so a typo shows on screen (and the
    catalog tests catch it) instead of crashing a page.
    """
    lang = check_language(lang)
    text = catalog(lang).get(key)
    if text is None:
        text = catalog(DEFAULT_LANGUAGE).get(key, key)
    return _Formatter(lang).format(text, **values) if values else text


def join(items: list[str], lang: str) -> str:
    """A list in running text: "a, b, c" / "a، b، c"."""
    return ("، " if lang == "fa" else ", ").join(items)


def placeholders(text: str) -> set[str]:
    """The placeholder names of a catalog string ("{kl:.1f} at {step}" -> {"kl", "step"})."""
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


@functools.cache   # read and encoded once per process, not on every rerun of a Persian page
def font_face_css(lang: str) -> str:
    """@font-face rules embedding Vazirmatn (SIL OFL, gm/i18n/fonts) for Persian, as data: URLs so the
    app and the exported report render Persian the same way offline, whatever fonts the OS has."""
    if lang != "fa":
        return ""
    import base64
    rules = []
    for weight, name in ((400, "Vazirmatn-Regular.woff2"), (700, "Vazirmatn-Bold.woff2")):
        data = base64.b64encode((FONTS / name).read_bytes()).decode()
        rules.append("@font-face { font-family: 'Vazirmatn'; font-style: normal; "
                     f"font-weight: {weight}; font-display: swap; "
                     f"src: url(data:font/woff2;base64,{data}) format('woff2'); }}")
    return "\n".join(rules)

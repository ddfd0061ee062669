"""Interface languages: every string of the app and the walkthrough, one TOML file per language.

    gm/i18n/en.toml     English (the reference: every key lives here)
    gm/i18n/fa.toml     Persian (فارسی), written right to left

A translator edits only those files: tables group the keys by page (``[train]``, ``[walkthrough.gan]``),
values are Markdown, and ``{name}`` or ``{value:.2f}`` placeholders are filled in by the code. In
Persian the numbers that fill placeholders are written with Persian digits and separators
(۱۲٬۳۴۵٫۶۷, ٪); text the translator writes should use Persian digits and punctuation (، ؛ ؟) too.
Maths and code stay left to right: keep `code spans`, model names and LaTeX as they are.

Right-to-left text and the Latin runs inside it (Unicode bidi, what the tests hold a translator to):

- A formula inside Persian text goes between dollars, ``$K_p / (1 + \\exp(e))$`` (KaTeX in the app,
  SVG in the HTML report), code between backticks; in a plain-text string (a chart title, an image
  caption) between the isolates U+2066 and U+2069 (``\\u2066D(G(z))\\u2069`` in the TOML file).
  Unisolated, the bidi algorithm splits it at the Persian word after it: "(1 + exp(e))" reads "((1 + exp(e".
- A value filled into a Persian string (``{name}``, ``{path}``, ``{error}``) that is Latin script is
  isolated (FSI…PDI, :func:`isolate`), so a run name or a path keeps its punctuation in place; except
  inside a code span or a link target, where the characters would be copied with the text. (Inside a
  formula nothing is filled: its braces, "$v_{KL}$", are TeX's.)
- A Persian string whose first letter is Latin ("**VAE** (مقالهٔ ...") gets an invisible right-to-left
  mark before that letter, so a box that takes its direction from the first strong letter (an alert's
  ``unicode-bidi: plaintext``, a report table's ``dir="auto"``) still reads it right to left, while an
  English message (a library error) in the same box reads left to right.
- Ordered lists are numbered "1." in every language (the Markdown syntax); the CSS draws Persian counters.

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
_FSI = "\u2068"                    # first-strong isolate: a run name, a path, an English message
_RLM = "\u200f"                    # right-to-left mark: an invisible strong right-to-left letter
ARABIC_LETTERS = "\u0600-\u065F\u066E-\u06D3\u06D5-\u06EF\u06FA-\u06FF\u0750-\u077F\uFB50-\uFDFF\uFE70-\uFEFF"
_ARABIC = re.compile(f"[{ARABIC_LETTERS}]")
_LATIN = re.compile(r"[A-Za-z\u00C0-\u024F\u0370-\u03FF]")   # Latin and Greek letters: left to right
_STRONG = re.compile(f"[A-Za-z\u00C0-\u024F\u0370-\u03FF{ARABIC_LETTERS}]")
# Inline maths, "$K_p / (1 + \\exp(e))$" (Pandoc's rule: no space inside the dollars, no digit after
# the closing one, so "$5 and $10" is none). Its braces are TeX's, never placeholders.
INLINE_MATH = r"\$(?=[^\s$])[^$\n]*?(?<=[^\s$\\])\$(?!\d)"
_INLINE_MATH = re.compile(f"({INLINE_MATH})")
# What a renderer keeps left to right as one unit: a code span, inline maths, an isolated run.
LTR_SPANS = re.compile(f"`[^`]*`|{INLINE_MATH}|[\u2066\u2067\u2068][^\u2069]*\u2069")


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


def isolate(text: str) -> str:
    """`text` as one unit inside text of the other direction (FSI ... PDI): a run name, a path or an
    English message inside Persian keeps its own order and punctuation, and the Persian around it
    keeps its own. Invisible; a browser, python-bidi and the report all honour it."""
    text = str(text)
    if not text or (text[0] in "\u2066\u2067\u2068" and text.endswith(_PDI)):
        return text
    return f"{_FSI}{text}{_PDI}"


def is_latin_script(text: str) -> bool:
    """Whether `text` has Latin (or Greek) letters and no Persian ones: an English message, a path, a
    run or model name."""
    return bool(_LATIN.search(text)) and not _ARABIC.search(text)


def right_to_left_start(text: str) -> str:
    """`text` with a right-to-left mark before its first strong letter when that letter is Latin but
    the text is Persian ("VAE آموزش‌دیده ..."): a paragraph that takes its direction from its first
    strong letter (CSS ``unicode-bidi: plaintext``, HTML ``dir="auto"``) then reads right to left.
    Code, formulas and isolated runs are skipped, as the bidi algorithm skips isolates."""
    plain = LTR_SPANS.sub(lambda m: " " * len(m.group()), text)
    first = _STRONG.search(plain)
    if first is None or not _LATIN.match(first.group()) or not _ARABIC.search(plain):
        return text
    return text[:first.start()] + _RLM + text[first.start():]


def _in_running_text(before: str) -> bool:
    """Whether a placeholder after `before` (the filled text so far) lands in running text, not in a
    code span or a link target, whose characters are copied or parsed as they are (formulas are never
    filled: their braces are TeX's)."""
    return before.count("`") % 2 == 0 and not re.search(r"\]\([^)\s]*$", before)


class _Formatter(string.Formatter):
    def __init__(self, lang: str) -> None:
        super().__init__()
        self.lang = lang

    def format_field(self, value: Any, format_spec: str) -> str:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return number(value, self.lang, format_spec)
        return super().format_field(value, format_spec)

    def fill(self, text: str, values: dict[str, Any]) -> str:
        """str.format(text, **values); in a right-to-left language a Latin-script value in running
        text comes isolated (numbers isolate themselves where they need to: localize_number)."""
        rtl = is_rtl(self.lang)
        out: list[str] = []
        for i, part in enumerate(_INLINE_MATH.split(text)):
            if i % 2:            # a formula: its braces are TeX's
                out.append(part)
                continue
            self._fill_part(part, values, rtl, out)
        return "".join(out)

    def _fill_part(self, text: str, values: dict[str, Any], rtl: bool, out: list[str]) -> None:
        for literal, name, spec, conversion in self.parse(text):
            out.append(literal)
            if name is None:
                continue
            value, _ = self.get_field(name, (), values)
            value = self.convert_field(value, conversion)
            spec = self.vformat(spec, (), values) if spec and "{" in spec else (spec or "")
            filled = self.format_field(value, spec)
            if (rtl and not isinstance(value, (int, float)) and is_latin_script(filled)
                    and _in_running_text("".join(out))):
                filled = isolate(filled)
            out.append(filled)


def t(key: str, lang: str = DEFAULT_LANGUAGE, /, **values: Any) -> str:
    """The string `key` in `lang` (English when the translation lacks it), placeholders filled.

    A key missing from English too comes back as the key itself, so a typo shows on screen (and the
    catalog tests catch it) instead of crashing a page. In a right-to-left language Latin-script values
    come isolated and a string that starts with a Latin word starts with a right-to-left mark (see the
    module's notes).
    """
    lang = check_language(lang)
    text = catalog(lang).get(key)
    if text is None:
        text = catalog(DEFAULT_LANGUAGE).get(key, key)
    if values:
        text = _Formatter(lang).fill(text, values)
    return right_to_left_start(text) if is_rtl(lang) else text


def join(items: list[str], lang: str) -> str:
    """A list in running text: "a, b, c" / "a، b، c"."""
    return ("، " if lang == "fa" else ", ").join(items)


def placeholders(text: str) -> set[str]:
    """The placeholder names of a catalog string ("{kl:.1f} at {step}" -> {"kl", "step"}); the braces
    of a formula ("$v_{KL}$") are TeX's."""
    return {name for part in _INLINE_MATH.split(text)[::2] for _, name, _, _ in string.Formatter().parse(part)
            if name}


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

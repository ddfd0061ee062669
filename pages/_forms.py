"""A Streamlit form generated from a config dataclass (gm.config.describe): one widget per field."""

from __future__ import annotations

from typing import Any

import streamlit as st

from gm import i18n
from gm.config import TrainConfig, describe, fields_of
from pages._ui import lang, t


def config_widgets(config_cls: type, values: dict[str, Any], key: str,
                   caps: dict[str, float] | None = None) -> dict[str, Any]:
    """Render widgets for every UI field; returns {field: value}. Common training fields go last.
    `caps` lowers some fields' maxima (the hosted demo's width and batch size)."""
    common = {f.name for f in fields_of(TrainConfig)}
    fields = [_capped(f, (caps or {}).get(f["name"])) for f in describe(config_cls) if f["ui"]]
    out: dict[str, Any] = {}
    model_fields = [f for f in fields if f["name"] not in common]
    train_fields = [f for f in fields if f["name"] in common]
    cols = st.columns(3)
    for i, f in enumerate(model_fields):
        with cols[i % 3]:
            out[f["name"]] = _widget(f, values.get(f["name"], f["default"]), key)
    with st.expander(t("train.common_settings")):
        cols = st.columns(3)
        for i, f in enumerate(train_fields):
            with cols[i % 3]:
                out[f["name"]] = _widget(f, values.get(f["name"], f["default"]), key)
    return out


def field_label(name: str) -> str:
    """A config field's label: its name in words ([field] in the catalogs), then the name itself as
    code, which is what `--set`, config.json and the papers' readers know it by ("Learning rate `lr`")."""
    return f"{t(f'field.{name}')} `{name}`"


def field_help(name: str, english: str) -> str:
    """A config field's help text: the dataclass's English, or its translation under [config] in the
    language's catalog."""
    text = i18n.catalog(lang()).get(f"config.{name}")
    return english if text is None else t(f"config.{name}")


def _capped(f: dict[str, Any], cap: float | None) -> dict[str, Any]:
    if cap is None or f["type"] not in ("int", "float"):
        return f
    return {**f, "max": cap if f["max"] is None else min(f["max"], cap)}


def _within(f: dict[str, Any], value: Any) -> Any:
    """A default inside the field's bounds (a number_input refuses a value above its maximum)."""
    if f["type"] in ("int", "float") and isinstance(value, (int, float)):
        if f["max"] is not None and value > f["max"]:
            value = f["max"]
        if f["min"] is not None and value < f["min"]:
            value = f["min"]
    return value


def _widget(f: dict[str, Any], value: Any, key: str) -> Any:
    label, help_text, wkey = field_label(f["name"]), field_help(f["name"], f["help"]), f"{key}.{f['name']}"
    value = _within(f, value)
    if f["choices"]:
        choices = list(f["choices"])
        return st.selectbox(label, choices, index=choices.index(value) if value in choices else 0,
                            help=help_text, key=wkey)
    if f["type"] == "bool":
        return st.checkbox(label, value=bool(value), help=help_text, key=wkey)
    # No min/max on the widgets: out of range, a number_input only turns red and the form's submit
    # then does nothing, silently (inside a collapsed section the user sees nothing at all). The
    # config's own check refuses the value at Start with one sentence naming the field.
    if f["type"] == "int":
        return int(st.number_input(label, value=int(value), step=1, help=help_text, key=wkey))
    if f["type"] == "float":
        small = value != 0 and abs(value) < 1e-2
        return float(st.number_input(label, value=float(value), help=help_text, key=wkey,
                                     format="%.2e" if small else "%g",
                                     step=float(value) / 10 if small else None))
    return st.text_input(label, value=str(value), help=help_text, key=wkey)

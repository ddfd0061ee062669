"""Interaction reruns only what it changes: on the pages people drag and pick on (Explore, Monitor,
Compare), every widget lives in an st.fragment, so a slider, a seed or a picker reruns its view,
not the page, its sidebar (which lists every run) and the other views.

A whole-page rerun per slider step is what made a latent slider take 0.4-0.6 s in the browser
(bench/browser_latency.py measures the result); this test keeps a new widget from landing outside.
"""

from __future__ import annotations

import ast

import pytest

from tests.conftest import REPO

WIDGETS = {"slider", "select_slider", "selectbox", "multiselect", "number_input", "toggle", "radio",
           "text_input", "checkbox", "segmented_control", "pills", "button", "download_button", "localized"}
# Widgets that change what the whole page is about: a page rerun is what they should cause.
PAGE_LEVEL = {("pages/compare.py", "cmp.runs")}


def _is_fragment(func: ast.FunctionDef) -> bool:
    for deco in func.decorator_list:
        target = deco.func if isinstance(deco, ast.Call) else deco
        if isinstance(target, ast.Attribute) and target.attr == "fragment":
            return True
    return False


def _widget_calls(tree: ast.AST):
    """(call, key, inside a fragment) for every widget call of a page."""
    def walk(node: ast.AST, in_fragment: bool):
        for child in ast.iter_child_nodes(node):
            inside = in_fragment or (isinstance(child, ast.FunctionDef) and _is_fragment(child))
            if isinstance(child, ast.Call) and isinstance(child.func, ast.Attribute) and child.func.attr in WIDGETS:
                key = next((k.value.value for k in child.keywords if k.arg == "key" and isinstance(k.value, ast.Constant)),
                           None)
                yield child, key, in_fragment
            yield from walk(child, inside)
    yield from walk(tree, False)


@pytest.mark.parametrize("page", ["pages/explore.py", "pages/monitor.py", "pages/compare.py"])
def test_every_widget_of_an_interactive_page_is_in_a_fragment(page):
    tree = ast.parse((REPO / page).read_text(encoding="utf-8"))
    outside = [f"line {call.lineno}: {call.func.attr}(key={key!r})" for call, key, inside in _widget_calls(tree)
               if not inside and (page, key) not in PAGE_LEVEL]
    assert not outside, f"{page} reruns the whole page for: {outside}"

"""What a walkthrough step is made of: a list of blocks that the app draws and the report writes.

One list serves both, so the page and the exported HTML can never disagree about what a step
shows. Deliverables (the charts, grids and numbers the assignment asks for) carry a stable `key`
such as "gan.grid_final": the page uses it for widget keys, the export for file names, the tests to
check that each deliverable is present.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np


@dataclass
class Metric:
    label: str
    value: str                 # formatted for the language ("—" when not measured)
    help: str = ""
    raw: float | None = None   # the number itself, for CSV/JSON export


@dataclass
class Block:
    kind: str                  # markdown | equation | chart | image | table | metrics | demo | train | note
    key: str = ""              # deliverable id ("vae.losses"); empty for plain text
    text: str = ""             # markdown, a LaTeX equation, or a note
    caption: str = ""
    figure: Any = None         # plotly Figure (chart, demo)
    image: np.ndarray | Path | None = None   # uint8 grid, or a PNG file (saved sample grids)
    rows: list[dict[str, Any]] | None = None  # table rows (column label -> cell)
    metrics: list[Metric] = field(default_factory=list)
    role: str = ""             # the role a train / measure block acts on
    level: str = "info"        # note: info | warning

    @property
    def deliverable(self) -> bool:
        return bool(self.key) and self.kind in ("chart", "image", "table", "metrics", "demo")


def markdown(text: str) -> Block:
    return Block("markdown", text=text)


def equation(latex: str) -> Block:
    return Block("equation", text=latex)


def chart(key: str, figure: Any, caption: str = "") -> Block:
    return Block("chart", key=key, figure=figure, caption=caption)


def image(key: str, grid: np.ndarray | Path, caption: str) -> Block:
    return Block("image", key=key, image=grid, caption=caption)


def table(key: str, rows: list[dict[str, Any]], caption: str = "") -> Block:
    return Block("table", key=key, rows=rows, caption=caption)


def metrics(key: str, items: list[Metric], caption: str = "", role: str = "") -> Block:
    return Block("metrics", key=key, metrics=items, caption=caption, role=role)


def note(text: str, level: str = "info") -> Block:
    return Block("note", text=text, level=level)


def train(role: str, text: str) -> Block:
    return Block("train", role=role, text=text)

"""The playground's picture as pixels: decision surface, real and generated points, gradient field.

Drawn with numpy and PIL in a few milliseconds, like GAN Lab's canvas, so the page can redraw it
several times a second while the networks train (a plotly figure of 4,096 surface cells, 1,024
points and 512 arrows costs about ten times more to build and serialise on the server).

Colours follow GAN Lab: green where D says "real", purple where it says "generated"; real points
green, generated points purple, arrows (where G's loss pushes each generated point) orange.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from gm.playground.session import Snapshot

REAL = (27, 158, 119)          # green
FAKE = (117, 80, 190)          # purple
ARROW = (230, 120, 20)         # orange
BACKGROUND = (255, 255, 255)


@dataclass(frozen=True)
class Layers:
    """What to draw (the page's check boxes)."""

    surface: bool = True
    real: bool = True
    fake: bool = True
    gradients: bool = True


def surface_shade(snapshot: Snapshot) -> np.ndarray:
    """D's output on the grid mapped to [-1, 1]: +1 sure "real", -1 sure "generated", 0 undecided.

    A probability (NS loss) maps 0.5 to 0; a raw score (Wasserstein, hinge, least squares) is
    centred on its decision threshold (0, or 0.5 for least squares) and scaled by its largest
    distance from it on the grid, so the picture shows where D leans, whatever its scale.
    """
    s = np.asarray(snapshot.surface, dtype=np.float64)
    if snapshot.surface_kind == "probability":
        return np.clip(2 * s - 1, -1, 1)
    centre = 0.5 if snapshot.loss == "ls" else 0.0
    s = s - centre
    scale = float(np.nanmax(np.abs(s))) if s.size else 0.0
    return np.clip(s / scale, -1, 1) if scale > 0 else np.zeros_like(s)


def _surface_rgb(shade: np.ndarray) -> np.ndarray:
    """[-1, 1] -> RGB between purple (-1), white (0) and green (+1), pale so points stay visible."""
    strength = 0.45 * np.abs(shade)[..., None]
    colour = np.where(shade[..., None] >= 0, np.array(REAL), np.array(FAKE))
    return (np.array(BACKGROUND) * (1 - strength) + colour * strength).astype(np.uint8)


def render(snapshot: Snapshot, size: int = 480, layers: Layers = Layers()) -> np.ndarray:
    """The picture, uint8 [size, size, 3]; y grows upwards as in a plot."""
    xmin, xmax, ymin, ymax = snapshot.extent

    def to_px(points: np.ndarray) -> np.ndarray:
        px = (points[:, 0] - xmin) / (xmax - xmin) * (size - 1)
        py = (ymax - points[:, 1]) / (ymax - ymin) * (size - 1)
        return np.stack([px, py], axis=1)

    if layers.surface:
        rgb = _surface_rgb(surface_shade(snapshot))[::-1]          # row 0 of the grid is the bottom
        image = Image.fromarray(rgb, "RGB").resize((size, size), Image.BILINEAR)
    else:
        image = Image.new("RGB", (size, size), BACKGROUND)
    draw = ImageDraw.Draw(image)
    r = max(1.5, size / 240)
    if layers.real:
        for x, y in to_px(snapshot.real):
            draw.ellipse((x - r, y - r, x + r, y + r), fill=REAL)
    if layers.gradients and len(snapshot.gradients):
        g = np.asarray(snapshot.gradients, dtype=np.float64)
        norms = np.linalg.norm(g, axis=1)
        top = float(np.percentile(norms, 95)) if np.isfinite(norms).all() else 0.0
        if top > 0:
            # An arrow's length is its push relative to the strongest ones (95th percentile), at most
            # a twelfth of the plot: lengths compare within one picture, outliers do not dwarf the rest.
            reach = (xmax - xmin) / 12 * np.minimum(norms, top) / top
            ends = snapshot.fake + g / np.maximum(norms, 1e-12)[:, None] * reach[:, None]
            for (x0, y0), (x1, y1) in zip(to_px(snapshot.fake), to_px(ends)):
                draw.line((x0, y0, x1, y1), fill=ARROW, width=1)
    if layers.fake:
        for x, y in to_px(snapshot.fake):
            draw.ellipse((x - r, y - r, x + r, y + r), fill=FAKE)
    return np.asarray(image)

"""Small live demonstrations computed with the real modules: PixelShuffle on a numbered tensor, and
the layer-by-layer shapes of a network (which is how the tables' blanks are found)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots
from torch import nn

# Modules that neither change the shape nor carry the architecture's story: folded into the row of
# the layer before them ("Linear 64 → 512, then BatchNorm1d, ReLU").
_FOLDED = (nn.BatchNorm1d, nn.BatchNorm2d, nn.ReLU, nn.LeakyReLU, nn.Tanh, nn.Sigmoid, nn.Dropout)


def pixel_shuffle(r: int = 2, out_channels: int = 1, size: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """(input C·r² x size x size numbered 0, 1, 2, ..., nn.PixelShuffle(r) of it: C x r·size x r·size)."""
    c_in = out_channels * r * r
    x = torch.arange(c_in * size * size, dtype=torch.float32).reshape(1, c_in, size, size)
    return x[0].numpy(), nn.PixelShuffle(r)(x)[0].numpy()


def pixel_shuffle_figure(r: int = 2, out_channels: int = 1, size: int = 2, *, input_title: str = "input",
                         output_title: str = "output", number: Callable[[int], str] = str) -> go.Figure:
    """Input channels side by side over the output: every cell shows its number and is coloured by
    the input channel it came from, so the interleaving (output[c, h·r+i, w·r+j] =
    input[c·r² + i·r + j, h, w]) can be read off the picture. `number` writes the channel numbers of
    the titles in the language's digits (the cells hold the tensor's values, as code prints them)."""
    x, y = pixel_shuffle(r, out_channels, size)
    c_in = x.shape[0]
    per_channel = size * size
    fig = make_subplots(rows=2, cols=c_in, row_heights=[0.35, 0.65], vertical_spacing=0.12,
                        specs=[[{} for _ in range(c_in)], [{"colspan": c_in}] + [None] * (c_in - 1)],
                        subplot_titles=[f"{input_title} {number(k)}" for k in range(c_in)] + [output_title])
    scale = "Turbo"
    for k in range(c_in):
        fig.add_trace(go.Heatmap(z=np.full((size, size), k), text=x[k].astype(int), texttemplate="%{text}",
                                 zmin=0, zmax=max(1, c_in - 1), colorscale=scale, showscale=False,
                                 hoverinfo="skip", xgap=2, ygap=2), row=1, col=1 + k)
    out = y.reshape(-1, y.shape[-1]) if out_channels > 1 else y[0]
    fig.add_trace(go.Heatmap(z=(out // per_channel).astype(int), text=out.astype(int), texttemplate="%{text}",
                             zmin=0, zmax=max(1, c_in - 1), colorscale=scale, showscale=False,
                             hoverinfo="skip", xgap=2, ygap=2), row=2, col=1)
    fig.update_xaxes(showticklabels=False)
    fig.update_yaxes(showticklabels=False, autorange="reversed")
    fig.update_layout(height=420, margin={"l": 10, "r": 10, "t": 40, "b": 10})
    return fig


# Heads worth naming in a shape table (the VAE's two fully connected heads: the assignment asks how
# the last encoder row was built).
_HEADS = {"fc_mu": "μ", "fc_logvar": "log σ²"}


def describe_layer(m: nn.Module, name: str = "") -> str:
    if isinstance(m, nn.Linear):
        head = _HEADS.get(name.rsplit(".", 1)[-1])
        return f"Linear {m.in_features} → {m.out_features}" + (f" ({head})" if head else "")
    if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
        kind = "ConvT" if isinstance(m, nn.ConvTranspose2d) else "Conv"
        k, s, p = m.kernel_size, m.stride, m.padding
        return f"{kind} {k[0]}x{k[1]} {m.in_channels} → {m.out_channels} (s{s[0]}, p{p[0]})"
    if isinstance(m, nn.PixelShuffle):
        return f"PixelShuffle({m.upscale_factor})"
    return type(m).__name__


def layer_shapes(module: nn.Module, x: torch.Tensor) -> list[dict[str, str]]:
    """One row per shape-changing leaf module in forward order: layer, input shape, output shape and
    the activations/normalisations that follow it (batch dimension dropped)."""
    rows: list[dict[str, str]] = []

    def shape(t: torch.Tensor) -> str:
        return " x ".join(str(d) for d in t.shape[1:])

    def hook(m: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        if isinstance(m, _FOLDED) and rows:
            rows[-1]["then"] = ", ".join(filter(None, [rows[-1]["then"], type(m).__name__]))
            return
        rows.append({"layer": describe_layer(m, names.get(id(m), "")), "input": shape(inputs[0]), "output": shape(output), "then": ""})

    names = {id(m): name for name, m in module.named_modules()}
    leaves = [m for m in module.modules() if not list(m.children())]
    handles = [m.register_forward_hook(hook) for m in leaves]
    was = module.training
    try:
        module.eval()
        with torch.no_grad():
            module(x)
    finally:
        module.train(was)
        for h in handles:
            h.remove()
    return rows

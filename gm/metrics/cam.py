"""Class activation maps (Zhou et al., 2016) of the MNIST classifier.

The classifier ends in global average pooling and one linear layer, so the score of class c is the
average over positions of M_c(x, y) = Σ_k w_k^c f_k(x, y): the map M_c shows where the evidence for
c lies. Maps are upsampled (bilinear) to the input size.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from gm.errors import GMError
from gm.metrics.classifiers import LoadedClassifier, MNISTClassifier, prepare


@dataclass
class CAMResult:
    heatmaps: np.ndarray      # N x H x W in [0, 1] (each map scaled by its own min and max)
    raw: np.ndarray           # N x H x W, unscaled M_c
    classes: np.ndarray       # the class each map explains
    predicted: np.ndarray     # the classifier's prediction
    probabilities: np.ndarray  # N x 10 softmax


@torch.no_grad()
def class_activation_maps(classifier: LoadedClassifier | MNISTClassifier, images: torch.Tensor,
                          classes: torch.Tensor | np.ndarray | list[int] | None = None) -> CAMResult:
    """CAM heatmaps of images in [0, 1] (N x C x H x W) for the given classes (default: predicted)."""
    model = classifier.model if isinstance(classifier, LoadedClassifier) else classifier
    if not isinstance(model, MNISTClassifier):
        raise GMError("CAM needs the MNIST classifier (it ends in global average pooling + one linear layer).")
    if images.dim() == 3:
        images = images.unsqueeze(1)
    device = next(model.parameters()).device
    x = prepare(images, model.input_size).to(device)
    maps = model.maps(x)                                    # N x K x h x w
    logits = model.fc(maps.mean(dim=(2, 3)))
    predicted = logits.argmax(1)
    target = predicted if classes is None else torch.as_tensor(np.asarray(classes), device=device).long()
    if target.shape != predicted.shape:
        raise GMError(f"Give one class per image ({images.shape[0]}); got {tuple(target.shape)}.")
    weights = model.fc.weight[target]                       # N x K
    cam = torch.einsum("nk,nkhw->nhw", weights, maps) + model.fc.bias[target][:, None, None]
    cam = F.interpolate(cam[:, None], size=tuple(images.shape[-2:]), mode="bilinear", align_corners=False)[:, 0]
    lo = cam.amin(dim=(1, 2), keepdim=True)
    hi = cam.amax(dim=(1, 2), keepdim=True)
    scaled = (cam - lo) / (hi - lo).clamp(min=1e-8)
    return CAMResult(scaled.cpu().numpy(), cam.cpu().numpy(), target.cpu().numpy(), predicted.cpu().numpy(),
                     logits.softmax(1).cpu().numpy())


def overlay(images: torch.Tensor, heatmaps: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """uint8 N x H x W x 3: grey images under a black-red-yellow heat colour scale."""
    g = images.float().clamp(0, 1)
    g = g.mean(dim=1) if g.dim() == 4 else g
    g = g.cpu().numpy()[..., None].repeat(3, axis=-1)
    h = np.asarray(heatmaps, dtype=np.float32)
    heat = np.stack([np.clip(2 * h, 0, 1), np.clip(2 * h - 1, 0, 1), np.zeros_like(h)], axis=-1)
    return (255 * ((1 - alpha) * g + alpha * heat) + 0.5).astype(np.uint8)

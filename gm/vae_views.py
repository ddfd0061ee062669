"""What users look at in a trained VAE: prior samples, reconstructions, latent traversals, sliders.

Every function takes a VAE model object (``gm.load_model`` of a VAE-family run), a trainer of one, or a
bare :class:`gm.models.vae.VAE`, runs in eval mode
without gradients, and returns float images in [0, 1] (N x C x H x W) or, for the ``*_grid``
variants, a uint8 numpy grid from :func:`gm.images.make_grid` ready for ``st.image`` or a PNG.
No Streamlit here: the app's pages call these.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from gm.errors import GMError
from gm.images import make_grid, to_png_bytes
from gm.models.vae import VAE


def vae_of(model: object) -> VAE:
    """The VAE network of a model object or trainer (``.vae``), or the network itself."""
    vae = model if isinstance(model, VAE) else getattr(model, "vae", None)
    if not isinstance(vae, VAE):
        raise GMError(f"Expected a VAE-family model, got {type(model).__name__}; the VAE views work "
                      f"with models that encode (vae, betavae, controlvae): not available for this model.")
    return vae


def _max_value(model: object) -> int:
    return int(getattr(model, "max_value", 1))


@contextlib.contextmanager
def _eval(vae: VAE) -> Iterator[None]:
    """No autograd. The train/eval flag is left alone on purpose: the VAE has no dropout or batch
    norm, and the app may call these on a trainer whose training thread is running."""
    with torch.no_grad():
        yield


def _device(vae: VAE) -> torch.device:
    return next(vae.parameters()).device


def _as_unit(images: torch.Tensor, max_value: int) -> torch.Tensor:
    """uint8 images (0..max_value) or float images in [0, 1] -> float N x C x H x W in [0, 1]."""
    if images.dim() == 3:
        images = images.unsqueeze(1)
    if images.dim() != 4:
        raise GMError(f"Images must be N x C x H x W (or N x H x W); got shape {tuple(images.shape)}.")
    if images.dtype == torch.uint8:
        return images.float() / max_value
    return images.float().clamp(0, 1)


def _codes(z: torch.Tensor | Sequence[float] | np.ndarray, latent_dim: int) -> torch.Tensor:
    z = torch.as_tensor(np.asarray(z, dtype=np.float32)) if not isinstance(z, torch.Tensor) else z
    z = z.float()
    if z.dim() == 1:
        z = z.unsqueeze(0)
    if z.dim() != 2 or z.shape[1] != latent_dim:
        raise GMError(f"A latent code must have {latent_dim} values; got shape {tuple(z.shape)}.")
    return z


# ---- encode / decode (fast enough for live sliders) -----------------------------------------
def encode(model: object, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(mu, logvar) of q(z|x) for a batch of images (uint8 or float in [0, 1]); both N x latent_dim."""
    vae = vae_of(model)
    x = _as_unit(images, _max_value(model)).to(_device(vae))
    with _eval(vae):
        mu, logvar = vae.encoder(x)
    return mu.float().cpu(), logvar.float().cpu()


def decode(model: object, z: torch.Tensor | Sequence[float] | np.ndarray) -> torch.Tensor:
    """Images in [0, 1] (N x C x H x W, on the CPU) for latent codes (N x latent_dim, or one code)."""
    vae = vae_of(model)
    codes = _codes(z, vae.latent_dim).to(_device(vae))
    with _eval(vae):
        return torch.sigmoid(vae.decoder(codes)).float().cpu()


def decode_png(model: object, z: torch.Tensor | Sequence[float] | np.ndarray, scale: int = 4) -> bytes:
    """One code -> PNG bytes (nearest-neighbour upscaled by `scale`): what a slider page shows."""
    image = decode(model, z)[:1]
    return to_png_bytes(make_grid(image, 1, padding=0), scale)


# ---- prior samples and reconstructions -------------------------------------------------------
def prior_samples(model: object, rows: int = 5, cols: int = 10, seed: int = 0) -> torch.Tensor:
    """rows*cols decodings of z ~ N(0, I) (the assignment's 5 x 10 grid by default), reproducible."""
    vae = vae_of(model)
    if rows < 1 or cols < 1:
        raise GMError("A sample grid needs at least one row and one column.")
    gen = torch.Generator(device="cpu").manual_seed(seed)
    z = torch.randn((rows * cols, vae.latent_dim), generator=gen)
    return decode(vae, z)


def prior_grid(model: object, rows: int = 5, cols: int = 10, seed: int = 0) -> np.ndarray:
    return make_grid(prior_samples(model, rows, cols, seed), cols)


def reconstruct(model: object, images: torch.Tensor, *, sample: bool = False,
                seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """(originals, reconstructions) in [0, 1]. Decodes the posterior mean, or a draw when `sample`."""
    vae = vae_of(model)
    x = _as_unit(images, _max_value(model))
    mu, logvar = encode(vae, x)
    z = mu
    if sample:
        gen = torch.Generator(device="cpu").manual_seed(seed)
        z = mu + torch.randn(mu.shape, generator=gen) * torch.exp(0.5 * logvar)
    return x.cpu(), decode(vae, z)


def reconstruction_grid(model: object, images: torch.Tensor, per_row: int = 10) -> np.ndarray:
    """Originals and their reconstructions in alternating rows (originals above), `per_row` each."""
    originals, recons = reconstruct(model, images)
    rows = []
    for start in range(0, originals.shape[0], per_row):
        part_o, part_r = originals[start:start + per_row], recons[start:start + per_row]
        if part_o.shape[0] < per_row:  # pad the last pair of rows so the two stay aligned
            pad = torch.zeros((per_row - part_o.shape[0], *part_o.shape[1:]))
            part_o, part_r = torch.cat([part_o, pad]), torch.cat([part_r, pad])
        rows += [part_o, part_r]
    return make_grid(torch.cat(rows), per_row)


# ---- latent traversals and interpolation -----------------------------------------------------
def dims_by_kl(kl_dims: Sequence[float]) -> list[int]:
    """Latent dimensions, most informative (highest KL) first; ties keep index order."""
    return sorted(range(len(kl_dims)), key=lambda d: (-float(kl_dims[d]), d))


@dataclass
class Traversal:
    images: torch.Tensor      # len(dims) * len(values) x C x H x W, one row per dimension
    dims: list[int]           # the dimension each row sweeps
    values: list[float]       # the values every row sweeps through
    kl_dims: list[float] | None = None   # KL of each swept dimension, when known

    def grid(self) -> np.ndarray:
        return make_grid(self.images, len(self.values))


def traversal(model: object, z: torch.Tensor | Sequence[float] | np.ndarray | None = None, *,
              dims: Sequence[int] | None = None, kl_dims: Sequence[float] | None = None,
              span: float = 2.5, steps: int = 9) -> Traversal:
    """Sweep each latent dimension over [-span, span] while the others stay at code `z` (default 0).

    Rows follow `dims` when given, else the dimensions ordered by `kl_dims` (highest first) when
    given, else index order. Centred at 0 rather than at z[d] so every row shows the same values.
    """
    vae = vae_of(model)
    if steps < 2:
        raise GMError("A traversal needs at least 2 steps.")
    if span <= 0:
        raise GMError(f"The traversal span must be positive; got {span}.")
    base = torch.zeros(vae.latent_dim) if z is None else _codes(z, vae.latent_dim)[0]
    if kl_dims is not None and len(kl_dims) != vae.latent_dim:
        raise GMError(f"kl_dims has {len(kl_dims)} values but the latent has {vae.latent_dim}.")
    if dims is None:
        dims = dims_by_kl(kl_dims) if kl_dims is not None else list(range(vae.latent_dim))
    dims = [int(d) for d in dims]
    bad = [d for d in dims if not 0 <= d < vae.latent_dim]
    if bad or not dims:
        raise GMError(f"Traversal dimensions must be between 0 and {vae.latent_dim - 1}; got {dims}.")
    values = torch.linspace(-span, span, steps)
    codes = base.repeat(len(dims) * steps, 1)
    for row, d in enumerate(dims):
        codes[row * steps:(row + 1) * steps, d] = values
    kls = [float(kl_dims[d]) for d in dims] if kl_dims is not None else None
    return Traversal(decode(vae, codes), dims, values.tolist(), kls)


def interpolate(model: object, z0: torch.Tensor | Sequence[float] | np.ndarray,
                z1: torch.Tensor | Sequence[float] | np.ndarray, steps: int = 10) -> torch.Tensor:
    """Decodings of `steps` codes on the straight line from z0 to z1 (both ends included)."""
    vae = vae_of(model)
    if steps < 2:
        raise GMError("An interpolation needs at least 2 steps.")
    a, b = _codes(z0, vae.latent_dim)[0], _codes(z1, vae.latent_dim)[0]
    t = torch.linspace(0, 1, steps).unsqueeze(1)
    return decode(vae, (1 - t) * a + t * b)


def interpolation_grid(model: object, z0, z1, steps: int = 10) -> np.ndarray:
    return make_grid(interpolate(model, z0, z1, steps), steps)

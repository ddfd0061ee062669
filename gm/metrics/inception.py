"""Inception features for FID: pytorch-fid's own `InceptionV3` (2048-d final average pool).

Exactly pytorch-fid's pipeline, minus the PNG round trip: images in [0, 1] are fed in memory in
batches, grayscale is repeated to three channels (as its loader's RGB conversion does), and the model
itself resizes to 299x299 (bilinear, align_corners=False) and scales to [-1, 1].

Weights: ``pt_inception-2015-12-05-6726825d.pth``, looked for in the torch hub checkpoint folder
(``$TORCH_HOME/hub/checkpoints``, default ``~/.cache/torch/hub/checkpoints``) or at a path the user
gives; when absent it is downloaded once (as pytorch-fid does) and, offline, one sentence says where
to put it. The file is read with ``torch.load(..., weights_only=True)``, which only rebuilds tensors
and plain containers: no pickled code from a user-provided file is ever executed.
"""

from __future__ import annotations

import os
import threading
import urllib.request
from pathlib import Path

import numpy as np
import torch
from torch import nn

from gm.errors import GMError
from gm.metrics.features import file_sha256

WEIGHTS_FILE = "pt_inception-2015-12-05-6726825d.pth"
WEIGHTS_URL = ("https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/"
               "pt_inception-2015-12-05-6726825d.pth")
WEIGHTS_SHA256_PREFIX = "6726825d"   # torch hub convention: the file name carries its hash prefix
FEATURE_DIM = 2048
EXTRACTOR = "inception-v3-pool3-2048 (pytorch-fid 0.3.0)"
DOWNLOAD_TIMEOUT_S = 20


def hub_checkpoints_dir() -> Path:
    """Where torch hub (and pytorch-fid) keep downloaded weights: $TORCH_HOME/hub/checkpoints."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def missing_weights_message(folder: Path | None = None) -> str:
    folder = folder or hub_checkpoints_dir()
    return (f"Inception weights for FID are not available offline: put {WEIGHTS_FILE} (from {WEIGHTS_URL}) "
            f"into {folder} (that is $TORCH_HOME/hub/checkpoints, default ~/.cache/torch/hub/checkpoints) "
            f"or pass --inception-weights PATH, or use --features classifier.")


def _download(url: str, dst: Path) -> None:
    """Fetch url to dst through a temporary file (a separate function so tests can block it)."""
    tmp = dst.with_name(f".{dst.name}.part-{os.getpid()}")
    try:
        with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as resp, open(tmp, "wb") as fh:
            for block in iter(lambda: resp.read(1 << 20), b""):
                fh.write(block)
        os.replace(tmp, dst)
    finally:
        tmp.unlink(missing_ok=True)


def find_weights(path: str | os.PathLike | None = None, *, download: bool = True) -> Path:
    """The Inception weights file: `path` if given, else the hub folder's copy (downloaded if possible)."""
    if path:
        p = Path(path).expanduser()
        if not p.is_file():
            raise GMError(f"--inception-weights {p} is not a file; point it at {WEIGHTS_FILE}.")
        return p
    folder = hub_checkpoints_dir()
    target = folder / WEIGHTS_FILE
    if target.is_file():
        return target
    if download:
        try:
            folder.mkdir(parents=True, exist_ok=True)
            _download(WEIGHTS_URL, target)
        except Exception:  # offline, proxy, read-only folder: all end in the same advice
            raise GMError(missing_weights_message(folder)) from None
        if not file_sha256(target).startswith(WEIGHTS_SHA256_PREFIX):
            target.unlink(missing_ok=True)
            raise GMError(f"The downloaded {WEIGHTS_FILE} is corrupt (hash mismatch); " + missing_weights_message(folder))
        return target
    raise GMError(missing_weights_message(folder))


def fid_inception_skeleton() -> nn.Module:
    """pytorch-fid's FID Inception (torchvision Inception v3 with its FID blocks), weights not loaded."""
    import pytorch_fid.inception as pfi

    inception = pfi._inception_v3(num_classes=1008, aux_logits=False, weights=None)
    inception.Mixed_5b = pfi.FIDInceptionA(192, pool_features=32)
    inception.Mixed_5c = pfi.FIDInceptionA(256, pool_features=64)
    inception.Mixed_5d = pfi.FIDInceptionA(288, pool_features=64)
    inception.Mixed_6b = pfi.FIDInceptionC(768, channels_7x7=128)
    inception.Mixed_6c = pfi.FIDInceptionC(768, channels_7x7=160)
    inception.Mixed_6d = pfi.FIDInceptionC(768, channels_7x7=160)
    inception.Mixed_6e = pfi.FIDInceptionC(768, channels_7x7=192)
    inception.Mixed_7b = pfi.FIDInceptionE_1(1280)
    inception.Mixed_7c = pfi.FIDInceptionE_2(2048)
    return inception


def _randomize(net: nn.Module, seed: int) -> nn.Module:
    """Seeded Kaiming-normal convolutions, in place.

    They keep the activations' scale through the ~90 layers (PyTorch's default init shrinks them to
    almost nothing), so random-weight features and FIDs are ordinary numbers.
    """
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in net.named_parameters():
            if name.endswith("conv.weight"):
                p.copy_(torch.randn(p.shape, generator=gen) * (2.0 / p[0].numel()) ** 0.5)
    return net


def random_state_dict(seed: int = 0) -> dict[str, torch.Tensor]:
    """Seeded random weights in the layout of the real weights file (tests and benchmarks)."""
    return _randomize(fid_inception_skeleton(), seed).state_dict()


_build_lock = threading.Lock()


def _build(make_net) -> nn.Module:
    """pytorch_fid.inception.InceptionV3 (2048-d block) around the network `make_net()` returns.

    InceptionV3's constructor fetches its weights through the module-level `fid_inception_v3`; we swap
    that function for `make_net` (under a lock: the swap is process-wide), so the network is
    pytorch-fid's own class, built without touching the network.
    """
    import pytorch_fid.inception as pfi

    with _build_lock:
        original = pfi.fid_inception_v3
        pfi.fid_inception_v3 = make_net
        try:
            model = pfi.InceptionV3([pfi.InceptionV3.BLOCK_INDEX_BY_DIM[FEATURE_DIM]])
        finally:
            pfi.fid_inception_v3 = original
    return model.eval()


def build_inception(state_dict: dict[str, torch.Tensor]) -> nn.Module:
    """pytorch-fid's InceptionV3 holding the given weights (as from the .pth file), in eval mode."""
    def loaded() -> nn.Module:
        net = fid_inception_skeleton()
        try:
            net.load_state_dict(state_dict)
        except (RuntimeError, KeyError) as exc:
            raise GMError(f"The Inception weights do not fit pytorch-fid's InceptionV3 "
                          f"({str(exc).splitlines()[0][:120]}); use {WEIGHTS_FILE}.") from None
        return net

    return _build(loaded)


def load_state_dict_file(path: Path) -> dict[str, torch.Tensor]:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise GMError(f"{path} is not a readable PyTorch weights file ({type(exc).__name__}); use "
                      f"{WEIGHTS_FILE}.") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise GMError(f"{path} does not hold a state dict of tensors; use {WEIGHTS_FILE}.")
    return state


class InceptionFeatures:
    """Callable: images in [0, 1] (N x C x H x W, C = 1 or 3) -> float64 N x 2048 pool features."""

    kind = "inception"
    dims = FEATURE_DIM
    name = EXTRACTOR

    def __init__(self, model: nn.Module, weights_hash: str, device: torch.device, batch_size: int = 50) -> None:
        self.model = model.to(device)
        self.weights_hash = weights_hash
        self.device = device
        self.batch_size = batch_size

    @torch.inference_mode()
    def __call__(self, images: torch.Tensor) -> np.ndarray:
        x = images.to(self.device, torch.float32)
        if x.dim() == 3:
            x = x.unsqueeze(1)
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        elif x.shape[1] != 3:
            raise GMError(f"Inception features need 1 or 3 channels; got {x.shape[1]}.")
        out = self.model(x.contiguous())[0]
        return out.reshape(out.shape[0], -1).double().cpu().numpy()


_loaded: dict[tuple[str, str], InceptionFeatures] = {}
_loaded_lock = threading.Lock()


def load_inception(weights: str | os.PathLike | None = None, device: torch.device | str = "cpu", *,
                   download: bool = True) -> InceptionFeatures:
    """The FID Inception with real weights (memoised per weights file and device)."""
    path = find_weights(weights, download=download)
    digest = file_sha256(path)
    device = torch.device(device)
    with _loaded_lock:
        key = (digest, str(device))
        if key not in _loaded:
            _loaded[key] = InceptionFeatures(build_inception(load_state_dict_file(path)), digest, device)
        return _loaded[key]


def random_inception(seed: int = 0, device: torch.device | str = "cpu") -> InceptionFeatures:
    """The same architecture with seeded random weights: exercises the whole pipeline offline."""
    model = _build(lambda: _randomize(fid_inception_skeleton(), seed))
    return InceptionFeatures(model, f"random-seed-{seed}", torch.device(device))

"""Inception features for FID: pytorch-fid's own `InceptionV3` (2048-d final average pool).

Exactly pytorch-fid's pipeline, minus the PNG round trip: images in [0, 1] are fed in memory in
batches, grayscale counts as RGB with three equal channels (as its loader's RGB conversion makes it),
images are resized to 299x299 (bilinear, align_corners=False, no antialias) and scaled to [-1, 1].

Speed (see :class:`FastInception`): the same arithmetic rearranged once at load time. Each
conv + BatchNorm (eps 1e-3) + ReLU becomes one convolution with a bias (BatchNorm folded into the
weights in float64), run as a single oneDNN call with the ReLU fused on a CPU; the [-1, 1] scaling is
folded into the first convolution (it has no padding, so conv(2x - 1) = conv'(x) exactly); a
grayscale image goes through the resize and the first convolution as one channel with the three RGB
filters summed; activations are channels-last, the layout oneDNN's kernels run fastest in. The
features equal pytorch-fid's model to float32 round-off (about 1e-6 relative; tests check it).

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
import torch.nn.functional as F
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
CPU_BATCH, GPU_BATCH = 16, 50     # images per Inception batch (features do not depend on it)


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


class FusedConvReLU(nn.Module):
    """relu(conv(x) + bias): a BasicConv2d (conv without bias, BatchNorm, ReLU) with its BatchNorm folded in.

    On a CPU the convolution, bias and ReLU run as one oneDNN primitive (the ReLU as a post-op, so the
    output is written once); elsewhere, or if this PyTorch lacks that operator, plain conv2d + relu_.
    """

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor, stride: tuple[int, int],
                 padding: tuple[int, int]) -> None:
        super().__init__()
        # Channels-last weights match the activations' layout (no per-call reorder of 3x3 and 7x1 kernels).
        self.register_buffer("weight", weight.float().contiguous(memory_format=torch.channels_last))
        self.register_buffer("bias", bias.float().contiguous())
        self.stride, self.padding = list(stride), list(padding)

    @classmethod
    def fold(cls, basic: nn.Module, *, input_scale: float = 1.0, input_shift: float = 0.0,
             sum_input_channels: bool = False) -> FusedConvReLU:
        """Fold torchvision's BasicConv2d (eval-mode BatchNorm) into one conv with bias, in float64.

        With input_scale/input_shift the layer takes x and computes what the original did on
        input_scale * x + input_shift (only exact without padding: padded zeros would be shifted too).
        sum_input_channels makes a one-channel layer equal to the original on equal input channels.
        """
        conv, bn = basic.conv, basic.bn
        if conv.groups != 1 or conv.dilation != (1, 1) or conv.bias is not None:
            raise ValueError("only plain convolutions without bias are folded")
        if input_shift and conv.padding != (0, 0):
            raise ValueError("an input shift folds into a convolution only when it has no padding")
        w = conv.weight.detach().double()
        scale = bn.weight.detach().double() / torch.sqrt(bn.running_var.double() + bn.eps)
        bias = bn.bias.detach().double() - bn.running_mean.double() * scale
        bias = bias + scale * input_shift * w.sum(dim=(1, 2, 3))
        w = w * (scale * input_scale)[:, None, None, None]
        if sum_input_channels:
            w = w.sum(dim=1, keepdim=True)
        return cls(w, bias, conv.stride, conv.padding)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.device.type == "cpu" and _ONEDNN_CONV_RELU:
            return torch.ops.mkldnn._convolution_pointwise(x, self.weight, self.bias, self.padding, self.stride,
                                                           [1, 1], 1, "relu", [None], "")
        return F.conv2d(x, self.weight, self.bias, self.stride, self.padding).relu_()


def _onednn_conv_relu_works() -> bool:
    """Whether this PyTorch has oneDNN's fused conv + ReLU (an internal operator) and it gives conv2d's answer."""
    try:
        op = torch.ops.mkldnn._convolution_pointwise
        if not torch.backends.mkldnn.is_available():
            return False
        gen = torch.Generator().manual_seed(0)
        x = torch.randn(2, 3, 9, 9, generator=gen).contiguous(memory_format=torch.channels_last)
        w, b = torch.randn(4, 3, 3, 3, generator=gen), torch.randn(4, generator=gen)
        with torch.inference_mode():
            got = op(x, w, b, [1, 1], [2, 2], [1, 1], 1, "relu", [None], "")
            want = F.conv2d(x, w, b, 2, 1).relu_()
        return bool(torch.allclose(got, want, rtol=1e-5, atol=1e-5))
    except (AttributeError, RuntimeError, NotImplementedError):
        return False


_ONEDNN_CONV_RELU = _onednn_conv_relu_works()


def _fold_all(module: nn.Module) -> nn.Module:
    """Replace every BasicConv2d below `module` by its FusedConvReLU, in place (the blocks' own forward
    methods, pytorch-fid's FID patches included, call them by attribute name, so they stay as they are)."""
    from torchvision.models.inception import BasicConv2d

    for name, child in list(module.named_children()):
        if isinstance(child, BasicConv2d):
            setattr(module, name, FusedConvReLU.fold(child))
        else:
            _fold_all(child)
    return module


def _channels_last(x: torch.Tensor) -> torch.Tensor:
    """x in channels-last layout, stated in its strides even for one channel.

    A one-channel tensor is both layouts at once, and convolutions then write their outputs
    channels-first, which would make the whole network run (twice as slowly) in that layout.
    """
    x = x.contiguous(memory_format=torch.channels_last)
    if x.shape[1] == 1:
        _, _, h, w = x.shape
        x = x.as_strided(x.shape, (h * w, 1, w, 1))   # the same memory, unambiguous strides
    return x


class FastInception(nn.Module):
    """pytorch-fid's InceptionV3 (2048-d pool features) rearranged for speed; same function, see the module doc.

    Input: N x C x H x W in [0, 1], C = 1 (grayscale, taken as three equal RGB channels) or 3.
    Output: N x 2048.
    """

    def __init__(self, reference: nn.Module) -> None:
        """`reference`: pytorch_fid.inception.InceptionV3 with the 2048-d block, weights loaded (left untouched)."""
        super().__init__()
        import copy

        if not (reference.resize_input and reference.normalize_input and reference.last_needed_block == 3
                and reference.output_blocks == [3]):
            raise ValueError("FastInception reproduces InceptionV3 with resize, normalisation and the 2048-d block")
        blocks = copy.deepcopy(reference.blocks).eval()
        stem = blocks[0][0]                                   # Conv2d_1a_3x3: 3x3, stride 2, no padding
        # pytorch-fid feeds 2x - 1; the stem takes x in [0, 1] instead.
        self.stem_rgb = FusedConvReLU.fold(stem, input_scale=2.0, input_shift=-1.0)
        self.stem_grey = FusedConvReLU.fold(stem, input_scale=2.0, input_shift=-1.0, sum_input_channels=True)
        self.body = _fold_all(nn.Sequential(*list(blocks[0])[1:], *blocks[1], *blocks[2], *blocks[3]))
        self.eval()
        self.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] not in (1, 3):
            raise GMError(f"Inception features need 1 or 3 channels; got {x.shape[1]}.")
        if x.shape[-2:] != (299, 299):
            x = F.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False)
        if x.device.type == "cpu":
            x = _channels_last(x)
        x = (self.stem_grey if x.shape[1] == 1 else self.stem_rgb)(x)
        return self.body(x).flatten(1)


class InceptionFeatures:
    """Callable: images in [0, 1] (N x C x H x W, C = 1 or 3) -> float64 N x 2048 pool features.

    `model` is pytorch-fid's InceptionV3; with fast=True (the default) it runs as its FastInception,
    with fast=False exactly as pytorch-fid runs it (the reference the fast path is tested against).
    """

    kind = "inception"
    dims = FEATURE_DIM
    name = EXTRACTOR

    def __init__(self, model: nn.Module, weights_hash: str, device: torch.device, batch_size: int | None = None,
                 fast: bool = True) -> None:
        self.fast = fast
        self.model = (FastInception(model) if fast else model).to(device)
        self.weights_hash = weights_hash
        self.device = device
        # A CPU runs as fast at 16 images per batch as at 50 (measured), and the 299x299 activations of
        # 50 images take about 0.7 GB against 0.16 GB for 16; GPUs want the bigger batches.
        self.batch_size = batch_size or (CPU_BATCH if device.type == "cpu" else GPU_BATCH)

    @torch.inference_mode()
    def __call__(self, images: torch.Tensor) -> np.ndarray:
        x = images.to(self.device, torch.float32)
        if x.dim() == 3:
            x = x.unsqueeze(1)
        if x.shape[1] not in (1, 3):
            raise GMError(f"Inception features need 1 or 3 channels; got {x.shape[1]}.")
        if self.fast:
            out = self.model(x)
        else:
            out = self.model(x.expand(-1, 3, -1, -1).contiguous())[0]
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


def random_inception(seed: int = 0, device: torch.device | str = "cpu", *, fast: bool = True) -> InceptionFeatures:
    """The same architecture with seeded random weights: exercises the whole pipeline offline."""
    model = _build(lambda: _randomize(fid_inception_skeleton(), seed))
    return InceptionFeatures(model, f"random-seed-{seed}", torch.device(device), fast=fast)

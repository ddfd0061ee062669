"""The fast FID path equals pytorch-fid's: folded and fused Inception against pytorch-fid's own
InceptionV3 on the same input (seeded random weights, non-trivial BatchNorm statistics), streamed
statistics against np.cov, and the low-rank Fréchet shortcut against the full computation."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn

from gm.errors import GMError
from gm.metrics import inception
from gm.metrics.frechet import Moments, frechet_distance, mean_and_cov, trace_sqrt_product


def _perturb_batchnorm(model: nn.Module, seed: int) -> nn.Module:
    """Random running statistics and affine terms: folding must handle more than the identity BatchNorm."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                c = m.num_features
                m.running_mean.copy_(torch.randn(c, generator=gen) * 0.2)
                m.running_var.copy_(torch.rand(c, generator=gen) + 0.5)
                m.weight.copy_(torch.rand(c, generator=gen) + 0.5)
                m.bias.copy_(torch.randn(c, generator=gen) * 0.2)
    return model


@pytest.fixture(scope="module")
def reference():
    """pytorch-fid's InceptionV3 (its own class and forward), run exactly as pytorch-fid runs it."""
    ref = inception.random_inception(seed=3, fast=False)
    _perturb_batchnorm(ref.model, seed=4)
    return ref


@pytest.fixture(scope="module")
def fast(reference):
    return inception.InceptionFeatures(reference.model, reference.weights_hash, torch.device("cpu"))


def _close(ours: np.ndarray, ref: np.ndarray) -> None:
    # float32 round-off through ~95 layers, reordered sums: about 1e-6 of the features' scale.
    np.testing.assert_allclose(ours, ref, rtol=1e-4, atol=1e-5 * np.abs(ref).max())


def test_fast_inception_equals_pytorch_fid_on_grey_digits(reference, fast):
    torch.manual_seed(0)
    x = (torch.rand(3, 1, 28, 28) > 0.7).float() * torch.rand(3, 1, 28, 28)   # sparse, like digits
    ref = reference(x)              # grey repeated to RGB, then pytorch-fid's resize, scaling, network
    ours = fast(x)                  # one channel through resize and stem, folded layers
    assert ours.shape == (3, 2048) and ours.dtype == np.float64
    assert np.abs(ref).max() > 1e-3          # real signal, not a comparison of zeros
    _close(ours, ref)


def test_fast_inception_equals_pytorch_fid_on_colour_and_on_299(reference, fast):
    torch.manual_seed(1)
    x = torch.rand(2, 3, 32, 32)
    _close(fast(x), reference(x))
    big = torch.rand(1, 3, 299, 299)            # no resize needed: bilinear to the same size is identity
    _close(fast(big), reference(big))
    with pytest.raises(GMError, match="1 or 3 channels"):
        fast(torch.rand(1, 2, 28, 28))


def test_plain_convolution_fallback_gives_the_same_features(reference, fast, monkeypatch):
    x = torch.rand(2, 1, 28, 28)
    fused = fast(x)
    monkeypatch.setattr(inception, "_ONEDNN_CONV_RELU", False)   # GPUs, or a PyTorch without oneDNN's op
    _close(fast(x), fused)
    _close(fast(x), reference(x))


def test_grey_input_stays_channels_last(fast):
    """One-channel tensors are ambiguous about layout; unless the strides say channels-last, every
    convolution after the stem runs channels-first, at half the speed (same values, so only this test
    notices)."""
    x = torch.nn.functional.interpolate(torch.rand(2, 1, 28, 28), size=(299, 299), mode="bilinear")
    with torch.inference_mode():
        out = fast.model.stem_grey(inception._channels_last(x))
    assert out.is_contiguous(memory_format=torch.channels_last) and not out.is_contiguous()


def _basic_conv(cin: int, cout: int, seed: int, **kw) -> nn.Module:
    from torchvision.models.inception import BasicConv2d
    torch.manual_seed(seed)
    m = BasicConv2d(cin, cout, **kw)
    nn.init.normal_(m.conv.weight, std=0.3)
    return _perturb_batchnorm(m, seed).eval()


def test_folding_one_layer_by_hand():
    basic = _basic_conv(3, 5, seed=0, kernel_size=3, stride=2)
    x = torch.rand(2, 3, 11, 11)
    with torch.inference_mode():
        want = basic(2 * x - 1)
        got = inception.FusedConvReLU.fold(basic, input_scale=2.0, input_shift=-1.0)(x)
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
        grey = x[:, :1]
        want_grey = basic(2 * grey.expand(-1, 3, -1, -1) - 1)
        got_grey = inception.FusedConvReLU.fold(basic, input_scale=2.0, input_shift=-1.0, sum_input_channels=True)(grey)
        torch.testing.assert_close(got_grey, want_grey, rtol=1e-5, atol=1e-5)
    padded = _basic_conv(3, 5, seed=1, kernel_size=3, padding=1)
    with pytest.raises(ValueError, match="no padding"):
        inception.FusedConvReLU.fold(padded, input_shift=-1.0)


def test_fast_model_refuses_other_pytorch_fid_configurations(reference):
    other = copy.deepcopy(reference.model)
    other.resize_input = False
    with pytest.raises(ValueError, match="resize"):
        inception.FastInception(other)


# ---- streamed statistics and the Fréchet shortcut ------------------------------------------------
def test_moments_equal_numpy_cov_batch_by_batch():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(103, 7)) * rng.uniform(0.1, 3, size=7) + 1e3     # large mean: cancellation check
    mom = Moments(keep_rows=50, block=32)   # blocks of 4 batches, then a partial one
    for start in range(0, 103, 10):
        mom.add(x[start:start + 10])
    mu, sigma = mom.mean_and_cov()
    np.testing.assert_allclose(mu, x.mean(axis=0), rtol=1e-13)
    np.testing.assert_allclose(sigma, np.cov(x, rowvar=False), rtol=1e-9, atol=1e-12)
    assert mom.n == 103 and mom.factor() is None            # more rows than kept: no factor
    small = Moments()
    small.add(x[:20])
    f = small.factor()
    np.testing.assert_allclose(f @ f.T, np.cov(x[:20], rowvar=False), rtol=1e-10, atol=1e-12)
    with pytest.raises(GMError, match="at least 2"):
        one = Moments()
        one.add(x[:1])
        one.mean_and_cov()
    with pytest.raises(GMError, match="changed width"):
        small.add(x[:3, :4])


@pytest.mark.parametrize("n1,n2", [(30, 300), (300, 30), (30, 40), (300, 300)])
def test_low_rank_shortcut_and_cholesky_order_do_not_change_the_distance(n1, n2):
    rng = np.random.default_rng(n1 + n2)
    d = 64
    mix = np.eye(d) + 0.3 * rng.normal(size=(d, d))
    a, b = rng.normal(size=(n1, d)) @ mix, rng.normal(size=(n2, d)) @ mix + 0.1
    (m1, s1), (m2, s2) = mean_and_cov(a), mean_and_cov(b)
    f1, f2 = Moments(), Moments()
    f1.add(a)
    f2.add(b)
    full = frechet_distance(m1, s1, m2, s2)                  # no factors: Cholesky of a full-rank side or eigh
    short = frechet_distance(m1, s1, m2, s2, factor1=f1.factor(), factor2=f2.factor())
    assert short == pytest.approx(full, rel=1e-6)   # the factor avoids clipping round-off eigenvalues: if anything closer
    assert trace_sqrt_product(s1, s2) == pytest.approx(trace_sqrt_product(s2, s1), rel=1e-6)
    # the reference: eigenvalues of S1 S2 from a general eigensolver
    ev = np.linalg.eigvals(s1 @ s2)
    assert trace_sqrt_product(s1, s2) == pytest.approx(np.sqrt(np.clip(ev.real, 0, None)).sum(), rel=1e-6)


class _Recorder:
    """A 4-d extractor that records the largest batch it was handed."""
    kind, name, dims, weights_hash, device = "test", "recorder", 4, "-", torch.device("cpu")

    def __init__(self, batch_size: int) -> None:
        self.batch_size = batch_size
        self.largest = 0

    def __call__(self, images: torch.Tensor) -> np.ndarray:
        self.largest = max(self.largest, images.shape[0])
        return torch.nn.functional.adaptive_avg_pool2d(images.float().mean(1, keepdim=True), 2).flatten(1).double().numpy()


class _FakeTrainer:
    """Samples on demand and records the largest request (a run's generator)."""
    image_shape = (1, 28, 28)

    def __init__(self) -> None:
        self.largest = 0
        self.total = 0

    def sample(self, k: int, seed: int) -> torch.Tensor:
        self.largest = max(self.largest, k)
        self.total += k
        return torch.rand(k, 1, 28, 28, generator=torch.Generator().manual_seed(seed))


def test_run_folder_statistics_stream_in_batches(tmp_path):
    """Generated images are drawn chunk by chunk and fed batch by batch: at no point are all n images
    (let alone all n resized to 299x299) in memory, and the statistics equal np.cov of every feature."""
    from gm.metrics.evaluate import _Run, _source_stats
    from gm.metrics.features import Tracker
    from gm.metrics.sources import SAMPLE_CHUNK, Source, sample_batches

    trainer, rec = _FakeTrainer(), _Recorder(batch_size=16)
    st = _source_stats(Source("run", tmp_path), _Run(trainer, None, 0), rec, n=1000, seed=0, tracker=Tracker(1000))
    assert trainer.total == 1000 and trainer.largest == SAMPLE_CHUNK and rec.largest == 16
    everything = np.concatenate([rec(x) for x in sample_batches(_FakeTrainer(), 1000, 0)])
    np.testing.assert_allclose(st.mu, everything.mean(0), rtol=1e-12)
    np.testing.assert_allclose(st.sigma, np.cov(everything, rowvar=False), rtol=1e-9)
    assert st.n == 1000 and st.factor is not None and st.factor.shape == (4, 1000)

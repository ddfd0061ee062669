"""GAN family: networks, losses, rotations, clipping, spectral norm and ACGAN's grid (no MNIST needed)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize

from gm import losses
from gm.config import to_dict, with_overrides
from gm.data.base import Batch, ImageDataset
from gm.errors import GMError
from gm.models.ssgan import rotate, rotate_quarters
from gm.registry import MODELS, get_spec
from gm.trainers.adversarial import annealed_sigma

GANS = ("gan", "dcgan", "wgan", "wgan-gp", "ssgan", "acgan")
CPU = torch.device("cpu")


def fake_mnist(n: int = 64, seed: int = 0) -> ImageDataset:
    g = torch.Generator().manual_seed(seed)
    return ImageDataset(name="mnist", images=torch.randint(0, 256, (n, 1, 28, 28), dtype=torch.uint8, generator=g),
                        max_value=255, labels=torch.randint(0, 10, (n,), generator=g), num_classes=10)


def make_trainer(model: str, **overrides):
    spec = get_spec(model)
    values = {"width": 0.125, "batch_size": 8, **overrides}
    config = with_overrides(spec.config_cls(), values, model=model)
    return spec.new_trainer(config, fake_mnist(), CPU)


def batch(trainer, seed: int = 1) -> Batch:
    k, b = trainer.batches_per_step(), trainer.config.batch_size
    ds = fake_mnist(b * k, seed)
    return Batch({"mnist": ds.images}, {"mnist": ds.labels})


# ---- registry and configs ---------------------------------------------------------------------
def test_registry_entries():
    for name in GANS:
        spec = get_spec(name)
        assert (spec.dataset, spec.group) == ("mnist", "gan")
        assert spec.cpu_note and "width" in spec.cpu_note
        cfg = spec.config_cls()
        assert "width" in to_dict(cfg)
    assert set(GANS) <= set(MODELS)
    assert get_spec("ssgan").config_cls().width < 1 and get_spec("gan").config_cls().width == 1


def test_config_errors_are_one_sentence():
    with pytest.raises(GMError, match="batch_size"):
        with_overrides(get_spec("gan").config_cls(), {"batch_size": 1})
    with pytest.raises(GMError, match="arch"):
        with_overrides(get_spec("wgan").config_cls(), {"arch": "mlp"})
    with pytest.raises(GMError, match="loss"):
        with_overrides(get_spec("ssgan").config_cls(), {"loss": "mse"})


# ---- networks ----------------------------------------------------------------------------------
@pytest.mark.parametrize("model,overrides,size", [
    ("gan", {}, 28), ("dcgan", {}, 28), ("wgan", {}, 28), ("wgan", {"arch": "dcgan"}, 28),
    ("wgan-gp", {}, 28), ("wgan-gp", {"arch": "dcgan"}, 28), ("ssgan", {}, 32), ("acgan", {}, 28),
])
def test_generator_and_discriminator_shapes(model, overrides, size):
    t = make_trainer(model, **overrides)
    z = torch.randn(5, t.config.latent_dim)
    labels = torch.tensor([0, 1, 2, 3, 9])
    x = t.model.generate(z, labels) if model == "acgan" else t.model.generator(z)
    assert x.shape == (5, 1, size, size)
    assert x.min() >= -1 and x.max() <= 1                    # tanh output, like to_signed data
    out = t.model.discriminator(x)
    if model == "ssgan":
        adv, rot = out
        assert adv.shape == (5,) and rot.shape == (5, 4)
    elif model == "acgan":
        src, cls = out
        assert src.shape == (5,) and cls.shape == (5, 10)
    else:
        assert out.shape == (5,)
    real = t.prepare(fake_mnist(3).images)
    assert real.shape == (3, 1, size, size) and real.min() >= -1 and real.max() <= 1
    s = t.sample(6, seed=3)
    assert s.shape == (6, 1, 28, 28) and s.min() >= 0 and s.max() <= 1  # dataset-sized, in [0, 1]
    assert torch.equal(s, t.sample(6, seed=3)) and not torch.equal(s, t.sample(6, seed=4))


def _shapes(module: nn.Module) -> set[tuple[int, ...]]:
    return {tuple(p.shape) for p in module.parameters()}


def test_width_one_gives_the_papers_sizes():
    t = make_trainer("gan", width=1.0)
    assert (3136, 512) in _shapes(t.model.generator)                # Table 2: Linear 512 -> 3136
    assert (32, 16, 3, 3) in _shapes(t.model.generator)             # conv 16 -> 32 after PixelShuffle
    assert (1, 8, 3, 3) in _shapes(t.model.generator)               # conv 8 -> 1 after PixelShuffle
    assert (512, 3136) in _shapes(t.model.discriminator)            # Table 3: Linear 3136 -> 512
    d = make_trainer("dcgan", width=1.0)
    assert (7 * 7 * 256, 100) in _shapes(d.model.generator)         # Dense 100 -> 7*7*256, no bias
    assert {(256, 128, 5, 5), (128, 64, 5, 5), (64, 1, 5, 5)} <= _shapes(d.model.generator)
    assert {(64, 1, 5, 5), (128, 64, 5, 5), (1, 6272)} <= _shapes(d.model.discriminator)
    s = make_trainer("ssgan", width=1.0)
    assert (256 * 16, 128) in _shapes(s.model.generator) and (256, 256, 3, 3) in _shapes(s.model.generator)
    assert (128, 128, 3, 3) in _shapes(s.model.discriminator) and (4, 128) in _shapes(s.model.discriminator)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in make_trainer("wgan-gp").model.discriminator.modules())


def test_dcgan_init_is_normal_002():
    t = make_trainer("dcgan", width=1.0)
    w = t.model.generator.fc[0].weight
    assert abs(w.std().item() - 0.02) < 0.001 and abs(w.mean().item()) < 0.001


def test_spectral_norm_on_every_ssgan_discriminator_layer():
    t = make_trainer("ssgan", width=0.25)
    layers = [m for m in t.model.discriminator.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    assert len(layers) == 12  # 4 blocks x 2 convs, 2 shortcut convs (down-sampling blocks), 2 heads
    assert all(parametrize.is_parametrized(m, "weight") for m in layers)
    assert not any(parametrize.is_parametrized(m, "weight") for m in t.model.generator.modules()
                   if isinstance(m, (nn.Conv2d, nn.Linear)))
    x = torch.randn(4, 1, 32, 32)
    with torch.no_grad():
        for _ in range(30):          # each training-mode forward runs one power iteration
            t.model.discriminator(x)
    for m in layers:
        sigma = torch.linalg.matrix_norm(m.weight.detach().flatten(1), ord=2)
        assert sigma == pytest.approx(1.0, abs=0.05)


# ---- losses against hand-worked numbers ---------------------------------------------------------
def test_non_saturating_losses():
    real = torch.tensor([0.0, math.log(3)])      # D(x) = 0.5, 0.75
    fake = torch.tensor([math.log(1 / 3)])       # D(G(z)) = 0.25
    expected_d = -(math.log(0.5) + math.log(0.75)) / 2 - math.log(1 - 0.25)
    assert losses.ns_d_loss(real, fake).item() == pytest.approx(expected_d, rel=1e-6)
    assert losses.ns_g_loss(fake).item() == pytest.approx(-math.log(0.25), rel=1e-6)
    # One-sided smoothing: the real target 0.9 changes the real term only.
    smooth = -(0.9 * math.log(0.75) + 0.1 * math.log(0.25))
    assert losses.ns_d_loss(real[1:], fake, real_target=0.9).item() == pytest.approx(
        smooth - math.log(0.75), rel=1e-6)
    # Logits keep the loss finite where probabilities would give log(0).
    assert torch.isfinite(losses.ns_d_loss(torch.tensor([-200.0]), torch.tensor([200.0])))


def test_wasserstein_and_hinge_losses():
    real, fake = torch.tensor([1.0, 2.0, 3.0]), torch.tensor([0.5, -0.5])
    assert losses.wasserstein_d_loss(real, fake).item() == pytest.approx(0.0 - 2.0)
    assert losses.wasserstein_g_loss(fake).item() == pytest.approx(0.0)
    r, f = torch.tensor([2.0, 0.5, -1.0]), torch.tensor([-2.0, 0.0, 0.5])
    assert losses.hinge_d_loss(r, f).item() == pytest.approx((0 + 0.5 + 2) / 3 + (0 + 1 + 1.5) / 3)
    assert losses.hinge_g_loss(f).item() == pytest.approx(-(-2.0 + 0.0 + 0.5) / 3)


def test_rotation_and_class_losses_take_logits():
    assert losses.rotation_loss(torch.zeros(2, 4), torch.tensor([0, 3])).item() == pytest.approx(math.log(4))
    logits = torch.tensor([[0.0, math.log(3)]])                  # softmax = (0.25, 0.75)
    assert losses.class_loss(logits, torch.tensor([1])).item() == pytest.approx(-math.log(0.75), rel=1e-6)
    confident = torch.tensor([[10.0, -10.0]])
    # From logits the loss is ~0; a softmax applied first (double softmax) would give ~0.31.
    assert losses.class_loss(confident, torch.tensor([0])).item() < 1e-6
    assert F.cross_entropy(confident.softmax(1), torch.tensor([0])).item() > 0.3


def test_acgan_losses_are_source_plus_class():
    src_r, src_f = torch.tensor([0.0, math.log(3)]), torch.tensor([math.log(1 / 3), 0.0])
    cls_r = torch.tensor([[0.0, math.log(3)], [0.0, 0.0]])
    cls_f = torch.tensor([[math.log(3), 0.0], [0.0, 0.0]])
    y_r, y_f = torch.tensor([1, 0]), torch.tensor([0, 1])
    total, source, cls = losses.acgan_d_loss(src_r, src_f, cls_r, cls_f, y_r, y_f)
    expected_source = (-(math.log(0.5) + math.log(0.75)) / 2
                       - (math.log(0.75) + math.log(0.5)) / 2)
    expected_cls = 2 * (-(math.log(0.75) + math.log(0.5)) / 2)
    assert source.item() == pytest.approx(expected_source, rel=1e-6)
    assert cls.item() == pytest.approx(expected_cls, rel=1e-6)
    assert total.item() == pytest.approx(expected_source + expected_cls, rel=1e-6)
    g_total, g_source, g_cls = losses.acgan_g_loss(src_f, cls_f, y_f)
    assert g_source.item() == pytest.approx(-(math.log(0.25) + math.log(0.5)) / 2, rel=1e-6)
    assert g_total.item() == pytest.approx(g_source.item() + g_cls.item())


class LinearCritic(nn.Module):
    def __init__(self, w: torch.Tensor) -> None:
        super().__init__()
        self.w = nn.Parameter(w)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1) @ self.w


def test_gradient_penalty_of_linear_critics():
    real, fake, eps = torch.randn(6, 1, 4, 4), torch.randn(6, 1, 4, 4), torch.rand(6)
    w = torch.randn(16)
    unit = LinearCritic(w / w.norm())                  # 1-Lipschitz: gradient norm 1 everywhere
    assert losses.gradient_penalty(unit, real, fake, eps).item() < 1e-10
    double = LinearCritic(2 * w / w.norm())            # gradient norm 2: penalty (2 - 1)^2
    gp = losses.gradient_penalty(double, real, fake, eps)
    assert gp.item() == pytest.approx(1.0, rel=1e-5)
    gp.backward()                                      # the graph reaches the critic's weights
    expected = 2 * (2 - 1) * double.w.detach() / 2     # d/dw (||w|| - 1)^2
    assert torch.allclose(double.w.grad, expected, atol=1e-5)


def test_instance_noise_anneals_to_zero():
    assert annealed_sigma(0, 0.2, 100) == pytest.approx(0.2)
    assert annealed_sigma(50, 0.2, 100) == pytest.approx(0.1)
    assert annealed_sigma(100, 0.2, 100) == 0 and annealed_sigma(500, 0.2, 100) == 0


def test_dcgan_tricks_switches():
    plain = make_trainer("dcgan")
    assert plain._real_target() == 1.0 and "noise_sigma" not in plain.train_step(batch(plain))
    t = make_trainer("dcgan", label_smoothing=True, instance_noise=0.3, noise_anneal_steps=4)
    assert t._real_target() == 0.9
    sigmas = []
    for i in range(3):
        out = t.train_step(batch(t, i))
        sigmas.append(out["noise_sigma"])
    assert sigmas == pytest.approx([0.3, 0.225, 0.15])


# ---- rotations ----------------------------------------------------------------------------------
def test_rotations_are_the_four_right_angles():
    x = torch.arange(2 * 12, dtype=torch.float32).view(2, 1, 3, 4)   # not square: catches transposes
    h, w = 3, 4
    assert torch.equal(rotate(x, 0), x)
    r1 = rotate(x, 1)                                 # 90 degrees counter-clockwise
    assert r1.shape == (2, 1, w, h)
    for i in range(w):
        for j in range(h):
            assert r1[0, 0, i, j] == x[0, 0, j, w - 1 - i]
    r2 = rotate(x, 2)
    assert torch.equal(r2, x.flip(2).flip(3))
    r3 = rotate(x, 3)
    for i in range(w):
        for j in range(h):
            assert r3[0, 0, i, j] == x[0, 0, h - 1 - j, i]
    assert torch.equal(rotate(r1, 3), x)


def test_rotate_quarters_labels_match_images():
    x = torch.randn(8, 1, 5, 5)
    out, labels = rotate_quarters(x)
    assert labels.tolist() == [0, 0, 1, 1, 2, 2, 3, 3]
    for i in range(8):
        assert torch.equal(out[i], rotate(x[i:i + 1], int(labels[i]))[0])
    _, uneven = rotate_quarters(torch.randn(6, 1, 5, 5))
    assert uneven.tolist() == [0, 0, 1, 2, 2, 3]


# ---- training-step behaviour ----------------------------------------------------------------------
def test_weight_clipping_holds():
    t = make_trainer("wgan", n_critic=3)
    c = t.config.clip
    assert all(p.abs().max() <= c for p in t.model.discriminator.parameters())   # clipped from the start
    for i in range(2):
        t.train_step(batch(t, i))
        assert all(p.abs().max() <= c for p in t.model.discriminator.parameters())
    assert any((p.abs() == c).any() for p in t.model.discriminator.parameters())  # clipping was active
    assert any(p.abs().max() > c for p in t.model.generator.parameters())          # G is not clipped


def test_wgan_critic_boost_schedule():
    t = make_trainer("wgan", critic_boost=True)
    assert t.batches_per_step() == 100
    t.step = 25
    assert t.batches_per_step() == 5
    t.step = 500
    assert t.batches_per_step() == 100
    assert make_trainer("wgan").batches_per_step() == 5


def test_critic_step_count_uses_every_batch():
    t = make_trainer("wgan-gp", n_critic=3)
    before = t.opt_d.state_dict()["state"]
    assert before == {}
    t.train_step(batch(t))
    assert int(t.opt_d.state_dict()["state"][0]["step"]) == 3
    assert int(t.opt_g.state_dict()["state"][0]["step"]) == 1
    assert t.step == 1


def test_acgan_grid_rows_are_the_asked_classes():
    t = make_trainer("acgan")
    images, ncol = t.sample_grid()
    assert ncol == 10 and images.shape == (100, 1, 28, 28)
    gen = torch.Generator().manual_seed(t.config.seed + 12345)
    z = torch.randn((10, t.config.latent_dim), generator=gen)
    t.model.generator.eval()
    with torch.no_grad():
        for r in range(10):
            expected = (t.model.generator(z, torch.full((10,), r)) + 1) / 2
            assert torch.allclose(images[r * 10:(r + 1) * 10], expected, atol=1e-6)
    assert not torch.allclose(images[:10], images[10:20])
    labelled = t.sample(3, seed=0, labels=torch.tensor([7, 7, 7]))
    assert labelled.shape == (3, 1, 28, 28)
    with pytest.raises(GMError):
        t.sample(2, seed=0, labels=torch.tensor([3, 10]))


def test_step_metrics_are_detached_scalars():
    t = make_trainer("ssgan")
    out = t.train_step(batch(t))
    assert {"d_loss", "g_loss", "d_real", "d_fake", "d_rot", "g_rot", "rot_acc"} <= set(out)
    for v in out.values():
        assert isinstance(v, torch.Tensor) and v.dim() == 0 and not v.requires_grad

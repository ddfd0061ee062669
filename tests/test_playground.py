"""The 2-D playground: samplers, the mode-collapse metrics, every loss, snapshots, the runner, and
the collapse of the non-saturating GAN on the ring of 8 Gaussians next to WGAN-GP's cure."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
import torch

from gm.errors import GMError
from gm.playground import (
    DISTRIBUTIONS,
    EVAL_SAMPLES,
    PLAYGROUND_LOSSES,
    Playground,
    PlaygroundConfig,
    Runner,
    evaluate,
    get_distribution,
    manifold_quality,
    mode_coverage,
)
from gm.playground.history import History

# Small networks keep every test here quick; the collapse demo sets its own.
TINY = dict(g_hidden=16, g_depth=2, d_hidden=16, d_depth=2, batch=32, points=64, grid=16, eval_every=5)


def _rng(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ---- distributions --------------------------------------------------------------------------
@pytest.mark.parametrize("name", list(DISTRIBUTIONS))
def test_samplers_shape_and_seeding(name):
    dist = DISTRIBUTIONS[name]
    a = dist.sample(300, _rng(1))
    assert a.shape == (300, 2) and a.dtype == torch.float32
    assert torch.equal(a, dist.sample(300, _rng(1)))
    assert not torch.equal(a, dist.sample(300, _rng(2)))
    xmin, xmax, ymin, ymax = dist.extent
    inside = (a[:, 0] > xmin) & (a[:, 0] < xmax) & (a[:, 1] > ymin) & (a[:, 1] < ymax)
    assert inside.float().mean() > 0.99   # the plot shows the data
    assert dist.about and dist.title


def test_mixture_modes_follow_the_papers():
    ring, grid = get_distribution("ring8"), get_distribution("grid25")
    assert len(ring.modes) == 8 and ring.std == 0.02
    assert np.allclose(np.linalg.norm(np.array(ring.modes), axis=1), 2.0)
    assert len(grid.modes) == 25 and grid.std == 0.05
    assert sorted({x for x, _ in grid.modes}) == [-4.0, -2.0, 0.0, 2.0, 4.0]
    radius = ring.sample(4000, _rng(0)).norm(dim=1)
    assert abs(float(radius.mean()) - 2.0) < 0.01 and float(radius.std()) < 0.03
    assert DISTRIBUTIONS["two_moons"].modes is None and DISTRIBUTIONS["spiral"].modes is None


def test_unknown_distribution_is_one_sentence():
    with pytest.raises(GMError, match="ring8"):
        get_distribution("ring9")


# ---- metrics --------------------------------------------------------------------------------
def test_all_samples_on_one_mode_cover_one():
    ring = get_distribution("ring8")
    at_one = ring.mode_centres()[3] + 0.01 * torch.randn(EVAL_SAMPLES, 2, generator=_rng(0))
    cov = evaluate(at_one, ring)
    assert (cov.modes_covered, cov.n_modes, cov.high_quality) == (1, 8, 1.0)
    assert cov.per_mode[3] == EVAL_SAMPLES


def test_true_distribution_covers_every_mode():
    for name, n_modes in (("ring8", 8), ("grid25", 25)):
        dist = get_distribution(name)
        cov = evaluate(dist.sample(EVAL_SAMPLES, _rng(0)), dist)
        assert cov.modes_covered == n_modes
        # 2-D Gaussian: P(|x - mu| <= 3 std) = 1 - exp(-9/2) = 0.989
        assert abs(cov.high_quality - (1 - math.exp(-4.5))) < 0.01


def test_uniform_noise_is_low_quality():
    ring = get_distribution("ring8")
    noise = torch.rand(EVAL_SAMPLES, 2, generator=_rng(0)) * 6 - 3
    cov = evaluate(noise, ring)
    # 8 discs of radius 0.06 cover 0.25 % of the 6 x 6 square
    assert cov.high_quality < 0.01


def test_min_count_makes_stray_samples_not_count():
    modes = torch.tensor([[0.0, 0.0], [5.0, 0.0]])
    samples = torch.cat([torch.zeros(99, 2), torch.tensor([[5.0, 0.0]])])
    assert mode_coverage(samples, modes, std=0.1).modes_covered == 2            # VEEGAN: any sample
    assert mode_coverage(samples, modes, std=0.1, min_count=25).modes_covered == 1
    off = torch.tensor([[0.31, 0.0], [0.29, 0.0]])   # 3 std = 0.3
    assert mode_coverage(off, modes, std=0.1).high_quality == 0.5
    # Where the mass goes, high quality or not: 3 of 4 samples are nearest the first mode.
    blurry = torch.tensor([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [4.0, 0.0]])
    cov = mode_coverage(blurry, modes, std=0.1)
    assert cov.mode_share == (0.75, 0.25) and cov.modes_covered == 0


@pytest.mark.parametrize("name", ["two_moons", "spiral"])
def test_curves_have_quality_but_no_modes(name):
    dist = get_distribution(name)
    good = evaluate(dist.sample(EVAL_SAMPLES, _rng(0)), dist)
    assert good.modes_covered is None and good.n_modes is None
    assert good.high_quality > 0.97
    xmin, xmax, ymin, ymax = dist.extent
    uniform = torch.rand(EVAL_SAMPLES, 2, generator=_rng(1)) * torch.tensor([xmax - xmin, ymax - ymin]) \
        + torch.tensor([xmin, ymin])
    assert evaluate(uniform, dist).high_quality < 0.5
    assert manifold_quality(torch.zeros(0, 2), dist.support(), 0.3) == 0.0
    # The whole curve is reached by its own samples; a generator stuck on one spot of it is
    # precise but reaches almost none of it.
    assert good.support_covered > 0.95
    stuck = evaluate(dist.support(64)[:1].repeat(EVAL_SAMPLES, 1), dist)
    assert stuck.high_quality == 1.0 and stuck.support_covered < 0.1


# ---- config -----------------------------------------------------------------------------------
def test_for_loss_applies_the_reference_recipe():
    clip = PlaygroundConfig.for_loss("wgan_clip", seed=3)
    assert (clip.loss, clip.optimizer, clip.d_steps, clip.seed) == ("wgan_clip", "rmsprop", 5, 3)
    gp = PlaygroundConfig.for_loss("wgan_gp", gp_weight=5.0)
    assert gp.gp_weight == 5.0 and gp.beta2 == 0.9
    with pytest.raises(GMError, match="Unknown playground loss"):
        PlaygroundConfig.for_loss("minimax")
    with pytest.raises(GMError, match="batch"):
        Playground(PlaygroundConfig(batch=0))


# ---- training ---------------------------------------------------------------------------------
@pytest.mark.parametrize("loss", list(PLAYGROUND_LOSSES))
def test_every_loss_trains(loss):
    pg = Playground(PlaygroundConfig.for_loss(loss, **TINY))
    before_g = [p.detach().clone() for p in pg.generator.parameters()]
    before_d = [p.detach().clone() for p in pg.discriminator.parameters()]
    pg.step(3)
    assert pg.steps == 3
    assert any(not torch.equal(a, b) for a, b in zip(before_g, pg.generator.parameters()))
    assert any(not torch.equal(a, b) for a, b in zip(before_d, pg.discriminator.parameters()))
    hist = pg.snapshot().history
    assert hist["step"] == [1, 2, 3]
    assert all(math.isfinite(v) for v in hist["d_loss"] + hist["g_loss"])
    if loss == "wgan_gp":
        assert all(math.isfinite(v) and v >= 0 for v in hist["penalty"])
    if loss == "wgan_clip":
        c = pg.config.clip
        assert all(float(p.detach().abs().max()) <= c for p in pg.discriminator.parameters())


def test_same_seed_same_run_and_reset_replays():
    config = PlaygroundConfig.for_loss("wgan_gp", seed=7, **TINY)
    a, b = Playground(config), Playground(config)
    a.step(4)
    b.step(4)
    assert np.array_equal(a.snapshot().fake, b.snapshot().fake)
    first = a.snapshot().fake
    a.step(2)
    a.reset()
    a.step(4)
    assert a.steps == 4 and np.array_equal(a.snapshot().fake, first)
    other = Playground(PlaygroundConfig.for_loss("wgan_gp", seed=8, **TINY))
    assert not np.array_equal(other.snapshot().fake, Playground(config).snapshot().fake)


@pytest.mark.parametrize("loss", ["ns", "wgan_gp", "ls"])
def test_snapshot_shapes(loss):
    pg = Playground(PlaygroundConfig.for_loss(loss, **TINY))
    pg.step(10)
    view = pg.snapshot()
    n, r = TINY["points"], TINY["grid"]
    assert view.step == 10 and view.loss == loss and view.distribution == "ring8"
    assert view.fake.shape == view.real.shape == view.gradients.shape == (n, 2)
    assert view.grid_x.shape == view.grid_y.shape == (r,) and view.surface.shape == (r, r)
    assert (view.grid_x[0], view.grid_x[-1], view.grid_y[0], view.grid_y[-1]) == view.extent
    if loss == "ns":
        assert view.surface_kind == "probability"
        assert view.surface.min() >= 0 and view.surface.max() <= 1
    else:
        assert view.surface_kind == "score"
    assert view.evals["step"] == [0, 5, 10] and view.n_modes == 8
    assert view.coverage is not None and view.coverage.n_modes == 8
    # A snapshot is a copy: training on does not change it.
    fake = view.fake.copy()
    pg.step(1)
    assert np.array_equal(view.fake, fake)


def test_snapshot_surface_rows_are_y():
    pg = Playground(PlaygroundConfig(**TINY))
    view = pg.snapshot()
    i, j = 3, 11
    point = torch.tensor([[view.grid_x[j], view.grid_y[i]]])
    with torch.no_grad():
        expected = torch.sigmoid(pg.discriminator(point))
    assert abs(float(expected) - view.surface[i, j]) < 1e-5


def test_curves_record_quality_without_modes():
    pg = Playground(PlaygroundConfig(distribution="two_moons", **TINY))
    pg.step(5)
    view = pg.snapshot()
    assert view.coverage.modes_covered is None and view.n_modes is None
    assert all(math.isnan(m) for m in view.evals["modes_covered"])
    assert 0.0 <= view.evals["high_quality"][-1] <= 1.0
    assert 0.0 <= view.evals["support_covered"][-1] <= 1.0 and view.coverage.support_covered is not None


@pytest.mark.parametrize("loss", ["ns", "wgan_gp", "hinge", "ls"])
def test_gradient_field_points_toward_the_data(loss):
    """With G's samples far off the ring and D trained to tell them apart (G barely moves), each
    arrow -dL_G/dx should point back toward the data, i.e. toward the origin."""
    config = PlaygroundConfig.for_loss(loss, g_hidden=16, g_depth=2, d_hidden=32, d_depth=2,
                                       batch=64, points=64, grid=8, eval_every=1000, lr_g=1e-6,
                                       lr_d=3e-3, d_steps=5)
    pg = Playground(config)
    with torch.no_grad():
        pg.generator.net[-1].bias += torch.tensor([2.5, 2.5])   # samples near (2.5, 2.5)
    pg.step(40)
    view = pg.snapshot()
    toward = -view.fake / np.linalg.norm(view.fake, axis=1, keepdims=True)
    arrows = view.gradients / (np.linalg.norm(view.gradients, axis=1, keepdims=True) + 1e-12)
    assert float(np.mean(np.sum(toward * arrows, axis=1))) > 0.7


def test_gradient_field_is_minus_the_per_sample_gradient():
    pg = Playground(PlaygroundConfig.for_loss("hinge", **TINY))
    view = pg.snapshot()
    x = torch.tensor(view.fake[:1], requires_grad=True)
    (grad,) = torch.autograd.grad(-pg.discriminator(x).sum(), x)   # hinge: L_G = -D(x)
    assert np.allclose(view.gradients[:1], -grad.numpy(), atol=1e-5)


def test_update_changes_live_settings_only():
    pg = Playground(PlaygroundConfig(**TINY))
    pg.update(lr_g=5e-4, d_steps=2)
    assert pg.config.lr_g == 5e-4 and pg.opt_g.param_groups[0]["lr"] == 5e-4 and pg.config.d_steps == 2
    with pytest.raises(GMError, match="reset"):
        pg.update(loss="hinge")
    with pytest.raises(GMError, match="lr_d"):
        pg.update(lr_d=-1.0)


def test_history_thins_to_a_bounded_length():
    h = History("v", max_points=8)
    for step in range(1, 101):
        h.append(step, v=step * 2)
    cols = h.as_dict()
    assert len(h) <= 8 and cols["step"][0] == 1
    gaps = np.diff(cols["step"])
    assert len(set(gaps)) == 1   # evenly thinned
    assert cols["v"] == [2 * s for s in cols["step"]]


# ---- the runner --------------------------------------------------------------------------------
def _wait_for(condition, timeout=10.0):
    end = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > end:
            return False
        time.sleep(0.01)
    return True


def test_runner_pause_step_resume_and_speed():
    pg = Playground(PlaygroundConfig(**TINY))
    runner = Runner(pg, steps_per_second=None)
    try:
        assert runner.paused and pg.steps == 0
        runner.step_once(3)
        assert pg.steps == 3
        runner.resume()
        assert _wait_for(lambda: pg.steps > 20)
        runner.pause()    # returns after the chunk in flight
        held = pg.steps
        time.sleep(0.2)
        assert pg.steps == held
        runner.step_once()
        assert pg.steps == held + 1
        runner.set_speed(20)
        start, start_time = pg.steps, time.monotonic()
        runner.resume()
        time.sleep(0.5)
        runner.pause()
        ran = pg.steps - start
        assert 1 <= ran <= 20 * (time.monotonic() - start_time) + 2
        runner.max_steps = pg.steps + 5
        runner.set_speed(None)
        runner.resume()
        assert _wait_for(lambda: runner.paused)
        assert pg.steps == runner.max_steps
    finally:
        runner.stop()
    assert not runner.alive


# ---- mode collapse and its cure ------------------------------------------------------------------
# Both runs share everything but the loss: the networks (noise 32, three hidden layers of 64 in
# G and D), batch 128, Adam(1e-3, betas 0.5, 0.9), 5 critic updates per generator update, the
# seed. WGAN-GP's penalty weight is 0.1, the value of the authors' own toy experiments
# (gan_toy.py in Gulrajani et al.'s code).
COLLAPSE_DEMO = dict(distribution="ring8", noise_dim=32, g_hidden=64, g_depth=3, d_hidden=64,
                     d_depth=3, batch=128, lr_g=1e-3, lr_d=1e-3, optimizer="adam", beta1=0.5,
                     beta2=0.9, d_steps=5, gp_weight=0.1, points=64, grid=8, eval_every=100)


def test_the_defaults_are_the_collapse_demo():
    """The page opens on the demo: its defaults are these settings, whichever loss is picked
    (except WGAN with clipping's RMSprop)."""
    for loss in ("ns", "wgan_gp", "hinge", "ls"):
        config = PlaygroundConfig.for_loss(loss)
        assert {k: getattr(config, k) for k in COLLAPSE_DEMO if k not in ("points", "grid", "eval_every")} \
            == {k: v for k, v in COLLAPSE_DEMO.items() if k not in ("points", "grid", "eval_every")}
COLLAPSE_STEPS = 500


def test_ns_gan_collapses_on_the_ring_and_wgan_gp_covers_it():
    """After 500 generator steps (seeds 0-7 all measured the same way: NS 1 mode with its whole
    mass on it, high-quality share 0.47-0.73; WGAN-GP 7-8 modes, 10-16 % of the mass nearest each
    mode, its samples still blurry, high-quality share 1-2 %, 12-28 % by step 1,000)."""
    ns, gp = (Playground(PlaygroundConfig(loss=loss, seed=0, **COLLAPSE_DEMO)) for loss in ("ns", "wgan_gp"))
    for pg in (ns, gp):
        pg.step(COLLAPSE_STEPS)
    collapsed, cured = ns.evaluate(), gp.evaluate()
    # NS: sharp samples, all on one mode (VEEGAN's count, and where the mass is).
    assert collapsed.modes_covered <= 2 and collapsed.high_quality > 0.3, collapsed
    assert max(collapsed.mode_share) > 0.9, collapsed
    # WGAN-GP: every mode reached, the mass split about evenly between them.
    assert cured.modes_covered >= 7, cured
    assert min(cured.mode_share) > 0.05, cured
    # The page's record of the run says the same.
    assert ns.snapshot().evals["modes_covered"][-1] == collapsed.modes_covered


def test_a_runner_paused_too_long_ends_its_thread_and_a_new_one_continues_the_playground():
    """A page whose visitor left must not keep a thread: paused past idle_exit, the thread ends;
    the playground keeps its state for a new Runner."""
    pg = Playground(PlaygroundConfig(seed=0, **TINY))
    runner = Runner(pg, steps_per_second=None, idle_exit=0.3)
    runner.step_once(2)
    deadline = time.monotonic() + 10
    while runner.alive and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not runner.alive and pg.steps == 2
    again = Runner(pg, idle_exit=None)
    try:
        again.resume()
        deadline = time.monotonic() + 30
        while pg.steps < 10 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert pg.steps >= 10
    finally:
        again.stop()


def test_a_training_runner_pauses_once_nobody_watches():
    """The page's runner asks whether its browser tab is still connected: a closed tab pauses it
    within about a second, and the playground keeps its state."""
    pg = Playground(PlaygroundConfig(seed=0, **TINY))
    watching = {"yes": True}
    runner = Runner(pg, steps_per_second=None, watch=lambda: watching["yes"])
    try:
        runner.resume()
        deadline = time.monotonic() + 30
        while pg.steps < 20 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not runner.paused and pg.steps >= 20
        watching["yes"] = False
        deadline = time.monotonic() + 10
        while not runner.paused and time.monotonic() < deadline:
            time.sleep(0.05)
        assert runner.paused
        time.sleep(0.2)   # a chunk in flight ends
        steps = pg.steps
        time.sleep(0.5)
        assert pg.steps == steps and runner.alive
    finally:
        runner.stop()

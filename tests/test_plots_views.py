"""Pure helpers behind the app: chart maths, GAN latent views, background tasks."""

import threading
import time

import numpy as np
import pytest
import torch

from gm import gan_views, plots
from gm.errors import GMError
from gm.tasks import TaskRunner


def test_ema_matches_tensorboard_by_hand():
    # weight 0.5 on [2, 4]: last = 1, debiased 1 / 0.5 = 2; last = 0.5 + 2 = 2.5, debiased 2.5 / 0.75
    out = plots.ema([2.0, 4.0, float("nan")], 0.5)
    assert out[0] == pytest.approx(2.0) and out[1] == pytest.approx(2.5 / 0.75) and np.isnan(out[2])
    assert plots.ema([1.0, 3.0], 0.0).tolist() == [1.0, 3.0]


def test_robust_range_ignores_spikes_and_handles_flat_series():
    y = np.ones(1000)
    y[::100] = 1e6
    lo, hi = plots.robust_range([np.r_[y, np.linspace(0, 2, 1000)]])
    assert hi < 10
    lo, hi = plots.robust_range([np.full(50, 1.0)])
    assert lo < 1.0 < hi and hi - lo > 0.1  # a flat beta=1 line, not rounding noise


def test_downsample_keeps_ends_and_bounds_points():
    x = np.arange(10_000.0)
    xd, (yd,) = plots.downsample(x, [x * 2], 2000)
    assert len(xd) <= 2001 and xd[0] == 0 and xd[-1] == 9999 and (yd == xd * 2).all()


def test_charts_follow_logged_keys():
    records = [{"step": 1, "kl": 3.0, "beta": 1.0, "kl_target": 8.0, "loss": 5.0, "recon": 2.0}]
    titles = [t for t, _, _ in plots.charts_for(records)]
    assert "Controller terms" not in titles and titles[0].startswith("KL")
    fig = plots.line_figure(records * 3, ["kl"], reference="kl_target")
    assert any(t.name == "set point" for t in fig.data)
    csv = plots.records_to_csv(records + [{"step": 2, "kl": 1.0, "kl_dims": [0.1]}])
    assert csv.splitlines()[0].startswith("step,epoch,time,kl") and "kl_dims" not in csv


def _gan():
    from gm.data.base import ImageDataset
    from gm.registry import get_spec
    spec = get_spec("gan")
    data = ImageDataset("mnist", torch.zeros((1, 1, 28, 28), dtype=torch.uint8), 255, num_classes=10)
    return spec.new_trainer(spec.config_cls(), data, torch.device("cpu")).model


def test_gan_views_directions_slerp_and_grids():
    trainer = _gan()
    dirs, sv = gan_views.principal_directions(trainer, k=5)
    assert dirs.shape == (5, 64) and (sv[:-1] >= sv[1:]).all()
    assert torch.allclose(dirs @ dirs.T, torch.eye(5), atol=1e-5)  # orthonormal directions
    z0, z1 = gan_views.seed_latent(trainer, 0), gan_views.seed_latent(trainer, 1)
    assert torch.allclose(gan_views.slerp(z0, z1, 0.0), z0, atol=1e-6)
    assert torch.allclose(gan_views.slerp(z0, z1, 1.0), z1, atol=1e-5)
    mid = gan_views.slerp(z0, z1, 0.5)
    assert mid.norm() > 0.9 * min(z0.norm(), z1.norm())  # stays on the shell; lerp would shrink it
    assert torch.equal(gan_views.generate(trainer, z0), trainer.sample(1, seed=0))
    grid = gan_views.interpolation_grid(trainer, 0, 1, steps=6)
    assert grid.shape == (2 + 30, 2 + 6 * 30)


def test_task_runner_progress_cancel_and_refusal():
    runner = TaskRunner()
    started = threading.Event()

    def slow(progress, cancel):
        for i in range(1000):
            progress(i, 1000, None)
            started.set()
            if cancel.is_set():
                raise GMError("cancelled")
            time.sleep(0.005)
        return "done"

    runner.start("a", "slow", slow)
    started.wait(5)
    with pytest.raises(GMError, match="still running"):
        runner.start("a", "again", slow)
    runner.cancel("a")
    runner.shutdown()
    assert runner.get("a").status == "cancelled"
    runner.start("b", "quick", lambda progress, cancel: 42)
    runner.shutdown()
    assert runner.get("b").status == "done" and runner.get("b").result == 42


def test_a_chart_of_one_logged_row_draws_its_point():
    from gm.plots import line_figure, overlay_figure
    one = [{"step": 10, "epoch": 0.1, "time": 1.0, "kl": 3.5}]
    fig = line_figure(one, ["kl"])
    shown = [tr for tr in fig.data if tr.showlegend is not False]
    assert [tr.mode for tr in shown] == ["markers"] and list(shown[0].y) == [3.5]
    assert fig.layout.yaxis.range is None   # plotly's autorange centres a lone marker
    assert overlay_figure([("a", one)], "kl").data[-1].mode == "markers"
    two = one + [{"step": 20, "epoch": 0.2, "time": 2.0, "kl": 3.0}]
    assert [tr.mode for tr in line_figure(two, ["kl"]).data if tr.showlegend is not False] == ["lines"]

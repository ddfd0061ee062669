"""Speed options (precision, channels_last, compile) and the foreach optimizers: they train, keep
the maths, resume exactly and fail in one sentence (all on CPU; GPU speed is measured in bench/)."""

from __future__ import annotations

import pytest
import torch

from gm import load_model
from gm.config import from_dict, to_dict, with_overrides
from gm.data.base import ImageDataset
from gm.errors import GMError
from gm.registry import get_spec
from gm.runs.checkpoint import latest_checkpoint, load_checkpoint
from gm.runs.folder import RunFolder
from gm.runs.loop import new_session, open_session, train

CPU = torch.device("cpu")
SMALL = {"width": 0.125, "batch_size": 8, "log_every": 2, "sample_every": 1000, "checkpoint_every": 1000}


def fake_data(model: str, n: int = 64) -> ImageDataset:
    g = torch.Generator().manual_seed(0)
    if get_spec(model).dataset == "dsprites":
        return ImageDataset(name="dsprites", max_value=1,
                            images=torch.randint(0, 2, (n, 1, 64, 64), dtype=torch.uint8, generator=g))
    return ImageDataset(name="mnist", max_value=255, num_classes=10,
                        images=torch.randint(0, 256, (n, 1, 28, 28), dtype=torch.uint8, generator=g),
                        labels=torch.randint(0, 10, (n,), generator=g))


def config(model: str, **values):
    return with_overrides(get_spec(model).config_cls(), {**SMALL, **values}, model=model)


def run(model: str, runs_dir, name: str, steps: int, **values):
    session = new_session(model, config(model, **values), runs_dir=runs_dir, name=name, device="cpu",
                          steps=steps, dataset=fake_data(model))
    assert train(session) == "finished", session.error
    return session


def weights_of(run_dir) -> dict[str, torch.Tensor]:
    return load_checkpoint(latest_checkpoint(run_dir / "checkpoints")[1])[0]


# ---- config ----------------------------------------------------------------------------------
def test_defaults_are_exact_fp32_eager_and_old_configs_load():
    for name in ("vae", "controlvae", "gan", "wgan-gp", "ssgan", "acgan"):
        spec = get_spec(name)
        cfg = spec.config_cls()
        assert (cfg.precision, cfg.channels_last, cfg.compile) == ("fp32", False, False)
        old = {k: v for k, v in to_dict(cfg).items() if k not in ("precision", "channels_last", "compile")}
        assert from_dict(spec.config_cls, old, model=name) == cfg   # a config.json from before the fields
    with pytest.raises(GMError, match="'precision' must be one of fp32, bf16"):
        config("gan", precision="fp16")
    assert config("gan", channels_last="true", compile="false").channels_last is True


# ---- the options train ------------------------------------------------------------------------
@pytest.mark.parametrize("model", ["vae", "gan", "wgan-gp", "ssgan", "acgan"])
@pytest.mark.parametrize("options", [{"precision": "bf16"}, {"channels_last": True},
                                     {"precision": "bf16", "channels_last": True}])
def test_options_train_without_nan(model, options, runs_dir):
    session = run(model, runs_dir, "r", steps=4, **options)
    rows = RunFolder(session.run.path).read_metrics()
    assert [r["step"] for r in rows] == [1, 2, 4]   # step 1 at once, then every log_every
    for row in rows:
        for key, value in row.items():
            if isinstance(value, float):
                assert value == value and abs(value) != float("inf"), (key, value)
    assert session.run.sample_grids()   # the final grid was drawn with the options on
    if options.get("channels_last"):
        convs = [m for m in session.trainer.modules().values()
                 for m in m.modules() if isinstance(m, torch.nn.Conv2d)]
        assert convs and all(c.weight.is_contiguous(memory_format=torch.channels_last)
                             for c in convs if c.weight.shape[-1] > 1)


@pytest.mark.parametrize("model", ["vae", "gan", "ssgan"])
def test_channels_last_keeps_the_maths(model, runs_dir):
    """Only the memory layout changes: the same run agrees to float rounding."""
    a = run(model, runs_dir, "plain", steps=2, log_every=1).run
    b = run(model, runs_dir, "fast", steps=2, log_every=1, channels_last=True).run
    for ra, rb in zip(a.read_metrics(), b.read_metrics()):
        for k, v in ra.items():
            if k != "time" and isinstance(v, float):
                assert rb[k] == pytest.approx(v, rel=1e-3, abs=1e-5), k
    plain, fast = weights_of(a.path), weights_of(b.path)
    assert plain.keys() == fast.keys()
    for k in plain:  # Adam moves a weight by at most about lr per step, whatever its gradient's size
        torch.testing.assert_close(fast[k], plain[k], rtol=0, atol=1e-3)


def test_bf16_stays_close_to_fp32(runs_dir):
    """bf16 autocast changes the rounding of the forward passes, not what is computed."""
    a = RunFolder(run("vae", runs_dir, "fp32", steps=2).run.path).read_metrics()[-1]
    b = RunFolder(run("vae", runs_dir, "bf16", steps=2, precision="bf16").run.path).read_metrics()[-1]
    assert b["recon"] == pytest.approx(a["recon"], rel=0.02)


@pytest.mark.parametrize("model,options", [("vae", {"channels_last": True, "precision": "bf16"}),
                                           ("ssgan", {"channels_last": True}),
                                           ("wgan-gp", {"precision": "bf16"})])
def test_resume_with_options_is_exact(model, options, runs_dir):
    run(model, runs_dir, "one", steps=6, **options)
    run(model, runs_dir, "two", steps=4, **options)
    resumed = open_session(runs_dir / "two", steps=2, dataset=fake_data(model))
    assert resumed.trainer._channels_last == bool(options.get("channels_last"))
    assert train(resumed) == "finished"
    w1, w2 = weights_of(runs_dir / "one"), weights_of(runs_dir / "two")
    for k in w1:
        torch.testing.assert_close(w2[k], w1[k], rtol=0, atol=0)
    m1, m2 = (RunFolder(runs_dir / n).read_metrics() for n in ("one", "two"))
    assert m1 == [dict(r, time=a["time"]) for r, a in zip(m2, m1)]


def test_options_can_be_switched_off_on_resume(runs_dir):
    run("ssgan", runs_dir, "r", steps=2, channels_last=True, precision="bf16")
    resumed = open_session(runs_dir / "r", steps=2, dataset=fake_data("ssgan"),
                           overrides={"channels_last": "false", "precision": "fp32"})
    assert not resumed.trainer._channels_last and resumed.trainer._autocast is None
    assert train(resumed) == "finished"
    cfg = RunFolder(runs_dir / "r").read_config()["config"]
    assert (cfg["channels_last"], cfg["precision"]) == (False, "fp32")


def test_channels_last_checkpoint_loads_into_a_plain_model(runs_dir):
    session = run("vae", runs_dir, "cl", steps=2, channels_last=True)
    model = load_model(session.run.path, device="cpu")
    weight = next(p for p in model.parameters() if p.dim() == 4)
    assert weight.is_contiguous()   # a plain (channels-first) model
    torch.testing.assert_close(model.sample(4, seed=0), session.trainer.sample(4, seed=0))


# ---- compile ----------------------------------------------------------------------------------
def test_compile_failure_is_one_sentence(runs_dir, monkeypatch):
    """A compiler that fails (no C++ compiler, an unsupported platform) ends the run as failed with
    one sentence that says what to do."""
    def broken_backend(gm, example_inputs):
        raise RuntimeError("no working C++ compiler found")

    original = torch.nn.Module.compile
    monkeypatch.setattr(torch.nn.Module, "compile",
                        lambda self, **kw: original(self, backend=broken_backend))
    from torch import _dynamo
    _dynamo.reset()
    session = new_session("gan", config("gan", compile=True), runs_dir=runs_dir, name="c", device="cpu",
                          steps=2, dataset=fake_data("gan"))
    try:
        assert train(session) == "failed"
    finally:
        _dynamo.reset()
    error = RunFolder(session.run.path).read_state()["error"]
    assert error.startswith("torch.compile could not compile the networks on cpu (")
    assert error.endswith("train with compile=false.") and "\n" not in error


@pytest.mark.slow
def test_compile_trains_and_resumes(runs_dir):
    """torch.compile on a CPU (inductor, gcc): about a minute of compiling for a tiny GAN."""
    from torch import _dynamo
    _dynamo.reset()
    try:
        run("gan", runs_dir, "c", steps=4, compile=True)
        resumed = open_session(runs_dir / "c", steps=2, dataset=fake_data("gan"))
        assert resumed.trainer._compiled
        assert train(resumed) == "finished"
    finally:
        _dynamo.reset()
    assert RunFolder(runs_dir / "c").read_state()["step"] == 6
    assert sorted(weights_of(runs_dir / "c")) == sorted(get_spec("gan").new_trainer(
        config("gan"), fake_data("gan"), CPU).weights())   # same checkpoint keys as eager


# ---- host allocator ---------------------------------------------------------------------------
@pytest.mark.parametrize("env,expected", [({}, "True"), ({"GM_MALLOC_TUNING": "0"}, "False"),
                                          ({"MALLOC_TRIM_THRESHOLD_": "131072"}, "False")])
def test_host_allocator_tuning_respects_the_user(env, expected):
    """gm keeps freed activations in glibc's heap (no page faults every step) unless told not to."""
    import os
    import subprocess
    import sys
    if not sys.platform.startswith("linux"):
        pytest.skip("glibc's mallopt is tuned on Linux only")
    base = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_") and k != "GM_MALLOC_TUNING"}
    out = subprocess.run([sys.executable, "-c", "from gm.device import tune_host_allocator as t; "
                          "print(t(), t())"], env={**base, **env}, capture_output=True, text=True, check=True)
    assert out.stdout.split() == [expected, expected]

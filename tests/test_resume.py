"""Resume equivalence: N+M steps in one go equal N steps, then resume M (same seed, CPU)."""

import torch

from gm.config import with_overrides
from gm.registry import get_spec
from gm.runs.checkpoint import latest_checkpoint, load_checkpoint
from gm.runs.folder import RunFolder
from gm.runs.loop import new_session, open_session, train

SMALL = {"width": "0.25", "log_every": "5", "checkpoint_every": "1000", "sample_every": "1000",
         "batch_size": "16"}


def _config(model="vae"):
    return with_overrides(get_spec(model).config_cls(), SMALL, model=model)


def test_vae_resume_equivalence(runs_dir):
    one = new_session("vae", _config(), runs_dir=runs_dir, name="one", device="cpu", steps=30)
    assert train(one) == "finished"

    two = new_session("vae", _config(), runs_dir=runs_dir, name="two", device="cpu", steps=20)
    assert train(two) == "finished"
    resumed = open_session(runs_dir / "two", steps=10)
    assert resumed.trainer.step == 20
    assert train(resumed) == "finished"

    w1, _, s1 = load_checkpoint(latest_checkpoint(runs_dir / "one" / "checkpoints")[1])
    w2, _, s2 = load_checkpoint(latest_checkpoint(runs_dir / "two" / "checkpoints")[1])
    assert s1 == s2 == 30
    for k in w1:
        torch.testing.assert_close(w1[k], w2[k], rtol=0, atol=0)
    m1 = RunFolder(runs_dir / "one").read_metrics()
    m2 = RunFolder(runs_dir / "two").read_metrics()
    # step 1 is logged at once; the resumed part (steps 21-30) adds no row of its own at step 21
    assert [r["step"] for r in m1] == [r["step"] for r in m2] == [1, 5, 10, 15, 20, 25, 30]
    for a, b in zip(m1, m2):
        assert a["loss"] == b["loss"] and a["kl"] == b["kl"]
    state = RunFolder(runs_dir / "two").read_state()
    assert state["status"] == "finished" and state["step"] == 30


def test_resume_after_crash_drops_unsaved_metrics(runs_dir):
    s = new_session("vae", _config(), runs_dir=runs_dir, name="r", device="cpu", steps=10)
    train(s)
    run = RunFolder(runs_dir / "r")
    run.append_metrics([{"step": 15, "loss": 1.0}])  # logged after the checkpoint, then a crash
    resumed = open_session(run.path, steps=5)
    assert [r["step"] for r in run.read_metrics()] == [1, 5, 10]
    train(resumed)
    assert [r["step"] for r in run.read_metrics()] == [1, 5, 10, 15]   # no extra row at step 11


def test_finished_run_needs_more_steps(runs_dir):
    import pytest

    from gm.errors import GMError
    s = new_session("vae", _config(), runs_dir=runs_dir, name="f", device="cpu", steps=5)
    train(s)
    with pytest.raises(GMError, match="pass --steps"):
        open_session(runs_dir / "f")

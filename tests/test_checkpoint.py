import json
import os

import pytest
import torch

from gm.errors import GMError
from gm.runs import checkpoint as ck
from gm.runs.folder import RunFolder, check_run_name


def _state():
    return {"step": 7, "opt": {"state": {0: {"exp_avg": torch.randn(3, 2), "step": torch.tensor(7.0)}},
                               "param_groups": [{"lr": 1e-4, "betas": (0.9, 0.999), "params": [0]}]},
            "rng": torch.get_rng_state(), "none": None, "nan": float("nan"), "name": "x"}


def test_round_trip_weights_and_nested_state(tmp_path):
    weights = {"vae.w": torch.randn(4, 3), "vae.b": torch.zeros(3)}
    state = _state()
    path = ck.save_checkpoint(tmp_path, 7, weights, state)
    assert path.name == "step-7" and ck.is_complete(path)
    w2, s2, step = ck.load_checkpoint(path)
    assert step == 7
    assert all(torch.equal(weights[k], w2[k]) for k in weights)
    assert torch.equal(s2["opt"]["state"][0]["exp_avg"], state["opt"]["state"][0]["exp_avg"])
    assert s2["opt"]["param_groups"][0]["betas"] == (0.9, 0.999)  # tuples survive
    assert 0 in s2["opt"]["state"]                                # int keys survive
    assert torch.equal(s2["rng"], state["rng"]) and s2["none"] is None and s2["nan"] != s2["nan"]
    # Nothing pickled: the non-tensor state is plain JSON.
    json.loads((path / "state.json").read_text())


def test_torn_write_keeps_previous_checkpoint(tmp_path, monkeypatch):
    ck.save_checkpoint(tmp_path, 10, {"m.w": torch.ones(2)}, {"step": 10})

    def crash(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(ck, "write_json_atomic", crash)  # dies after the safetensors files
    with pytest.raises(OSError):
        ck.save_checkpoint(tmp_path, 20, {"m.w": torch.zeros(2)}, {"step": 20})
    monkeypatch.undo()
    assert [s for s, _ in ck.list_checkpoints(tmp_path)] == [10]
    assert not any(p.name.startswith(".tmp") for p in tmp_path.iterdir())
    step, path = ck.latest_checkpoint(tmp_path)
    w, _, _ = ck.load_checkpoint(path)
    assert step == 10 and torch.equal(w["m.w"], torch.ones(2))


def test_half_written_folder_is_ignored(tmp_path):
    ck.save_checkpoint(tmp_path, 5, {"m.w": torch.ones(2)}, {})
    # A crash between mkdir and rename leaves a temp folder; a renamed folder missing meta.json
    # (impossible with our writer, but possible by hand) is not complete either.
    (tmp_path / ".tmp-step-9-abc").mkdir()
    (tmp_path / "step-9").mkdir()
    (tmp_path / "step-9" / "model.safetensors").write_bytes(b"junk")
    assert ck.latest_checkpoint(tmp_path)[0] == 5
    # Pruning never touches a temp folder (it may be another writer's); the lock holder's clean-up
    # at the start of a run removes them, and the incomplete step-9 with them.
    ck.prune_checkpoints(tmp_path, keep=3)
    assert (tmp_path / ".tmp-step-9-abc").exists()
    ck.clean_partial_checkpoints(tmp_path)
    assert sorted(os.listdir(tmp_path)) == ["step-5"]


def test_damaged_checkpoint_is_a_clear_error(tmp_path):
    path = ck.save_checkpoint(tmp_path, 3, {"m.w": torch.ones(2)}, {})
    (path / "model.safetensors").write_bytes(b"\x00" * 10)
    with pytest.raises(GMError, match="damaged"):
        ck.load_checkpoint(path)


def test_pickle_is_never_used(tmp_path):
    path = ck.save_checkpoint(tmp_path, 1, {"m.w": torch.ones(2)}, _state())
    for f in path.iterdir():
        assert not f.read_bytes().startswith(b"\x80"), f"{f.name} looks like a pickle"


def test_prune_keeps_newest_and_protected(tmp_path):
    for s in (1, 2, 3, 4, 5):
        ck.save_checkpoint(tmp_path, s, {"m.w": torch.ones(1)}, {})
    ck.prune_checkpoints(tmp_path, keep=2, protect={1})
    assert [s for s, _ in ck.list_checkpoints(tmp_path)] == [1, 4, 5]


def test_resaving_a_step_replaces_it(tmp_path):
    ck.save_checkpoint(tmp_path, 4, {"m.w": torch.ones(1)}, {})
    ck.save_checkpoint(tmp_path, 4, {"m.w": torch.zeros(1)}, {})
    w, _, _ = ck.load_checkpoint(tmp_path / "step-4")
    assert torch.equal(w["m.w"], torch.zeros(1))
    assert sorted(os.listdir(tmp_path)) == ["step-4"]


@pytest.mark.parametrize("name", ["../evil", "a/b", ".hidden", "", "-x", "a" * 101, "x..y"])
def test_run_names_cannot_escape(name, tmp_path):
    with pytest.raises(GMError, match="Invalid run name"):
        check_run_name(name)
    with pytest.raises(GMError):
        RunFolder.create(tmp_path, name, {"model": "vae"})


def test_metrics_truncation_drops_torn_line_and_later_steps(tmp_path):
    run = RunFolder.create(tmp_path, "r", {"model": "vae"})
    run.append_metrics([{"step": s, "loss": float(s)} for s in (10, 20, 30)])
    with open(run.metrics_path, "a") as fh:
        fh.write('{"step": 40, "lo')  # a crash mid-line
    assert [r["step"] for r in run.read_metrics()] == [10, 20, 30]
    run.truncate_metrics_after(20)
    assert [r["step"] for r in run.read_metrics()] == [10, 20]
    assert run.metrics_path.read_text().endswith("\n")

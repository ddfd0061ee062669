"""Checkpoints you can trust: only finite states are written, divergence rolls back to a checkpoint
that really is good, each file is checked against its checksum, a damaged newest checkpoint falls
back to the previous one with one warning line, and what a kill left is cleaned by the next run."""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

import gm
from gm.errors import GMError
from gm.runs import checkpoint as ck
from gm.runs.folder import RunFolder
from gm.runs.loop import take_lock
from gm.trainers.vae import VAETrainer

REPO = Path(__file__).resolve().parents[1]
SMALL = {"width": 0.25, "batch_size": 16, "log_every": 5, "sample_every": 1000, "checkpoint_every": 5,
         "keep_checkpoints": 3}


def _run(manager, runs_dir, tiny_data, name: str, steps: int = 15, **config) -> Path:
    job = manager.start_run("vae", {**SMALL, **config}, steps=steps, device="cpu", runs_dir=runs_dir, name=name,
                            data_dir=str(tiny_data))
    done = manager.wait(job.key, timeout=120)
    assert done.status == "finished", done.error
    return Path(job.key)


def _steps(run: Path) -> list[int]:
    return [r["step"] for r in RunFolder(run).read_metrics()]


def _checkpoints(run: Path) -> list[int]:
    return [s for s, _ in ck.list_checkpoints(run / "checkpoints")]


def _warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]


# ---- damage, one way each -------------------------------------------------------------------------
def _flip_a_byte(folder: Path) -> None:
    path = folder / "model.safetensors"
    data = bytearray(path.read_bytes())
    data[-3] ^= 0x40  # a weight's byte: still a valid file, no longer the one written
    path.write_bytes(bytes(data))


def _truncate(folder: Path) -> None:
    path = folder / "model.safetensors"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _nan_weights(folder: Path, *, keep_checksum_valid: bool = True) -> None:
    """NaN bytes in a weight, with meta.json rewritten to match (what only the finite check catches)."""
    path = folder / "model.safetensors"
    weights = load_file(str(path))
    name = sorted(weights)[0]
    weights[name] = torch.full_like(weights[name], float("nan"))
    save_file(weights, str(path))
    meta = json.loads((folder / "meta.json").read_text())
    if keep_checksum_valid:
        meta["sha256"]["model.safetensors"] = hashlib.sha256(path.read_bytes()).hexdigest()
    else:
        meta.pop("sha256")  # a checkpoint from before checksums
    (folder / "meta.json").write_text(json.dumps(meta))


def _nan_weights_old_format(folder: Path) -> None:
    _nan_weights(folder, keep_checksum_valid=False)


def _truncate_old_format(folder: Path) -> None:
    _truncate(folder)
    (folder / "meta.json").write_text(json.dumps({"step": int(folder.name.split("-")[1]), "format": 1}))


def _missing_file(folder: Path) -> None:
    (folder / "state.safetensors").unlink()


DAMAGE = {
    "checksum mismatch": (_flip_a_byte, "model.safetensors does not match its checksum"),
    "truncated safetensors": (_truncate, "model.safetensors does not match its checksum"),
    "truncated, no checksums (old format)": (_truncate_old_format, "model.safetensors is not valid safetensors"),
    "NaN bytes in the weights": (_nan_weights, "holds nan"),
    "NaN bytes, no checksums (old format)": (_nan_weights_old_format, "holds nan"),
    "missing file": (_missing_file, "incomplete: no state.safetensors"),
}


# ---- the writer -------------------------------------------------------------------------------------
def test_a_non_finite_state_is_never_written(tmp_path):
    ck.save_checkpoint(tmp_path, 1, {"m.w": torch.ones(2)}, {"opt": {"exp_avg": torch.zeros(2)}})
    with pytest.raises(ck.NonFiniteState, match=r"checkpoint step-2: m\.w holds nan, and a checkpoint is written"):
        ck.save_checkpoint(tmp_path, 2, {"m.w": torch.tensor([1.0, float("nan")])}, {})
    with pytest.raises(ck.NonFiniteState, match=r"step-3: state opt\.exp_avg holds inf"):
        ck.save_checkpoint(tmp_path, 3, {"m.w": torch.ones(2)},
                           {"opt": {"exp_avg": torch.tensor([float("inf")], dtype=torch.bfloat16)}})
    with pytest.raises(ck.NonFiniteState, match=r"holds -inf"):
        ck.save_checkpoint(tmp_path, 4, {"m.b": torch.tensor([-float("inf")], dtype=torch.float16)}, {})
    assert sorted(os.listdir(tmp_path)) == ["step-1"]  # not even a temp folder was made
    # Integer tensors (RNG states, counters) and plain floats in the JSON part are not weights.
    ck.save_checkpoint(tmp_path, 5, {"m.w": torch.ones(2)}, {"rng": torch.get_rng_state(), "best": float("inf")})


def test_meta_records_a_checksum_of_every_file(tmp_path):
    path = ck.save_checkpoint(tmp_path, 7, {"m.w": torch.randn(3)}, {"x": torch.randn(2), "n": 1})
    sums = json.loads((path / "meta.json").read_text())["sha256"]
    assert sorted(sums) == ["model.safetensors", "state.json", "state.safetensors"]
    for name, digest in sums.items():
        assert hashlib.sha256((path / name).read_bytes()).hexdigest() == digest


def test_checkpoints_from_before_checksums_still_load(tmp_path):
    path = ck.save_checkpoint(tmp_path, 3, {"m.w": torch.ones(2)}, {"s": torch.zeros(1)})
    (path / "meta.json").write_text(json.dumps({"step": 3, "format": 1}))
    weights, state, step = ck.load_checkpoint(path)
    assert step == 3 and torch.equal(weights["m.w"], torch.ones(2)) and torch.equal(state["s"], torch.zeros(1))
    assert ck.latest_good_checkpoint(tmp_path) == (3, path)


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_damaged_newest_checkpoint_falls_back_with_one_warning(tmp_path, caplog, damage):
    run = tmp_path / "r"
    checkpoints = run / "checkpoints"
    for step in (10, 20):
        ck.save_checkpoint(checkpoints, step, {"m.w": torch.full((4,), float(step))}, {"s": torch.ones(1)})
    spoil, reason = DAMAGE[damage]
    spoil(checkpoints / "step-20")
    with pytest.raises(ck.CheckpointDamaged, match=rf"step-20 is damaged \(.*{reason}"):
        ck.load_checkpoint(checkpoints / "step-20")
    caplog.set_level(logging.WARNING)
    notes, damaged = [], []
    assert ck.latest_good_checkpoint(checkpoints, notes, damaged) == (10, checkpoints / "step-10")
    assert _warnings(caplog) == notes and len(notes) == 1
    assert notes[0].startswith("Checkpoint step-20 (") and reason in notes[0]
    assert notes[0].endswith("of run 'r' is damaged; using step-10 instead.")
    assert damaged == [checkpoints / "step-20"]


def test_every_checkpoint_damaged_is_one_sentence_not_a_fresh_start(tmp_path):
    checkpoints = tmp_path / "r" / "checkpoints"
    ck.save_checkpoint(checkpoints, 10, {"m.w": torch.ones(2)}, {})
    _flip_a_byte(checkpoints / "step-10")
    with pytest.raises(GMError, match=r"Every checkpoint of run 'r' is damaged \(step-10: model\.safetensors "
                                      r"does not match its checksum\); delete .* or train a new run\."):
        ck.latest_good_checkpoint(checkpoints)


def test_load_model_falls_back_to_the_previous_checkpoint(manager, runs_dir, tiny_data, caplog):
    run = _run(manager, runs_dir, tiny_data, "m")
    assert _checkpoints(run) == [5, 10, 15]
    expected, _, _ = ck.load_checkpoint(run / "checkpoints" / "step-10")
    _nan_weights(run / "checkpoints" / "step-15")
    caplog.set_level(logging.WARNING)
    model = gm.load_model(run, device="cpu")
    got = model.state_dict()
    assert set(got) == set(expected)
    assert all(torch.equal(got[k].cpu(), v) for k, v in expected.items())
    assert len(_warnings(caplog)) == 1 and "using step-10 instead" in _warnings(caplog)[0]
    assert _checkpoints(run) == [5, 10, 15]  # loading moves nothing


@pytest.mark.parametrize("damage", ["checksum mismatch", "missing file"])
def test_resume_falls_back_and_sets_the_damaged_checkpoint_aside(manager, runs_dir, tiny_data, caplog, damage):
    run = _run(manager, runs_dir, tiny_data, "d")
    DAMAGE[damage][0](run / "checkpoints" / "step-15")
    caplog.set_level(logging.WARNING)
    job = manager.resume_run(run, steps=10)
    assert job.step == 10 and job.total_steps == 20
    assert len(job.notes) == 1 and job.notes[0].endswith("using step-10 instead.")
    assert _warnings(caplog) == list(job.notes)
    done = manager.wait(job.key, timeout=120)
    assert done.status == "finished" and done.step == 20, done.error
    assert _steps(run) == [1, 5, 10, 15, 20]   # the old row 15 dropped with its checkpoint, written anew
    assert _checkpoints(run) == [10, 15, 20]
    assert (run / "checkpoints" / "damaged-step-15").is_dir()
    ck.load_checkpoint(run / "checkpoints" / "step-15")  # the new step-15 is whole


def test_cli_resume_prints_the_fallback_warning_on_stderr(manager, runs_dir, tiny_data):
    run = _run(manager, runs_dir, tiny_data, "cli")
    _truncate(run / "checkpoints" / "step-15")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "GM_DATA_DIR": str(tiny_data), "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-m", "gm", "resume", str(run), "--steps", "5", "--quiet"], cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    warning = ("Checkpoint step-15 (model.safetensors does not match its checksum) of run 'cli' is damaged; "
               "using step-10 instead.")
    assert done.stderr.splitlines().count(warning) == 1, done.stderr
    assert done.stdout.startswith(f"finished: {run.resolve()} at step 15")
    assert _steps(run) == [1, 5, 10, 15]


# ---- divergence rolls back --------------------------------------------------------------------------
def test_divergence_rolls_back_and_resume_with_a_smaller_lr_continues(manager, runs_dir, tiny_data, monkeypatch):
    """The update of step 20 breaks the weights while its own loss is still finite: the checkpoint of
    step 20 is refused, step 10 stays the resume point, and a resume with a smaller lr just works."""
    real_step = VAETrainer.train_step

    def poisoned(self, batch):
        metrics = real_step(self, batch)
        if self.step == 20:
            with torch.no_grad():
                next(self.vae.parameters()).fill_(float("nan"))
        return metrics

    monkeypatch.setattr(VAETrainer, "train_step", poisoned)
    job = manager.start_run("vae", {**SMALL, "checkpoint_every": 10}, steps=40, device="cpu", runs_dir=runs_dir,
                            name="nan", data_dir=str(tiny_data))
    done = manager.wait(job.key, timeout=120)
    run = Path(job.key)
    assert done.status == "diverged" and done.step == 10
    assert "holds nan" not in done.error and "became nan at step 20" in done.error
    assert "the last good checkpoint is step 10" in done.error
    state = RunFolder(run).read_state()
    assert (state["status"], state["diverged_step"], state["last_checkpoint"]) == ("diverged", 20, "step-10")
    assert state["diverged_metric"].startswith("vae.")  # the weight that broke
    assert _checkpoints(run) == [10]
    assert not [p for p in (run / "checkpoints").iterdir() if p.name != "step-10"]
    assert ck.latest_good_checkpoint(run / "checkpoints") == (10, run / "checkpoints" / "step-10")

    monkeypatch.undo()
    again = manager.resume_run(job.key, overrides={"lr": "5e-5"})
    assert again.step == 10 and again.total_steps == 40 and again.notes == ()
    done = manager.wait(job.key, timeout=120)
    assert done.status == "finished" and done.step == 40 and done.error is None
    assert RunFolder(run).read_config()["config"]["lr"] == 5e-5
    assert _steps(run) == [1, *range(5, 41, 5)]   # the diverged attempt's rows after step 10 re-logged
    assert all(math.isfinite(r["loss"]) for r in RunFolder(run).read_metrics())


# ---- what a kill leaves -------------------------------------------------------------------------------
def test_kill_leftovers_are_cleaned_by_the_next_holder_of_the_lock(manager, runs_dir, tiny_data):
    run = _run(manager, runs_dir, tiny_data, "k")
    checkpoints = run / "checkpoints"
    # Killed while writing step-20: its temp folder holds only the weights.
    (checkpoints / ".tmp-step-20-0123abcd").mkdir()
    shutil.copy(checkpoints / "step-15" / "model.safetensors", checkpoints / ".tmp-step-20-0123abcd")
    # Killed while pruning step-5 (renamed out of the listing, half deleted).
    os.replace(checkpoints / "step-5", checkpoints / ".pruned-step-5-0badcafe")
    (checkpoints / ".pruned-step-5-0badcafe" / "meta.json").unlink()
    # A step folder without its meta.json (older versions pruned in place).
    (checkpoints / "step-12").mkdir()
    (checkpoints / "step-12" / "state.json").write_text("{}")
    # Killed between the two renames of a re-save of step-15: only the old copy is left.
    os.replace(checkpoints / "step-15", checkpoints / ".old-step-15-feedf00d")

    lock = take_lock(RunFolder(run))
    try:
        assert sorted(os.listdir(checkpoints)) == ["step-10", "step-15"]
    finally:
        lock.release()
    job = manager.resume_run(run, steps=5)
    assert job.step == 15 and job.notes == ()
    assert manager.wait(job.key, timeout=120).status == "finished"
    assert sorted(os.listdir(checkpoints)) == ["step-10", "step-15", "step-20"]
    assert _steps(run) == [1, 5, 10, 15, 20]


def test_pruning_renames_before_deleting_so_a_kill_leaves_no_half_folder(tmp_path, monkeypatch):
    for step in (1, 2, 3):
        ck.save_checkpoint(tmp_path, step, {"m.w": torch.ones(1)}, {})
    monkeypatch.setattr(ck.shutil, "rmtree", lambda *a, **k: None)  # killed before deleting anything
    ck.prune_checkpoints(tmp_path, keep=1)
    monkeypatch.undo()
    assert [s for s, _ in ck.list_checkpoints(tmp_path)] == [3]
    leftovers = sorted(p.name.rsplit("-", 1)[0] for p in tmp_path.iterdir() if p.name.startswith("."))
    assert leftovers == [".pruned-step-1", ".pruned-step-2"]
    ck.clean_partial_checkpoints(tmp_path)
    assert sorted(os.listdir(tmp_path)) == ["step-3"]

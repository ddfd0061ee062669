"""kill -9 safety: `python -m gm train` killed at random moments (checkpoint writes included) leaves
run folders that resume from a valid checkpoint and whose metrics.jsonl reads without error."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from gm.runs.checkpoint import latest_checkpoint, list_checkpoints, load_checkpoint
from gm.runs.folder import RunFolder
from gm.runs.jobs import JobManager

REPO = Path(__file__).resolve().parents[1]
# Tiny model, a checkpoint every 2 steps: most of the wall time is spent writing checkpoints.
TRAIN_SETTINGS = ["--set", "width=0.25", "--set", "batch_size=16", "--set", "log_every=1",
                  "--set", "checkpoint_every=2", "--set", "keep_checkpoints=2", "--set", "sample_every=1000"]


def _default_sigint() -> None:
    # A child of a shell's background job starts with SIGINT ignored, and then Python never raises
    # KeyboardInterrupt; give it the default disposition like an interactive terminal would.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _gm(args: list[str], data_dir: Path, stdout=subprocess.DEVNULL) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "GM_DATA_DIR": str(data_dir), "PYTHONPATH": str(REPO)}
    return subprocess.Popen([sys.executable, "-m", "gm", *args], cwd=REPO, env=env, stdout=stdout,
                            stderr=subprocess.PIPE, preexec_fn=_default_sigint)


def _kill_at_random(proc: subprocess.Popen, run: Path, rng: random.Random, during_write: bool) -> str:
    """SIGKILL once the run has a checkpoint: at the first sight of a checkpoint being written, or
    after a random delay. Returns what happened."""
    deadline = time.monotonic() + 120
    while not list_checkpoints(run / "checkpoints"):
        if proc.poll() is not None:
            raise AssertionError(f"gm exited early: {proc.stderr.read().decode()[-2000:]}")
        assert time.monotonic() < deadline, "no checkpoint within 120 s"
        time.sleep(0.01)
    moment = "after a delay"
    if during_write:
        end = time.monotonic() + 5
        while time.monotonic() < end and moment == "after a delay":
            if any(p.name.startswith(".tmp-step-") for p in (run / "checkpoints").iterdir()):
                moment = "during a checkpoint write"
    else:
        time.sleep(rng.uniform(0.0, 0.6))
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    proc.stderr.close()
    if any(p.name.startswith(".tmp-step-") for p in (run / "checkpoints").iterdir()):
        moment += " (a half-written checkpoint was left)"
    return moment


def _check_folder(run: Path, manager: JobManager) -> None:
    # Every complete line is JSON; at most the last one is torn (no newline).
    text = (run / "metrics.jsonl").read_bytes()
    lines = text.split(b"\n")
    for line in lines[:-1]:
        json.loads(line)
    steps = [r["step"] for r in RunFolder(run).read_metrics()]
    assert steps == sorted(set(steps))
    json.loads((run / "state.json").read_text())
    step, path = latest_checkpoint(run / "checkpoints")
    weights, state, loaded = load_checkpoint(path)
    assert loaded == step and all(bool(torch.isfinite(w).all()) for w in weights.values())

    job = manager.resume_run(run, steps=3)  # the killed owner is gone: the run is resumable
    assert job.step == step
    done = manager.wait(job.key, timeout=120)
    assert done.status == "finished" and done.step == step + 3, done.error
    steps = [r["step"] for r in RunFolder(run).read_metrics()]
    assert steps == sorted(set(steps)) and steps[-1] == step + 3
    assert not [p for p in (run / "checkpoints").iterdir() if p.name.startswith(".")]


def _trials(n: int, seed: int, runs_dir: Path, data_dir: Path, resume_too: bool) -> list[str]:
    """n runs trained (and, with resume_too, resumed) by subprocesses killed with SIGKILL."""
    rng = random.Random(seed)
    moments = []
    runs = [runs_dir / f"k{i}" for i in range(n)]
    for batch in (runs[i:i + 4] for i in range(0, n, 4)):  # a few at once: the imports overlap
        procs = [_gm(["train", "vae", "--steps", "100000", "--device", "cpu", "--runs-dir", str(runs_dir),
                      "--name", run.name, "--quiet", *TRAIN_SETTINGS], data_dir) for run in batch]
        for i, (proc, run) in enumerate(zip(procs, batch)):
            moments.append(_kill_at_random(proc, run, rng, during_write=i % 2 == 0))
        if resume_too:  # and once more while resuming (metrics rewrite, first checkpoints)
            before = [latest_checkpoint(run / "checkpoints")[0] for run in batch]
            procs = [_gm(["resume", str(run), "--steps", "100000", "--quiet", "--set", "checkpoint_every=3"],
                         data_dir) for run in batch]
            for i, (proc, run, step) in enumerate(zip(procs, batch, before)):
                deadline = time.monotonic() + 120
                while latest_checkpoint(run / "checkpoints")[0] == step and time.monotonic() < deadline:
                    time.sleep(0.01)
                moments.append(_kill_at_random(proc, run, rng, during_write=i % 2 == 1))
    with JobManager() as manager:
        for run in runs:
            _check_folder(run, manager)
    print("kill moments:", moments)
    return moments


def test_kill9_during_training_leaves_resumable_runs(runs_dir, tiny_data):
    moments = _trials(3, seed=int(time.time()), runs_dir=runs_dir, data_dir=tiny_data, resume_too=False)
    assert any(m.startswith("during a checkpoint write") for m in moments)


@pytest.mark.slow
def test_kill9_many_times_including_resumes(runs_dir, tiny_data):
    moments = _trials(8, seed=int(time.time()), runs_dir=runs_dir, data_dir=tiny_data, resume_too=True)
    assert any(m.startswith("during a checkpoint write") for m in moments)


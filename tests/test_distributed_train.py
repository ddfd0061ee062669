"""torchrun on CPU (gloo): N processes train one run as one process would, write it once, stop,
pause and fail together, and resume on N or on one process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from gm.data.base import Batcher
from gm.runs.checkpoint import list_checkpoints, load_checkpoint
from gm.runs.folder import RunFolder
from gm.runs.launch import torchrun_command, without_nproc

REPO = Path(__file__).resolve().parents[1]
QUIET = ["--quiet", "--set", "sample_every=1000"]


def _env(data_dir: Path) -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "GM_DATA_DIR": str(data_dir), "PYTHONPATH": str(REPO)}


def _command(nproc: int, args: list[str]) -> list[str]:
    if nproc == 1:
        return [sys.executable, "-m", "gm", *args]
    return torchrun_command(nproc, args)


def _gm(nproc: int, args: list[str], data_dir: Path, timeout: float = 240) -> subprocess.CompletedProcess:
    out = subprocess.run(_command(nproc, args), cwd=REPO, env=_env(data_dir), capture_output=True, text=True,
                         timeout=timeout)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
    return out


def _weights(run: Path, step: int) -> dict[str, torch.Tensor]:
    return load_file(str(run / "checkpoints" / f"step-{step}" / "model.safetensors"))


def _max_diff(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    assert a.keys() == b.keys()
    return max(float((a[k].double() - b[k].double()).abs().max()) for k in a)


def _metric_steps(run: Path) -> list[int]:
    return [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]


# ---- no processes needed ----------------------------------------------------------------------
def test_batcher_shards_are_disjoint_slices_of_the_one_process_batch(tiny_data):
    from gm.data import load_dataset
    ds = load_dataset("dsprites", str(tiny_data))
    whole = Batcher(ds, 16, 3, torch.device("cpu"))
    ranks = [Batcher(ds, 16, 3, torch.device("cpu"), shard=(r, 2)) for r in range(2)]
    for k in (1, 5):   # several critic batches per step: each one sharded
        full = whole.draw(k).only()
        parts = [b.draw(k).only() for b in ranks]
        assert all(p.shape[0] == 8 * k for p in parts)
        for i in range(k):
            expected = full[16 * i:16 * (i + 1)]
            got = torch.cat([p[8 * i:8 * (i + 1)] for p in parts])
            assert torch.equal(got, expected)
    assert all(b.state_dict() == whole.state_dict() for b in ranks)   # one shared position


def test_a_batch_that_does_not_split_over_the_processes_is_one_sentence(tiny_data):
    from gm.data import load_dataset
    from gm.errors import GMError
    ds = load_dataset("dsprites", str(tiny_data))
    with pytest.raises(GMError, match=r"batch_size 15 does not split over 2 processes.*per_rank_batch=true"):
        Batcher(ds, 15, 0, torch.device("cpu"), shard=(0, 2))


def test_nproc_is_taken_out_of_the_command_torchrun_runs():
    assert without_nproc(["train", "vae", "--nproc", "2", "--steps", "5", "--nproc=3"]) == \
        ["train", "vae", "--steps", "5"]
    cmd = torchrun_command(2, ["train", "vae", "--nproc", "2"])
    assert cmd[1:4] == ["-m", "torch.distributed.run", "--standalone"]
    assert cmd[-4:] == ["-m", "gm", "train", "vae"] and "--nproc_per_node=2" in cmd


def test_bad_nproc_is_one_sentence(tiny_data):
    out = subprocess.run([sys.executable, "-m", "gm", "train", "vae", "--nproc", "0"], cwd=REPO,
                         env=_env(tiny_data), capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and out.stderr.strip() == "error: --nproc must be between 1 and 256; got 0."


def test_control_requests_round_trip_through_the_run_folder(runs_dir):
    from gm.errors import GMError
    run = RunFolder.create(runs_dir, "r", {"model": "vae", "config": {}})
    assert run.read_request() is None
    run.request("pause")
    assert run.read_request() == "pause"
    run.control_path.write_text("{broken")
    assert run.read_request() is None
    with pytest.raises(GMError, match="pause, continue, stop"):
        run.request("explode")
    run.clear_request()
    run.clear_request()
    assert not run.control_path.exists()


# ---- torchrun, 2 CPU processes -----------------------------------------------------------------
def test_two_processes_train_as_one_and_resume_bit_exactly(tmp_path, tiny_data):
    """VAE (no batch norm): 2 processes of 8 images = 1 process of 16, to 1e-5; a stop at step 10
    and a resume on 2 processes gives exactly the uninterrupted run; metrics are written once."""
    runs = tmp_path / "runs"
    common = ["--runs-dir", str(runs), "--batch-size", "16", "--data-dir", str(tiny_data),
              "--set", "log_every=2", "--set", "checkpoint_every=10", *QUIET]
    _gm(2, ["train", "vae", "--steps", "20", "--name", "two", *common], tiny_data)
    _gm(1, ["train", "vae", "--steps", "20", "--name", "one", *common], tiny_data)
    _gm(2, ["train", "vae", "--steps", "10", "--name", "split", *common], tiny_data)
    resumed = _gm(2, ["resume", str(runs / "split"), "--steps", "10", "--quiet"], tiny_data)
    assert "not bit-exact" not in resumed.stderr

    two, one = _weights(runs / "two", 20), _weights(runs / "one", 20)
    assert _max_diff(two, one) < 1e-5
    assert _max_diff(_weights(runs / "split", 20), two) == 0.0      # bit-exact resume on 2
    assert _metric_steps(runs / "two") == [1, *range(2, 21, 2)]     # each step once (step 1 at once)
    assert _metric_steps(runs / "split") == [1, *range(2, 21, 2)]   # the resume adds no row at step 11
    state = json.loads((runs / "two" / "state.json").read_text())
    assert state["status"] == "finished" and state["processes"] == 2
    _, tstate, _ = load_checkpoint(runs / "two" / "checkpoints" / "step-20")
    assert tstate["ranks"]["world_size"] == 2 and len(tstate["ranks"]["noise_rng"]) == 2
    one_rows = [json.loads(x) for x in (runs / "one" / "metrics.jsonl").read_text().splitlines()]
    two_rows = [json.loads(x) for x in (runs / "two" / "metrics.jsonl").read_text().splitlines()]
    for a, b in zip(one_rows, two_rows):   # the logged losses are the global batch's, as on one process
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-5) and a["epoch"] == b["epoch"]


# WGAN (clipping, RMSprop) on demand: WGAN-GP's run covers several critic steps and the penalty's
# double backward under torchrun in the default suite.
@pytest.mark.parametrize("model", [pytest.param("wgan", marks=pytest.mark.slow), "wgan-gp"])
def test_critic_steps_and_gradient_penalty_train_as_one_process(tmp_path, mnist_dir, model):
    """5 critic steps per generator step (WGAN: clipping, RMSProp; WGAN-GP: the penalty's double
    backward, Adam), batch norm over both processes (sync_bn): every logged loss of the first 3
    steps equals one process's to 1e-5 (absolute or relative), and G draws the same images to 0.02.

    Why not the weights to 1e-5: Adam and RMSProp divide each gradient by its own running size, so a
    weight whose gradient is pure round-off (a bias before batch norm has a true gradient of 0)
    moves by a full step of either sign; the sums over 2 processes round differently from one."""
    runs = tmp_path / "runs"
    common = ["--runs-dir", str(runs), "--batch-size", "16", "--data-dir", str(mnist_dir), "--steps", "3",
              "--set", "log_every=1", "--set", "width=0.25", "--set", "sync_bn=true", *QUIET]
    _gm(2, ["train", model, "--name", "two", *common], mnist_dir)
    _gm(1, ["train", model, "--name", "one", *common], mnist_dir)
    one = [json.loads(x) for x in (runs / "one" / "metrics.jsonl").read_text().splitlines()]
    two = [json.loads(x) for x in (runs / "two" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in two] == [1, 2, 3]
    for a, b in zip(one, two):
        for key in ("d_loss", "g_loss", "d_real", "d_fake", "w_dist"):
            assert a[key] == pytest.approx(b[key], rel=1e-5, abs=1e-5), (a["step"], key)
        if model == "wgan-gp":
            assert a["gp"] == pytest.approx(b["gp"], rel=1e-5, abs=1e-5)

    from gm.models.loading import load_model
    images = [load_model(runs / name).sample(16, seed=7) for name in ("one", "two")]
    assert float((images[0] - images[1]).abs().max()) < 0.02


def _start(nproc: int, args: list[str], data_dir: Path) -> subprocess.Popen:
    return subprocess.Popen(_command(nproc, args), cwd=REPO, env=_env(data_dir), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)


def _wait_for(what, timeout: float = 120.0, proc: subprocess.Popen | None = None):
    deadline = time.monotonic() + timeout
    while True:
        value = what()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"exited early: {proc.stderr.read()[-3000:]}")
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def _status(run: Path) -> str | None:
    try:
        return json.loads((run / "state.json").read_text()).get("status")
    except (OSError, ValueError):
        return None


def test_pause_continue_stop_and_sigterm_reach_every_process(tmp_path, tiny_data):
    runs = tmp_path / "runs"
    args = ["train", "vae", "--steps", "100000", "--name", "ctl", "--runs-dir", str(runs), "--batch-size", "16",
            "--data-dir", str(tiny_data), "--set", "log_every=5", *QUIET]
    run = runs / "ctl"
    proc = _start(2, args, tiny_data)
    try:
        _wait_for(lambda: _status(run) == "running" and (run / "metrics.jsonl").exists(), proc=proc)
        folder = RunFolder(run)
        folder.request("pause")
        _wait_for(lambda: _status(run) == "paused", proc=proc)
        paused_at = json.loads((run / "state.json").read_text())["step"]
        assert list_checkpoints(run / "checkpoints")[-1][0] == paused_at   # a pause saves first
        time.sleep(1.0)
        assert json.loads((run / "state.json").read_text())["step"] == paused_at
        folder.request("continue")
        _wait_for(lambda: _status(run) == "running" and _metric_steps(run)[-1] > paused_at, proc=proc)
        folder.request("stop")
        assert proc.wait(60) == 0
        state = json.loads((run / "state.json").read_text())
        assert state["status"] == "stopped" and state["last_checkpoint"] == f"step-{state['step']}"
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)

    # SIGTERM to torchrun (a scheduler's cancel; Ctrl-C likewise): every rank stops at one step.
    proc = _start(2, ["resume", str(run), "--steps", "100000", "--quiet"], tiny_data)
    try:
        _wait_for(lambda: _status(run) == "running", proc=proc)
        time.sleep(1.0)
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
        state = json.loads((run / "state.json").read_text())
        assert state["status"] == "stopped" and state["last_checkpoint"] == f"step-{state['step']}"
        assert state["step"] > paused_at
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    steps = _metric_steps(run)
    assert steps == sorted(set(steps))


def test_a_killed_process_fails_the_run_cleanly_and_it_resumes_on_two_and_on_one(tmp_path, tiny_data):
    runs = tmp_path / "runs"
    run = runs / "dies"
    proc = _start(2, ["train", "vae", "--steps", "100000", "--name", "dies", "--runs-dir", str(runs),
                      "--batch-size", "16", "--data-dir", str(tiny_data), "--set", "checkpoint_every=10", *QUIET],
                  tiny_data)
    try:
        _wait_for(lambda: len(list_checkpoints(run / "checkpoints")) >= 2, proc=proc)
        ranks = [int(p) for p in subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True,
                                                text=True).stdout.split()]
        assert len(ranks) == 2
        os.kill(max(ranks), signal.SIGKILL)    # the second worker torchrun started: rank 1
        proc.wait(90)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    state = json.loads((run / "state.json").read_text())
    assert state["status"] == "failed", state
    assert state["error"].startswith("Training process rank 1 (pid ") and "resume the run" in state["error"]
    last = list_checkpoints(run / "checkpoints")[-1][0]

    _gm(2, ["resume", str(run), "--steps", "10", "--quiet"], tiny_data)
    out = _gm(1, ["resume", str(run), "--steps", "10", "--quiet"], tiny_data)
    assert f"Step {last + 10} was trained on 2 process(es); continuing on 1 works but is not bit-exact" in out.stderr
    assert json.loads((run / "state.json").read_text())["step"] == last + 20


# ---- the job manager (the app's Train form) starts torchrun jobs ------------------------------
@pytest.fixture
def torchrun_jobs(monkeypatch):
    """A JobManager whose torchrun subprocesses find this checkout, and a way to start a long
    two-process VAE job on it."""
    from gm.runs.jobs import JobManager
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setenv("PYTHONPATH", str(REPO))
    with JobManager() as manager:
        def start(runs_dir: Path, name: str, data_dir: Path):
            return manager.start_run("vae", {"batch_size": 16, "log_every": 5, "sample_every": 1000}, steps=100000,
                                     runs_dir=runs_dir, name=name, device="cpu", data_dir=str(data_dir), processes=2)
        yield manager, start


def test_the_job_manager_trains_a_run_on_two_processes_and_controls_it(tmp_path, tiny_data, torchrun_jobs):
    manager, start = torchrun_jobs
    job = start(tmp_path / "runs", "app", tiny_data)
    assert job.device == "cpu x2"
    _wait_for(lambda: manager.get(job.key).step >= 10)
    manager.pause(job.key)
    paused = manager.wait(job.key, ("paused",), timeout=60)
    assert paused.status == "paused" and paused.requested is None
    manager.unpause(job.key)
    _wait_for(lambda: manager.get(job.key).step > paused.step)
    live = manager.get(job.key)
    assert live.status == "running" and live.images_per_sec and live.metrics.get("loss")
    manager.stop(job.key)
    done = manager.wait(job.key, timeout=60)
    assert done.status == "stopped" and done.error is None
    again = manager.resume_run(job.key, steps=5, processes=2)
    finished = manager.wait(again.key, timeout=120)
    assert finished.status == "finished", finished.error
    assert json.loads((Path(job.key) / "state.json").read_text())["step"] == done.step + 5


def test_a_torchrun_job_shows_live_samples_through_its_run_folder(tmp_path, tiny_data, torchrun_jobs):
    """Monitor's live samples for a job on two processes: asking makes rank 0 draw the fixed-noise
    grid into the run folder every few seconds; nobody asking, nothing is drawn; the files go at
    the end."""
    from gm.runs.shared_preview import PREVIEW_FILE, REQUEST_FILE
    manager, start = torchrun_jobs
    job = start(tmp_path / "runs", "live", tiny_data)
    run = Path(job.key)
    _wait_for(lambda: manager.get(job.key).step >= 5)
    time.sleep(1.5)
    assert not (run / PREVIEW_FILE).exists()       # nobody asked: nothing drawn
    first = None

    def drawn() -> bool:
        nonlocal first
        first = manager.preview(job.key)
        return first is not None
    _wait_for(drawn)
    assert first.step >= 5 and first.pixels.dtype == np.uint8 and first.pixels.shape[0] > 28
    _wait_for(lambda: manager.preview(job.key).step > first.step)   # redrawn while asked
    manager.stop(job.key)
    done = manager.wait(job.key, timeout=60)
    assert done.status == "stopped"
    assert manager.preview(job.key) is None
    assert not (run / PREVIEW_FILE).exists() and not (run / REQUEST_FILE).exists()


@pytest.mark.parametrize("damage", [b"", b"not a png", "no step field", "truncated"])
def test_a_damaged_live_preview_file_shows_no_preview_instead_of_failing(tmp_path, damage):
    import io

    from PIL import Image

    from gm.runs.shared_preview import PREVIEW_FILE, read_preview
    path = tmp_path / PREVIEW_FILE
    if isinstance(damage, bytes):
        path.write_bytes(damage)
    else:
        buffer = io.BytesIO()
        Image.fromarray(np.zeros((8, 8), np.uint8)).save(buffer, format="PNG")
        data = buffer.getvalue()
        path.write_bytes(data if damage == "no step field" else data[: len(data) // 2])
    assert read_preview(RunFolder(tmp_path)) is None


def test_a_torchrun_job_that_dies_before_it_says_why_reports_torchruns_reason(tmp_path):
    from gm.runs.jobs import _launcher_failure
    log = tmp_path / "torchrun.log"
    log.write_text("W1206 warning\nerror: Run 'x' already reached step 5 of 5; pass --steps or --epochs.\n")
    assert _launcher_failure(log, 1) == ("The torchrun processes exited with code 1 before the run started or ended "
                                         "cleanly: Run 'x' already reached step 5 of 5; pass --steps or --epochs.")


def test_several_processes_are_refused_where_they_cannot_run(tmp_path, tiny_data):
    from gm.demo import DemoLimits, DemoPolicy
    from gm.device import check_processes
    from gm.errors import GMError
    from gm.runs.jobs import JobManager
    with pytest.raises(GMError, match="not on MPS"):
        check_processes(torch.device("mps"), 2)
    if not torch.cuda.is_available():
        with pytest.raises(GMError, match="2 processes need 2 GPUs, one each; this machine has 0"):
            check_processes(torch.device("cuda"), 2)
    with JobManager() as manager:
        policy = DemoPolicy(manager, DemoLimits())
        with pytest.raises(GMError, match="The hosted demo trains each run in one process"):
            policy.start_run("visitor", "vae", {"batch_size": 16}, steps=5, runs_dir=tmp_path, processes=2)
        with pytest.raises(GMError, match="--nproc must be between 1 and 256; got 0"):
            manager.start_run("vae", steps=5, runs_dir=tmp_path, processes=0)


@pytest.mark.slow   # SSGAN under torchrun (~30 s); the weight check itself runs at every checkpoint
def test_spectral_norm_vectors_stay_identical_on_every_rank(tmp_path, mnist_dir):
    """SSGAN (spectral norm in D): every checkpoint compares each rank's weights and spectral-norm
    vectors with rank 0's (check_ranks_agree) and would stop the run on a difference."""
    runs = tmp_path / "runs"
    _gm(2, ["train", "ssgan", "--steps", "4", "--name", "sn", "--runs-dir", str(runs), "--batch-size", "16",
            "--data-dir", str(mnist_dir), "--set", "width=0.25", "--set", "checkpoint_every=2", *QUIET], mnist_dir)
    state = json.loads((runs / "sn" / "state.json").read_text())
    assert state["status"] == "finished" and state["step"] == 4
    weights = _weights(runs / "sn", 4)
    assert any(k.endswith("weight_u") or k.endswith("_u") for k in weights)   # the vectors are saved


def test_the_rank_fingerprint_leaves_out_per_rank_batch_norm_statistics():
    from gm.runs.callbacks import weights_fingerprint
    net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4))
    before = weights_fingerprint(net)
    net[1].running_mean += 1.0   # another rank's batches: allowed to differ
    assert weights_fingerprint(net) == before
    with torch.no_grad():
        net[0].weight += 1e-3
    assert weights_fingerprint(net) != before


def test_epochs_count_the_global_batch_of_all_processes():
    from gm.registry import get_spec
    from gm.runs.session import _total_steps, global_batch_size
    config = get_spec("vae").config_cls(batch_size=16)
    assert global_batch_size(config, 4) == 16                       # split over the processes
    assert _total_steps(None, 1.0, 1600, config, 4) == 100
    per_rank = get_spec("vae").config_cls(batch_size=16, per_rank_batch=True)
    assert global_batch_size(per_rank, 4) == 64 and global_batch_size(per_rank, 1) == 16
    assert _total_steps(None, 1.0, 1600, per_rank, 4) == 25         # 4 x 16 images per step


def test_controlvae_sets_one_beta_from_the_kl_of_all_processes(tmp_path, tiny_data):
    """The controller reads the KL averaged over the ranks: β is the one-process β at every step
    (and the same on every rank, or the checkpoints' weight check would stop the run)."""
    runs = tmp_path / "runs"
    common = ["--runs-dir", str(runs), "--batch-size", "16", "--data-dir", str(tiny_data), "--steps", "8",
              "--set", "log_every=1", "--set", "checkpoint_every=4", "--set", "kl_target=0.5", *QUIET]
    _gm(2, ["train", "controlvae", "--name", "two", *common], tiny_data)
    _gm(1, ["train", "controlvae", "--name", "one", *common], tiny_data)
    one = [json.loads(x) for x in (runs / "one" / "metrics.jsonl").read_text().splitlines()]
    two = [json.loads(x) for x in (runs / "two" / "metrics.jsonl").read_text().splitlines()]
    assert len(two) == 8 and len({r["beta"] for r in one}) > 1     # the controller moved β
    for a, b in zip(one, two):
        assert a["beta"] == pytest.approx(b["beta"], rel=1e-6) and a["kl"] == pytest.approx(b["kl"], abs=1e-4)


def test_only_a_peer_that_went_away_counts_as_a_collective_failure():
    from gm.runs.distributed import is_collective_failure
    gloo = RuntimeError("[/pytorch/third_party/gloo/gloo/transport/tcp/pair.cc:545] Read error "
                        "[127.0.0.1]:11979: Connection reset by peer")
    assert is_collective_failure(gloo)
    assert not is_collective_failure(RuntimeError("mat1 and mat2 shapes cannot be multiplied [/2x3]"))
    assert not is_collective_failure(ValueError("Connection reset by peer"))

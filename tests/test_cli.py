"""The CLI contract: commands, the run folder they write, and one-line errors with exit code 2."""

import json
import subprocess
import sys

import pytest

from gm.cli import main
from tests.conftest import REPO


def run_cli(*args, env=None):
    return subprocess.run([sys.executable, "-m", "gm", *args], cwd=REPO, capture_output=True, text=True,
                          env=env, timeout=300)


def test_models_lists_every_model(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].startswith("vae")
    assert "dsprites" in out


def test_train_resume_sample_runs(runs_dir, tmp_path, capsys):
    common = ["--runs-dir", str(runs_dir), "--device", "cpu", "--quiet"]
    assert main(["train", "vae", "--steps", "12", "--name", "a", "--set", "width=0.25",
                 "--set", "log_every=4", "--batch-size", "8", "--seed", "1", *common]) == 0
    run = runs_dir / "a"
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["model"] == "vae" and cfg["dataset"] == "dsprites" and cfg["config"]["seed"] == 1
    assert cfg["config"]["batch_size"] == 8 and cfg["gm_version"] and cfg["device"] == "cpu"
    state = json.loads((run / "state.json").read_text())
    assert state["status"] == "finished" and state["step"] == 12 and state["last_checkpoint"] == "step-12"
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in lines] == [1, 4, 8, 12]   # step 1 at once, then every log_every
    assert {"step", "epoch", "time", "loss", "recon", "kl", "beta"} <= set(lines[0])
    assert (run / "samples" / "step-12.png").is_file()

    assert main(["resume", str(run), "--steps", "4", "--quiet"]) == 0
    assert json.loads((run / "state.json").read_text())["step"] == 16
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in lines] == [1, 4, 8, 12, 16]   # a resume adds no row at its first step

    out = tmp_path / "grid.png"
    assert main(["sample", str(run), "--n", "12", "--nrow", "4", "--out", str(out)]) == 0
    from PIL import Image
    img = Image.open(out)
    assert img.size == (4 * 66 + 2, 3 * 66 + 2)

    capsys.readouterr()
    assert main(["runs", "--runs-dir", str(runs_dir)]) == 0
    table = capsys.readouterr().out
    assert "a" in table and "finished" in table and "16/16" in table


@pytest.mark.parametrize("argv, fragment", [
    (["train", "nope"], "Unknown model 'nope'"),
    (["train", "vae", "--set", "foo=1"], "Unknown config key"),
    (["train", "vae", "--set", "lr=abc"], "'lr' must be a float"),
    (["train", "vae", "--set", "lr"], "key=value"),
    (["train", "vae", "--steps", "0"], "--steps must be at least 1"),
    (["train", "vae", "--steps", "5", "--epochs", "1"], "not allowed with"),
    (["train", "vae", "--device", "tpu"], "Unknown device"),
    (["train", "vae", "--device", "cuda"], "CUDA"),
    (["train", "vae", "--name", "../x"], "Invalid run name"),
    (["train", "vae", "--preset", "nope"], "no preset"),
    (["train", "gan", "--data-dir", "/nonexistent-gm-data"], "MNIST"),
    (["resume", "/nonexistent-run"], "No run at"),
    (["sample", "/nonexistent-run", "--out", "x.png"], "No run at"),
    (["sample", "/nonexistent-run"], "required"),
    (["bogus"], "invalid choice"),
])
def test_user_errors_are_one_line_and_exit_2(argv, fragment, capsys, runs_dir):
    import torch
    if "cuda" in argv and torch.cuda.is_available():
        pytest.skip("a CUDA GPU is present, so --device cuda is valid here")
    if argv[:2] == ["train", "gan"]:
        from gm.registry import MODELS
        if "gan" not in MODELS:
            pytest.skip("the gan model is not registered yet")
    code = main([*argv, "--runs-dir", str(runs_dir)] if argv[0] == "train" else argv)
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert fragment in err, err
    assert len(err.splitlines()) == 1 and err.startswith("error: ")


def test_sample_needs_a_checkpoint(runs_dir, tmp_path, capsys):
    from gm.runs.folder import RunFolder
    RunFolder.create(runs_dir, "empty", {"model": "vae", "config": {}})
    assert main(["sample", str(runs_dir / "empty"), "--out", str(tmp_path / "x.png")]) == 2
    assert "no checkpoint" in capsys.readouterr().err


def test_module_entry_point_exit_code():
    proc = run_cli("train", "nope")
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith("error: Unknown model")

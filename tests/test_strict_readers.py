"""Strict readers: every damaged file gm reads ends in one sentence (library), one line and exit 2
(CLI), or a run marked "damaged: <reason>" while the other runs keep working (app).

Table-driven: a new fault is one line in one of the tables below. The tables cover run folders
(config.json, state.json, metrics.jsonl, eval.jsonl, samples/*.png), Hub exports, stats sidecars,
image folders, MNIST idx headers, CLI values and resource ceilings, and full disks.
"""

from __future__ import annotations

import errno
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from gm.cli import main
from gm.config import with_overrides
from gm.errors import GMError
from gm.registry import get_spec
from gm.runs.folder import RunFolder, list_runs
from gm.runs.schema import DamagedFile

TINY = {"width": "0.25", "batch_size": "8", "log_every": "2", "sample_every": "5", "kl_dims_every": "4"}


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """One tiny finished VAE run (10 steps, grids at 5 and 10, an eval line), copied per case."""
    from gm.runs.loop import new_session, train
    runs = tmp_path_factory.mktemp("strict-src")
    cfg = with_overrides(get_spec("vae").config_cls(), TINY, model="vae")
    session = new_session("vae", cfg, runs_dir=runs, name="good", device="cpu", steps=10)
    assert train(session) == "finished"
    session.run.append_eval({"step": 10, "metric": "fid", "value": 99.0, "n": 100, "features": "classifier",
                             "stats_key": "k", "time": "now", "seed": 0})
    return session.run.path


@pytest.fixture
def runs(tmp_path, trained) -> Path:
    """A runs folder holding a good run 'good' (damaged copies go beside it)."""
    folder = tmp_path / "runs"
    folder.mkdir()
    shutil.copytree(trained, folder / "good")
    return folder


def damaged_copy(runs: Path, file: str, damage, name: str = "bad") -> Path:
    """A copy of the good run with `file` damaged: bytes replace it, a dict is merged into its JSON
    (None values delete keys), a callable gets the path."""
    path = runs / name
    shutil.copytree(runs / "good", path)
    target = path / file
    if isinstance(damage, bytes):
        target.write_bytes(damage)
    elif isinstance(damage, dict):
        data = json.loads(target.read_text())
        for k, v in damage.items():
            if v is DELETE:
                data.pop(k, None)
            else:
                data[k] = v
        target.write_text(json.dumps(data))
    else:
        damage(target)
    return path


DELETE = object()
DEEP = b"[" * 100_000 + b"]" * 100_000

# ---- (file, damage, fragment of the sentence) for whole JSON files of a run ---------------------------
JSON_DAMAGE = [
    ("config.json", b"[]", "holds a list, not a JSON object"),
    ("config.json", b"{", "is not valid JSON"),
    ("config.json", b"", "is not valid JSON"),
    ("config.json", b"\xff\xfe{}", "is not UTF-8"),
    ("config.json", b'"just text"', "holds a string"),
    ("config.json", b"42", "holds a whole number"),
    ("config.json", b"null", "holds null"),
    ("config.json", DEEP, "nested too deeply"),
    ("config.json", b"{}", "lacks 'model'"),
    ("config.json", {"model": 3}, "'model' is 3"),
    ("config.json", {"model": None}, "has 'model': null"),
    ("config.json", {"config": []}, "'config' is [] (a list)"),
    ("config.json", {"config": None}, "has 'config': null"),
    ("config.json", {"dataset": 7}, "'dataset' is 7"),
    ("config.json", {"weights_only": "yes"}, "'weights_only' is \"yes\""),
    ("config.json", {"data_shape": [1, 28, 28]}, "'data_shape' holds a list"),
    ("config.json", {"data_shape": {"image_shape": [1, 64], "max_value": 1}}, "has 2 entries"),
    ("config.json", {"data_shape": {"image_shape": [1, 64, "x"], "max_value": 1}}, "holds \"x\""),
    ("config.json", {"data_shape": {"image_shape": [1, 64, 64]}}, "lacks 'max_value'"),
    ("state.json", b"[]", "holds a list, not a JSON object"),
    ("state.json", b"{", "is not valid JSON"),
    ("state.json", b"\xff\xfe{}", "is not UTF-8"),
    ("state.json", b"3.5", "holds a number"),
    ("state.json", DEEP, "nested too deeply"),
    ("state.json", {"status": DELETE}, "lacks 'status'"),
    ("state.json", {"status": "exploded"}, "not one of created"),
    ("state.json", {"status": 7}, "'status' is 7"),
    ("state.json", {"step": "x"}, "'step' is \"x\" (a string), not a whole number"),
    ("state.json", {"step": -1}, "'step' is -1, below 0"),
    ("state.json", {"step": 1.5}, "not a whole number"),
    ("state.json", {"step": True}, "'step' is true"),
    ("state.json", {"step": 10 ** 25}, "above"),
    ("state.json", {"step": DELETE}, "lacks 'step'"),
    ("state.json", {"total_steps": "y"}, "'total_steps' is \"y\""),
    ("state.json", {"epoch": "soon"}, "'epoch' is \"soon\""),
    ("state.json", {"elapsed": -3.0}, "'elapsed' is -3.0, below 0"),
    ("state.json", {"error": 5}, "'error' is 5"),
    ("state.json", {"pid": "123"}, "'pid' is \"123\""),
    ("state.json", {"best_checkpoint": []}, "'best_checkpoint' holds a list"),
    ("state.json", {"best_checkpoint": {"step": "a", "name": "step-1"}}, "'step' is \"a\""),
    ("state.json", {"last_checkpoint": 10}, "'last_checkpoint' is 10"),
]


def _ids(table):
    return [f"{row[0]}-{i}" for i, row in enumerate(table)]


@pytest.mark.parametrize("file, damage, fragment", JSON_DAMAGE, ids=_ids(JSON_DAMAGE))
def test_library_names_the_damage(file, damage, fragment, runs):
    bad = RunFolder(damaged_copy(runs, file, damage))
    reader = bad.read_config if file == "config.json" else bad.read_state
    with pytest.raises(DamagedFile) as caught:
        reader()
    message = str(caught.value)
    assert f"{file} of run 'bad' is damaged: " in message and fragment in message, message
    assert "\n" not in message and message.endswith(".")
    assert caught.value.file == file and fragment in bad.damage().reason
    listed = {r.name: r.damage() for r in list_runs(runs)}  # the others still list and read
    assert listed["good"] is None and listed["bad"] is not None
    assert RunFolder(runs / "good").read_state()["status"] == "finished"


CLI_ON_DAMAGE = ["runs", "resume", "export"]


@pytest.mark.parametrize("command", CLI_ON_DAMAGE)
@pytest.mark.parametrize("file, damage, fragment", JSON_DAMAGE, ids=_ids(JSON_DAMAGE))
def test_cli_on_a_damaged_run(command, file, damage, fragment, runs, tmp_path, capsys):
    bad = damaged_copy(runs, file, damage)
    argv = {"runs": ["runs", "--runs-dir", str(runs)],
            "resume": ["resume", str(bad), "--steps", "2", "--quiet"],
            "export": ["export", str(bad), "--out", str(tmp_path / "r.zip"), "--static"]}[command]
    code = main(argv)
    out, err = capsys.readouterr()
    if command == "runs":  # listed as damaged, never fatal; the good run lists as usual
        assert code == 0 and "Traceback" not in err
        rows = {line.split()[0]: line for line in out.splitlines()[1:]}
        assert "damaged: " + file in rows["bad"] and fragment in rows["bad"], rows
        assert "finished" in rows["good"]
    else:
        assert code == 2, err
        assert len(err.strip().splitlines()) == 1 and err.startswith("error: ") and fragment in err, err


def test_sample_needs_only_the_config(runs, tmp_path, capsys):
    """`sample` reads config.json and a checkpoint: a damaged state.json does not stop it."""
    bad = damaged_copy(runs, "state.json", b"[]")
    assert main(["sample", str(bad), "--n", "4", "--nrow", "2", "--out", str(tmp_path / "s.png")]) == 0
    bad = damaged_copy(runs, "config.json", b"[]", name="bad2")
    assert main(["sample", str(bad), "--n", "4", "--out", str(tmp_path / "t.png")]) == 2
    assert "config.json of run 'bad2' is damaged" in capsys.readouterr().err


def test_a_writer_replaces_a_damaged_state(runs):
    bad = RunFolder(damaged_copy(runs, "state.json", b"[]"))
    bad.write_state(status="stopped")
    assert bad.read_state()["status"] == "stopped" and bad.read_state()["step"] == 0
    (bad.path / "state.json").unlink()  # the advice of the sentence: delete it, the run reads as failed
    assert bad.read_state()["status"] == "failed" and bad.damage() is None


# ---- metrics.jsonl and eval.jsonl: one bad line is skipped, the rest kept ---------------------------
METRIC_LINES = [
    b'{"step": "abc", "loss": 1.0}',
    b"\xff\xfe\xfd",
    b'{"step": 3, "loss": "\xff"}',
    b"[1, 2, 3]",
    b'"a string"',
    b"null",
    b'{"loss": 1.0}',
    b'{"step": -3, "loss": 1.0}',
    b'{"step": 1.5, "loss": 1.0}',
    b'{"step": true, "loss": 1.0}',
    b'{"step": 1e400}',
    b'{"step": 100000000000000000000000000000}',
    b'{"step": 2, "epoch": "x"}',
    b'{"step": 2, "time": NaN}',
    b'{"step": 2, "loss": {"nested": 1}}',
    b'{"step": 2, "kl_dims": [1, "x"]}',
    b'{"step": 1' + b"9" * 5000 + b"}",
    DEEP,
    b'{"step": 2, "lo',
    b"\x00\x00\x00",
]


def _append_line(path: Path, line: bytes) -> None:
    """The bad line in the middle of the file: between two valid ones."""
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join(lines[:2]) + line + b"\n" + b"".join(lines[2:]))


@pytest.mark.parametrize("line", METRIC_LINES, ids=[f"metrics-{i}" for i in range(len(METRIC_LINES))])
def test_a_bad_metrics_line_is_skipped(line, runs):
    from gm.runs.reader import MetricsHistory
    good = RunFolder(runs / "good").read_metrics()
    bad = RunFolder(damaged_copy(runs, "metrics.jsonl", lambda p: _append_line(p, line)))
    assert bad.read_metrics() == good and bad.damage() is None
    history = MetricsHistory(bad.metrics_path)
    history.update()
    assert history.records == good and history.series()
    bad.truncate_metrics_after(10)  # what resume does: the bad line is dropped for good
    assert line not in bad.metrics_path.read_bytes() and bad.read_metrics() == good


EVAL_LINES = [b"\xff\xfe", b"[]", b'{"value": 3}', b'{"metric": 5, "value": 3}', b'{"metric": "fid", "value": "x"}',
              b'{"metric": "fid", "value": 1, "step": -2}', b'{"metric": "fid", "n": "many"}', b"{", DEEP]


@pytest.mark.parametrize("line", EVAL_LINES, ids=[f"eval-{i}" for i in range(len(EVAL_LINES))])
def test_a_bad_eval_line_is_skipped(line, runs, tmp_path):
    from gm import hub
    good = RunFolder(runs / "good").read_eval()
    bad = RunFolder(damaged_copy(runs, "eval.jsonl", lambda p: p.write_bytes(p.read_bytes() + line + b"\n")))
    assert bad.read_eval() == good and len(good) == 1
    staged = hub.stage(bad.path, tmp_path / "export", "o/n")  # a damaged line is never published
    assert (staged / "eval.jsonl").read_bytes().count(b"\n") == 1 and "99" in (staged / "README.md").read_text()


@pytest.mark.parametrize("damage", ["metrics", "eval"])
def test_cli_on_bad_lines(damage, runs, tmp_path, capsys):
    """The issue's cases end to end: a string step and non-UTF-8 bytes; export works, resume drops them."""
    file, lines = ("metrics.jsonl", [b'{"step": "abc"}', b"\xff\xfe"]) if damage == "metrics" else \
        ("eval.jsonl", [b"\xff\xfe", b'{"metric": []}'])
    bad = damaged_copy(runs, file, lambda p: p.write_bytes(p.read_bytes() + b"\n".join(lines) + b"\n"))
    assert main(["export", str(bad), "--out", str(tmp_path / "r.zip"), "--static"]) == 0
    assert main(["resume", str(bad), "--steps", "2", "--quiet"]) == 0
    assert "Traceback" not in capsys.readouterr().err
    if damage == "metrics":
        assert b"abc" not in (bad / file).read_bytes() and b"\xff" not in (bad / file).read_bytes()


# ---- sample grids -----------------------------------------------------------------------------------
def _truncated(p: Path) -> None:
    p.write_bytes(p.read_bytes()[: len(p.read_bytes()) // 2])


def _bad_crc(p: Path) -> None:
    data = bytearray(p.read_bytes())
    i = data.index(b"IDAT") + 8
    data[i:i + 4] = bytes(4)
    p.write_bytes(bytes(data))


def _huge_header(p: Path) -> None:
    data = bytearray(p.read_bytes())
    data[16:24] = (100_000).to_bytes(4, "big") * 2  # IHDR width and height
    p.write_bytes(bytes(data))


PNG_DAMAGE = [b"garbage", b"", b"\x89PNG\r\n\x1a\n", _truncated, _bad_crc, _huge_header]


@pytest.mark.parametrize("damage", PNG_DAMAGE, ids=[f"png-{i}" for i in range(len(PNG_DAMAGE))])
def test_an_unreadable_grid_is_skipped(damage, runs, tmp_path, capsys):
    bad = RunFolder(damaged_copy(runs, "samples/step-10.png", damage))
    assert [s for s, _ in bad.sample_grids()] == [5]
    (bad.samples_dir / "step-x.png").write_bytes(b"not a step")
    assert [s for s, _ in bad.sample_grids()] == [5]
    assert main(["export", str(bad.path), "--out", str(tmp_path / "r.zip"), "--static"]) == 0


# ---- the app: every page renders with a damaged run, which is marked -------------------------------
APP_DAMAGE = [("config.json", b"[]"), ("state.json", b"[]"), ("state.json", {"step": "x"}),
              ("metrics.jsonl", lambda p: _append_line(p, b'{"step": "abc"}\n\xff\xfe')),
              ("eval.jsonl", lambda p: p.write_bytes(b"\xff\xfe\n")), ("samples/step-10.png", b"garbage")]
PAGES = ["pages/home.py", "pages/train.py", "pages/monitor.py", "pages/explore.py", "pages/evaluate.py",
         "pages/compare.py", "pages/walkthrough.py#vae", "pages/walkthrough.py#compare"]


def open_page(page: str, run_path: Path):
    """tests.test_app.open_page with the damaged run selected and, for the walkthrough, a step
    whose roles the damaged VAE run could play ("bad" sorts before "good": it is the first candidate)."""
    from tests.test_app import open_page as open_app_page
    page, _, step = page.partition("#")
    return open_app_page(page, run_path, {"wt.step": step} if step else None)


@pytest.fixture
def app_runs(runs, monkeypatch):
    monkeypatch.setenv("GM_RUNS_DIR", str(runs))
    yield runs
    import streamlit as st

    from pages import _ui
    _ui.manager().shutdown(timeout=60)
    st.cache_resource.clear()


@pytest.mark.parametrize("page", PAGES)
@pytest.mark.parametrize("file, damage", APP_DAMAGE, ids=[f"{f}-{i}" for i, (f, _) in enumerate(APP_DAMAGE)])
def test_pages_render_beside_a_damaged_run(file, damage, page, app_runs):
    bad = damaged_copy(app_runs, file, damage)
    at = open_page(page, bad)  # the damaged run selected: asserts no exception
    structural = file in ("config.json", "state.json")
    labels = [o for box in at.sidebar.selectbox for o in box.options]
    assert any("bad" in o and ("damaged: " + file in o) == structural for o in labels), labels
    if structural:
        assert any(file in w.value for w in at.sidebar.warning)
    if page == "pages/home.py":
        rows = {r[next(k for k in r if "run" in k.lower())]: r for r in at.dataframe[0].value.to_dict("records")}
        assert ("damaged" in str(rows["bad"])) == structural and "damaged" not in str(rows["good"])


# ---- CLI values and resource ceilings --------------------------------------------------------------------
TRAIN_VALUES = [
    (["--epochs", "nan"], "--epochs must be a positive number"),
    (["--epochs", "inf"], "--epochs must be a positive number"),
    (["--epochs", "-1"], "--epochs must be a positive number"),
    (["--epochs", "0"], "--epochs must be a positive number"),
    (["--epochs", "1e300"], "--epochs must be a positive number"),
    (["--steps", "1" * 25], "--steps must be at most"),
    (["--steps", "-5"], "--steps must be at least 1"),
    (["--seed", "1" * 25], "--seed must be at most 4,294,967,295; got a 25-digit number"),
    (["--seed", "-1"], "--seed must be at least 0"),
    (["--batch-size", "0"], "--batch-size must be at least 1"),
    (["--batch-size", "1" * 20], "--batch-size must be at most"),
    (["--set", "seed=" + "1" * 25], "'seed' must be at most 4294967295"),
    (["--set", "seed=" + "1" * 5000], "'seed' must be a int"),
    (["--set", "lr=nan"], "'lr' must be a finite number"),
    (["--set", "lr=inf"], "'lr' must be a finite number"),
    (["--set", "lr=-inf"], "'lr' must be a finite number"),
    (["--set", "width=nan"], "'width' must be a finite number"),
    (["--set", "beta1=1e999"], "'beta1' must be a finite number"),
    (["--set", "batch_size=nan"], "'batch_size' must be a int"),
    (["--set", "log_every=" + "9" * 20], "'log_every' must be at most 9,007,199,254,740,992"),
    (["--set", "checkpoint_seconds=inf"], "'checkpoint_seconds' must be a finite number"),
    (["--set", "width=8", "--batch-size", "4096"], "One training step of vae at width 8.0 with batch_size 4096"),
]


@pytest.mark.parametrize("extra, fragment", TRAIN_VALUES, ids=[f"train-{i}" for i in range(len(TRAIN_VALUES))])
def test_train_values(extra, fragment, runs, capsys, monkeypatch):
    monkeypatch.setenv("GM_MAX_MEMORY_GB", "2")  # the same bound on every machine
    code = main(["train", "vae", "--runs-dir", str(runs), "--name", "new", *extra])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and fragment in err, err
    assert not (runs / "new").exists()


def test_the_memory_bound_says_why(runs, capsys, monkeypatch):
    monkeypatch.setenv("GM_MAX_MEMORY_GB", "2")
    assert main(["train", "vae", "--runs-dir", str(runs), "--set", "width=8", "--batch-size", "4096"]) == 2
    err = capsys.readouterr().err
    assert "needs about" in err and "more than the bound of 2.0 GB" in err and "GM_MAX_MEMORY_GB" in err
    assert "lower batch_size or width" in err


RUN_VALUES = [
    (["resume", "{run}", "--epochs", "nan"], "--epochs must be a positive number"),
    (["resume", "{run}", "--epochs", "inf"], "--epochs must be a positive number"),
    (["resume", "{run}", "--steps", "0"], "--steps must be at least 1"),
    (["resume", "{run}", "--steps", "2", "--set", "lr=nan"], "'lr' must be a finite number"),
    (["resume", "{run}", "--steps", "2", "--set", "width=8", "--set", "batch_size=4096"], "One training step"),
    (["sample", "{run}", "--n", "100000000", "--out", "{tmp}/s.png"], "Sampling 100,000,000 images of vae"),
    (["sample", "{run}", "--n", "100000", "--nrow", "100000", "--out", "{tmp}/s.png"], "needs about"),
    (["sample", "{run}", "--n", "0", "--out", "{tmp}/s.png"], "--n must be at least 1"),
    (["sample", "{run}", "--n", "1" * 20, "--out", "{tmp}/s.png"], "--n must be at most"),
    (["sample", "{run}", "--nrow", "0", "--out", "{tmp}/s.png"], "--nrow must be at least 1"),
    (["sample", "{run}", "--seed", "1" * 25, "--out", "{tmp}/s.png"], "--seed must be at most"),
    (["eval", "{run}", "--n", "100000000"], "Evaluating 100,000,000 generated"),
    (["fid", "{run}", "--n", "100000000", "--features", "classifier"], "Evaluating 100,000,000"),
    (["fid", "{run}", "--real-seed", "-1"], "--real-seed must be at least 0"),
    (["stats", "mnist", "--n", "1" * 12], "--n must be at most"),
]


@pytest.mark.parametrize("argv, fragment", RUN_VALUES, ids=[f"{a[0]}-{i}" for i, (a, _) in enumerate(RUN_VALUES)])
def test_values_of_other_commands(argv, fragment, runs, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("GM_MAX_MEMORY_GB", "2")
    code = main([a.format(run=runs / "good", tmp=tmp_path) for a in argv])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and fragment in err, err
    assert RunFolder(runs / "good").read_state()["step"] == 10  # nothing trained


def test_default_settings_fit():
    from gm import limits
    for name in ("vae", "gan", "ssgan"):
        spec = get_spec(name)
        config = spec.config_cls()
        fp = limits.training_footprint(spec, config, limits.data_info_of(spec, config))
        assert 0 < fp.total < 2 * 2 ** 30, (name, fp)  # well under a laptop's memory


def test_bad_memory_cap_is_one_sentence(runs, capsys, monkeypatch):
    monkeypatch.setenv("GM_MAX_MEMORY_GB", "lots")
    assert main(["train", "vae", "--runs-dir", str(runs), "--steps", "1"]) == 2
    assert "GM_MAX_MEMORY_GB must be a number" in capsys.readouterr().err


# ---- full disk ---------------------------------------------------------------------------------------------
def _enospc(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device", "/full/x.png")


def _safetensors_full(*args, **kwargs):
    from safetensors import SafetensorError
    raise SafetensorError('Error while serializing: IoError(Os { code: 28, kind: StorageFull, message: '
                          '"No space left on device" })')


@pytest.mark.parametrize("target, raiser", [("gm.images.save_png", _enospc),
                                            ("gm.images.save_png", _safetensors_full)])
def test_full_disk_on_the_cli(target, raiser, runs, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(target, raiser)
    assert main(["sample", str(runs / "good"), "--n", "4", "--out", str(tmp_path / "s.png")]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "No space left on device" in err and "free some disk" in err


# ---- Hub exports -------------------------------------------------------------------------------------------
def _nan_weights(p: Path) -> None:
    from safetensors.torch import load_file, save_file
    weights = load_file(str(p))
    first = next(iter(weights))
    weights[first] = weights[first].clone().fill_(float("nan"))
    save_file(weights, str(p))


HUB_DAMAGE = [
    ("config.json", {"step": -5}, "'step' is -5, below 0"),
    ("config.json", {"step": "5"}, "'step' is \"5\""),
    ("config.json", {"step": 2.5}, "'step' is 2.5"),
    ("config.json", {"step": 10 ** 30}, "above"),
    ("config.json", b"[]", "holds a list, not a JSON object"),
    ("config.json", b"{", "is not valid JSON"),
    ("config.json", b"\xff\xfe", "is not UTF-8"),
    ("config.json", DEEP, "nested too deeply"),
    ("config.json", {"model": 3}, "'model' is 3"),
    ("config.json", {"config": "lr=1"}, "'config' is \"lr=1\""),
    ("config.json", {"data_shape": DELETE}, "lacks 'data_shape'"),
    ("config.json", {"config": DELETE}, "lacks 'config'"),
    ("config.json", {"data_shape": {"image_shape": [1, 64], "max_value": 1}}, "has 2 entries"),
    ("config.json", {"dataset": DELETE}, "lacks 'dataset'"),
    ("config.json", {"config": {"batch_size": "many"}}, "'batch_size' must be a int"),
    ("model.safetensors", b"not safetensors", "model.safetensors of the download of 'o/damaged' cannot be read"),
    ("model.safetensors", _nan_weights, "NaN or infinite"),
]


@pytest.fixture
def export(trained, tmp_path) -> Path:
    from gm import hub
    return hub.stage(trained, tmp_path / "export", "o/n")


def _fake_hub(monkeypatch, folder: Path) -> None:
    from gm import hub

    def download(repo_id, *, revision, token, dest):
        shutil.copytree(folder, dest)
        return dest
    monkeypatch.setattr(hub, "_list_files", lambda repo_id, **kw: [p.name for p in folder.iterdir()])
    monkeypatch.setattr(hub, "_download", download)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)


@pytest.mark.parametrize("file, damage, fragment", HUB_DAMAGE, ids=_ids(HUB_DAMAGE))
def test_a_damaged_hub_export_is_refused(file, damage, fragment, export, tmp_path, capsys, monkeypatch):
    from gm import hub
    target = export / file
    if isinstance(damage, bytes):
        target.write_bytes(damage)
    elif isinstance(damage, dict):
        data = json.loads(target.read_text())
        data.update({k: v for k, v in damage.items() if v is not DELETE})
        for k in [k for k, v in damage.items() if v is DELETE]:
            data.pop(k)
        target.write_text(json.dumps(data))
    else:
        damage(target)
    runs = tmp_path / "pulled"
    with pytest.raises(GMError, match=None) as caught:
        hub.import_export(export, runs, "x", origin="o/damaged")
    assert fragment in str(caught.value) and "\n" not in str(caught.value)
    _fake_hub(monkeypatch, export)
    assert main(["pull", "o/damaged", "--runs-dir", str(runs)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and fragment in err, err
    assert not runs.exists() or not any(runs.iterdir())  # nothing half-written


def test_a_hub_export_with_bad_extras_still_loads(export, tmp_path):
    """Optional files of an export: a damaged samples.png is left out, bad metrics/eval lines too."""
    from gm import hub, load_model
    (export / "samples.png").write_bytes(b"garbage")
    (export / "metrics.jsonl").write_bytes((export / "metrics.jsonl").read_bytes() + b'{"step": "x"}\n\xff\n')
    (export / "eval.jsonl").write_bytes(b"\xff\xfe\n[]\n")
    path = hub.import_export(export, tmp_path / "pulled", "ok")
    run = RunFolder(path)
    assert run.damage() is None and run.sample_grids() == [] and run.read_eval() == []
    assert b"\xff" not in run.metrics_path.read_bytes() and len(run.read_metrics()) > 0
    assert load_model(path, "cpu").sample(2, seed=0).shape[0] == 2


@pytest.mark.parametrize("raiser", [_enospc, _safetensors_full])
def test_full_disk_during_a_pull(raiser, export, tmp_path, capsys, monkeypatch):
    import gm.runs.checkpoint
    monkeypatch.setattr(gm.runs.checkpoint, "save_checkpoint", raiser)
    _fake_hub(monkeypatch, export)
    runs = tmp_path / "pulled"
    assert main(["pull", "o/full", "--runs-dir", str(runs)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "No space left on device" in err, err
    assert list(runs.iterdir()) == []  # the temporary folder is gone too


def test_an_unexpected_failure_inside_import_is_one_sentence(export, tmp_path, capsys, monkeypatch):
    from gm import hub

    def broken(*args, **kwargs):
        raise KeyError("image_shape")
    monkeypatch.setattr(hub, "import_export", broken)
    _fake_hub(monkeypatch, export)
    assert main(["pull", "o/odd", "--runs-dir", str(tmp_path / "r")]) == 2
    assert "is not a usable gm model (KeyError" in capsys.readouterr().err


# ---- statistics sidecars and image folders -----------------------------------------------------------------
def _stats(tmp_path: Path, key) -> Path:
    path = tmp_path / "real.npz"
    np.savez(path, mu=np.zeros(4), sigma=np.eye(4))
    if key is not None:
        path.with_suffix(".json").write_bytes(key if isinstance(key, bytes) else json.dumps(key).encode())
    return path


GOOD_KEY = {"dataset": "mnist", "split": "train", "n": 10, "seed": 0, "features": "classifier",
            "extractor": "x", "weights": "w", "data": "d", "format": 1}
SIDECAR_DAMAGE = [
    (b"[]", "holds a list"), (b"{", "is not valid JSON"), (b"\xff", "is not UTF-8"), (DEEP, "nested too deeply"),
    ({**GOOD_KEY, "n": "abc"}, "'n' is \"abc\""), ({**GOOD_KEY, "n": 0}, "'n' is 0, below 1"),
    ({**GOOD_KEY, "seed": -1}, "'seed' is -1"), ({k: v for k, v in GOOD_KEY.items() if k != "dataset"},
                                                  "lacks 'dataset'"),
]


@pytest.mark.parametrize("key, fragment", SIDECAR_DAMAGE, ids=[f"sidecar-{i}" for i in range(len(SIDECAR_DAMAGE))])
def test_a_damaged_stats_sidecar(key, fragment, tmp_path):
    from gm.metrics.sources import open_source
    from gm.metrics.stats import entry_path, load_cached
    with pytest.raises(GMError) as caught:
        open_source(_stats(tmp_path, key))
    assert "stats key of real.npz is damaged" in str(caught.value) and fragment in str(caught.value)
    # In the cache the entry is simply recomputed.
    entry = entry_path(GOOD_KEY, tmp_path / "cache")
    entry.parent.mkdir()
    np.savez(entry, mu=np.zeros(4), sigma=np.eye(4))
    entry.with_suffix(".json").write_bytes(key if isinstance(key, bytes) else json.dumps(key).encode())
    assert load_cached(GOOD_KEY, tmp_path / "cache") is None


def test_a_good_sidecar_and_non_finite_statistics(tmp_path):
    from gm.metrics.sources import open_source
    assert open_source(_stats(tmp_path, GOOD_KEY)).meta["n"] == 10
    path = tmp_path / "nan.npz"
    np.savez(path, mu=np.full(4, np.nan), sigma=np.eye(4))
    with pytest.raises(GMError, match="NaN or infinite"):
        open_source(path)


def _png(path: Path, size=(8, 8)) -> None:
    from PIL import Image
    Image.new("L", size, 128).save(path)


FOLDER_DAMAGE = [
    (lambda d: (d / "b.png").write_bytes(b"garbage"), "b.png cannot be read as an image"),
    (lambda d: (d / "b.png").write_bytes(b""), "b.png cannot be read as an image"),
    (lambda d: _png(d / "b.png", (9, 8)), "have different sizes (a.png is 8 x 8, b.png is 9 x 8)"),
    (lambda d: _truncated(d / "a.png"), "a.png cannot be read as an image"),
]


@pytest.mark.parametrize("damage, fragment", FOLDER_DAMAGE, ids=[f"folder-{i}" for i in range(len(FOLDER_DAMAGE))])
def test_a_damaged_image_folder(damage, fragment, tmp_path, capsys):
    folder = tmp_path / "imgs"
    folder.mkdir()
    _png(folder / "a.png")
    damage(folder)
    assert main(["fid", str(folder), str(folder), "--features", "classifier", "--dataset", "mnist"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and fragment in err, err


def test_an_image_folder_larger_than_memory(tmp_path, monkeypatch):
    from gm.metrics.sources import load_image_folder
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in range(3):
        _png(folder / f"{i}.png", (64, 64))
    monkeypatch.setenv("GM_MAX_MEMORY_GB", "0.00001")  # about 10 KB
    with pytest.raises(GMError, match=r"Loading the images in .* \(3 images, 12.0 KB\) needs about"):
        load_image_folder(folder)


# ---- MNIST idx headers ---------------------------------------------------------------------------------------
def _set(offset: int, value: int):
    def damage(p: Path) -> None:
        data = bytearray(p.read_bytes())
        data[offset:offset + 4] = value.to_bytes(4, "big")
        p.write_bytes(bytes(data))
    return damage


MNIST_DAMAGE = [
    ("train-images-idx3-ubyte", _set(0, 0x1234), "starts with 0x00001234, not 0x00000803"),
    ("train-images-idx3-ubyte", _set(4, 10 ** 9), "header says 1,000,000,000 images"),
    ("train-images-idx3-ubyte", _set(4, 0), "holds no images"),
    ("train-images-idx3-ubyte", _set(8, 27), "27 x 28 images, not 28 x 28"),
    ("train-images-idx3-ubyte", lambda p: p.write_bytes(p.read_bytes()[:10]), "shorter than the 16-byte"),
    ("train-images-idx3-ubyte", lambda p: p.write_bytes(p.read_bytes()[:-5]), "bytes hold"),
    ("train-labels-idx1-ubyte", _set(0, 0x0803), "not 0x00000801 (MNIST labels"),
    ("train-labels-idx1-ubyte", lambda p: p.write_bytes(p.read_bytes()[:8] + bytes([12]) + p.read_bytes()[9:]),
     "holds the label 12"),
    ("train-labels-idx1-ubyte", lambda p: p.write_bytes(p.read_bytes() + b"\x01"), "bytes hold"),
]


@pytest.mark.parametrize("file, damage, fragment", MNIST_DAMAGE, ids=_ids(MNIST_DAMAGE))
def test_a_garbled_mnist_file(file, damage, fragment, mnist_dir, tmp_path, capsys):
    from gm.data.mnist import load_mnist
    raw = tmp_path / "data" / "MNIST" / "raw"
    shutil.copytree(mnist_dir / "MNIST" / "raw", raw)
    for p in raw.iterdir():
        p.chmod(0o644)
    damage(raw / file)
    with pytest.raises(GMError) as caught:
        load_mnist(tmp_path / "data", download=False)
    assert f"MNIST file {raw / file} is damaged" in str(caught.value) and fragment in str(caught.value)
    code = main(["train", "gan", "--steps", "1", "--data-dir", str(tmp_path / "data"),
                 "--runs-dir", str(tmp_path / "runs")])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and fragment in err, err


def test_mnist_image_and_label_counts_must_agree(mnist_dir, tmp_path):
    from gm.data.mnist import check_raw_files
    raw = tmp_path / "raw"
    shutil.copytree(mnist_dir / "MNIST" / "raw", raw)
    labels = raw / "train-labels-idx1-ubyte"
    labels.chmod(0o644)
    data = bytearray(labels.read_bytes()[:-1])
    data[4:8] = (len(data) - 8).to_bytes(4, "big")
    labels.write_bytes(bytes(data))
    with pytest.raises(GMError, match="disagree"):
        check_raw_files(raw, train=True)

"""Hub push/pull against a local folder standing in for the Hub: the same gm.hub code path, with only
huggingface_hub's network functions replaced (create_repo, upload_folder, list_repo_files,
snapshot_download)."""

from __future__ import annotations

import fnmatch
import json
import shutil
from pathlib import Path

import huggingface_hub
import pytest
import torch

from gm import hub, load_model
from gm.cli import main
from gm.config import with_overrides
from gm.errors import GMError
from gm.registry import get_spec
from gm.runs.loop import new_session, train

TINY = {"width": "0.25", "batch_size": "8", "log_every": "2", "sample_every": "5", "kl_dims_every": "4"}
TOKEN = "hf_not_a_real_token_123"
SEEN: dict = {}  # what the fake Hub was asked (private flag, token)


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    runs = tmp_path_factory.mktemp("hub-src")
    cfg = with_overrides(get_spec("vae").config_cls(), TINY, model="vae")
    session = new_session("vae", cfg, runs_dir=runs, name="tiny", device="cpu", steps=6)
    assert train(session) == "finished"
    session.run.append_eval({"step": 6, "metric": "fid", "value": 123.4, "n": 100, "features": "classifier",
                             "stats_key": "x", "time": "now", "seed": 0})
    return session.run.path


@pytest.fixture
def fake_hub(tmp_path, monkeypatch) -> Path:
    root = tmp_path / "hub"
    seen = SEEN
    seen.clear()

    def repo(repo_id):
        return root / repo_id.replace("/", "__")

    class Info:
        commit_url = "https://huggingface.co/fake/commit"

    def create_repo(self, repo_id, private=False, exist_ok=False, repo_type=None):
        seen["private"], seen["token"] = private, self.token
        repo(repo_id).mkdir(parents=True, exist_ok=True)

    def upload_folder(self, folder_path, repo_id, repo_type=None, commit_message=None):
        shutil.copytree(folder_path, repo(repo_id), dirs_exist_ok=True)
        return Info()

    def list_repo_files(repo_id, revision=None, token=None):
        if not repo(repo_id).is_dir():
            raise huggingface_hub.errors.RepositoryNotFoundError("not found")
        return sorted(p.name for p in repo(repo_id).iterdir())

    def snapshot_download(repo_id, revision=None, token=None, local_dir=None, allow_patterns=None):
        dest = Path(local_dir)
        dest.mkdir(parents=True, exist_ok=True)
        for p in repo(repo_id).iterdir():
            if any(fnmatch.fnmatch(p.name, pat) for pat in allow_patterns or ["*"]):
                shutil.copyfile(p, dest / p.name)
        return str(dest)

    monkeypatch.setattr(huggingface_hub.HfApi, "create_repo", create_repo)
    monkeypatch.setattr(huggingface_hub.HfApi, "upload_folder", upload_folder)
    monkeypatch.setattr(huggingface_hub, "list_repo_files", list_repo_files)
    monkeypatch.setattr(huggingface_hub, "snapshot_download", snapshot_download)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    root.mkdir()
    return root


def test_round_trip(trained, fake_hub, tmp_path):
    url = hub.push(trained, "alice/tiny-vae", private=True, token=TOKEN)
    assert url.startswith("https://")
    repo = fake_hub / "alice__tiny-vae"
    assert sorted(p.name for p in repo.iterdir()) == ["README.md", "config.json", "eval.jsonl",
                                                     "metrics.jsonl", "model.safetensors", "samples.png"]
    card = (repo / "README.md").read_text()
    assert "vae" in card and "dsprites" in card and "123.4" in card and "gm pull alice/tiny-vae" in card
    assert SEEN == {"private": True, "token": TOKEN}
    runs = tmp_path / "runs"
    path = hub.pull("alice/tiny-vae", runs_dir=runs)
    assert path == runs / "alice--tiny-vae"
    for folder in (path, trained):  # the token is never written into a run folder
        for f in folder.rglob("*"):
            assert not f.is_file() or TOKEN.encode() not in f.read_bytes()
    state = json.loads((path / "state.json").read_text())
    assert state["status"] == "finished" and state["step"] == 6
    original = load_model(trained, "cpu")
    pulled = load_model(path, "cpu")
    assert torch.equal(original.sample(4, seed=1), pulled.sample(4, seed=1))
    assert [p.name for p in (path / "samples").iterdir()] == ["step-6.png"]
    from gm.runs.loop import plan_resume
    with pytest.raises(GMError, match="weights only"):
        plan_resume(path, steps=2)


def test_cli_push_pull(trained, fake_hub, tmp_path, capsys):
    assert main(["push", str(trained), "bob/v", "--no-metrics", "--token", TOKEN]) == 0
    assert not (fake_hub / "bob__v" / "metrics.jsonl").exists()
    assert main(["pull", "bob/v", "--runs-dir", str(tmp_path / "r"), "--name", "mine"]) == 0
    assert (tmp_path / "r" / "mine" / "config.json").is_file()
    assert main(["pull", "bob/v", "--runs-dir", str(tmp_path / "r"), "--name", "mine"]) == 2
    assert "already exists" in capsys.readouterr().err


def _pushed(trained, fake_hub, repo_id="carol/m") -> Path:
    hub.push(trained, repo_id)
    return fake_hub / repo_id.replace("/", "__")


def test_config_is_validated(trained, fake_hub, tmp_path):
    repo = _pushed(trained, fake_hub)
    cfg = json.loads((repo / "config.json").read_text())
    cfg["config"]["no_such_knob"] = 1
    (repo / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(GMError, match="no_such_knob"):
        hub.pull("carol/m", runs_dir=tmp_path / "runs")
    cfg["config"].pop("no_such_knob")
    cfg["model"] = "not-a-model"
    (repo / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(GMError, match="Unknown model"):
        hub.pull("carol/m", runs_dir=tmp_path / "runs")
    assert not (tmp_path / "runs" / "carol--m").exists()


def test_mismatched_shapes_are_refused(trained, fake_hub, tmp_path):
    repo = _pushed(trained, fake_hub)
    cfg = json.loads((repo / "config.json").read_text())
    cfg["config"]["width"] = 0.5
    (repo / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(GMError, match="do not fit"):
        hub.pull("carol/m", runs_dir=tmp_path / "runs")
    assert not (tmp_path / "runs" / "carol--m").exists()


def test_pickles_are_refused(fake_hub, tmp_path):
    repo = fake_hub / "eve__pickle"
    repo.mkdir()
    (repo / "pytorch_model.bin").write_bytes(b"\x80\x04not really")
    (repo / "config.json").write_text("{}")
    with pytest.raises(GMError, match="pickled weights"):
        hub.pull("eve/pickle", runs_dir=tmp_path / "runs")
    snapshot = tmp_path / "snap"
    snapshot.mkdir()
    (snapshot / "model.pt").write_bytes(b"x")
    with pytest.raises(GMError, match="model.pt"):
        hub.import_export(snapshot, tmp_path / "runs", "x")


@pytest.mark.parametrize("repo_id", ["../evil", "a/../../b", "/abs", "a/b/c", "", ".hidden/x", "a b/c"])
def test_path_traversal_repo_ids(repo_id, fake_hub, tmp_path):
    with pytest.raises(GMError):
        hub.pull(repo_id, runs_dir=tmp_path / "runs")
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_path_traversal_names(trained, fake_hub, tmp_path):
    _pushed(trained, fake_hub)
    for bad in ("../out", "..", "a/b", ".x"):
        with pytest.raises(GMError, match="Invalid run name"):
            hub.pull("carol/m", runs_dir=tmp_path / "runs", name=bad)
    assert hub.run_name_for("owner/name", "refs/pr/1") == "owner--name-refs-pr-1"


def test_offline_message(monkeypatch, capsys, trained):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert main(["pull", "alice/tiny-vae"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "HF_HUB_OFFLINE=1" in err and "pretrained" in err
    assert main(["push", str(trained), "alice/tiny-vae"]) == 2
    assert "cannot be reached" in capsys.readouterr().err


def test_app_hub_box_offline(tmp_path, monkeypatch):
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    from tests.conftest import REPO
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("GM_RUNS_DIR", str(tmp_path / "runs"))
    try:
        at = AppTest.from_file(str(REPO / "app.py"), default_timeout=120)
        at.run()
        at.text_input(key="hub.pull.repo").input("alice/tiny-vae")
        next(b for b in at.button if b.label == "Load").click()
        at.run()
        assert not at.exception, [e.value for e in at.exception]
        assert any("HF_HUB_OFFLINE=1" in e.value for e in at.error)
        assert at.text_input(key="hub.push.token").proto.type == at.text_input(key="hub.push.token").proto.PASSWORD
    finally:
        from pages import _ui
        _ui.manager().shutdown(timeout=60)
        st.cache_resource.clear()

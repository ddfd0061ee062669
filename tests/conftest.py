"""Shared fixtures: offline MNIST location, temporary runs dirs, small thread counts."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"

# One thread per test process: tiny convolutions gain nothing from two, and on a busy 2-core box
# two threads contending made them up to 40x slower.
torch.set_num_threads(1)


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    """Every test module starts on one thread again, whatever a test before it set."""
    torch.set_num_threads(1)
    yield


@pytest.fixture
def mnist_dir() -> Path:
    """The offline MNIST digits beside the checkout (../shared/data), or skip."""
    if not (SHARED_DATA / "MNIST" / "raw" / "train-images-idx3-ubyte").is_file():
        pytest.skip(f"MNIST-dependent: the offline digits are not at {SHARED_DATA} "
                    "(a checkout without ../shared/data cannot download them here)")
    return SHARED_DATA


@pytest.fixture
def runs_dir(tmp_path: Path) -> Path:
    d = tmp_path / "runs"
    d.mkdir()
    return d


@pytest.fixture(autouse=True)
def _isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Runs and caches of a test never land in the repo or the user's home."""
    monkeypatch.setenv("GM_RUNS_DIR", str(tmp_path / "default-runs"))
    monkeypatch.setenv("GM_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("GM_WARM_UP", "0")   # no dSprites rendering behind every AppTest's job manager
    # The app lists shipped pretrained runs; tests see none unless they point here at them.
    monkeypatch.setenv("GM_PRETRAINED_DIR", str(tmp_path / "no-pretrained"))
    if "GM_DATA_DIR" not in os.environ:
        monkeypatch.setenv("GM_DATA_DIR", str(tmp_path / "data"))


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory) -> Path:
    """A 256-image dSprites archive in the official layout: loads in milliseconds (pass it as
    data_dir to train dSprites models without rendering the full set)."""
    from gm.data.dsprites import OFFICIAL_FILE, factor_grid, render_classes
    folder = tmp_path_factory.mktemp("tiny-dsprites")
    classes = factor_grid(0)[::72][:256]
    latents = np.concatenate([np.zeros((len(classes), 1), np.int64), classes], axis=1)
    np.savez(folder / OFFICIAL_FILE, imgs=render_classes(classes), latents_classes=latents)
    return folder


@pytest.fixture
def manager():
    """A job manager that is shut down (every job stopped and joined) after the test."""
    from gm.runs.jobs import JobManager
    m = JobManager()
    yield m
    assert m.shutdown(timeout=60)


@pytest.fixture
def app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """The app with an empty runs folder; its job manager is shut down and Streamlit's resource
    cache cleared afterwards (both live for the whole process)."""
    monkeypatch.setenv("GM_RUNS_DIR", str(tmp_path / "runs"))
    yield
    import streamlit as st

    from pages import _ui
    _ui.manager().shutdown(timeout=60)
    st.cache_resource.clear()

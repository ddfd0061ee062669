"""The shipped evaluator classifiers: accuracy, coverage of real digits, CAM, ACGAN accuracy."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from gm.metrics.classifiers import evaluators_dir, load_classifier, predict

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def _mnist(train: bool):
    if not (SHARED_DATA / "MNIST" / "raw").is_dir():
        pytest.skip(f"the shared offline MNIST digits are not at {SHARED_DATA} (../shared/data from the repo root)")
    from gm.data.mnist import load_mnist
    return load_mnist(SHARED_DATA, train=train, download=False)


def test_evaluator_files_are_shipped_with_their_record():
    import json
    for name in ("mnist_classifier", "dsprites_classifier"):
        assert (evaluators_dir() / f"{name}.safetensors").is_file()
        info = json.loads((evaluators_dir() / f"{name}.json").read_text())
        assert info["command"].startswith("python -m gm.metrics.train_evaluators")
        assert "accuracy" in info and "arch" in info


def test_mnist_classifier_reaches_98_percent_on_the_shared_test_digits():
    test = _mnist(train=False)
    pred = predict(load_classifier("mnist"), test.images.float() / 255)["class"]
    accuracy = float((pred == test.labels.numpy()).mean())
    assert accuracy >= 0.98, f"accuracy {accuracy:.4f} on {len(test)} shared test digits"


def test_dsprites_classifier_reads_the_factors():
    from gm.data.dsprites import factor_grid, render_classes
    grid = factor_grid(0)
    classes = grid[np.random.default_rng(5).choice(len(grid), 1000, replace=False)]
    x = torch.from_numpy(render_classes(classes)).float().unsqueeze(1)
    pred = predict(load_classifier("dsprites"), x)
    for name, column in (("shape", 0), ("scale", 1), ("posX", 3), ("posY", 4)):
        assert (pred[name] == classes[:, column]).mean() > 0.9, name


def test_coverage_is_10_for_real_digits_and_1_for_a_repeated_digit():
    from gm.metrics.coverage import coverage
    test = _mnist(train=False)
    model = load_classifier("mnist")
    real = coverage(predict(model, test.images.float() / 255)["class"], 10)
    assert real["classes_covered"] == 10 and real["kl_to_uniform"] < 0.05
    one = test.images[:1].float().repeat(500, 1, 1, 1) / 255
    collapsed = coverage(predict(model, one)["class"], 10)
    assert collapsed["classes_covered"] == 1
    assert collapsed["kl_to_uniform"] == pytest.approx(np.log(10))


def test_cam_heatmaps_have_the_input_shape_and_point_at_the_digit():
    from gm.metrics.cam import class_activation_maps, overlay
    test = _mnist(train=False)
    x = test.images[:8].float() / 255
    cam = class_activation_maps(load_classifier("mnist"), x)
    assert cam.heatmaps.shape == (8, 28, 28) and cam.raw.shape == (8, 28, 28)
    assert cam.heatmaps.min() >= 0 and cam.heatmaps.max() <= 1
    assert (cam.classes == cam.predicted).all()
    assert cam.probabilities.shape == (8, 10)
    # The evidence sits on the stroke: heat is higher on ink than on the empty border.
    ink = x[:, 0].numpy() > 0.5
    assert (cam.heatmaps[ink].mean()) > (cam.heatmaps[~ink].mean())
    other = class_activation_maps(load_classifier("mnist"), x, classes=[(c + 1) % 10 for c in cam.predicted])
    assert not np.allclose(other.raw, cam.raw)
    assert overlay(x, cam.heatmaps).shape == (8, 28, 28, 3)
    # SSGAN-sized 32x32 inputs work too (resized for the classifier, maps at the input's size).
    big = torch.nn.functional.pad(x, (2, 2, 2, 2))
    assert class_activation_maps(load_classifier("mnist"), big).heatmaps.shape == (8, 32, 32)

"""Translation metrics (gm.metrics.translation) and the ground truth they are scored against
(gm.data.domains.counterparts): hand-worked helpers, an oracle translator that draws the true
counterpart (perfect scores), an identity translator (fails the domain, keeps the content), the toy
translator through `gm eval`, and a dataset without ground truth."""

from __future__ import annotations

import dataclasses
import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from gm.data.domains import counterparts, move_to_domain
from gm.data.dsprites import (
    SHAPES,
    _make,
    counterpart_classes,
    load_dsprites,
    render_classes,
)
from gm.data.registry import DatasetSpec, get_dataset_spec, register_dataset, unregister_dataset
from gm.errors import GMError
from gm.metrics.translation import (
    KEYS,
    centroid_distance,
    centroids,
    choose_sources,
    evaluate_translation,
    iou,
    per_image_l1,
    translation_grid,
)
from gm.models.base import Translates
from tests import toy_models


@pytest.fixture(scope="module")
def tiny(tiny_data):
    """256 rendered dSprites (about 85 of each shape), loaded in milliseconds."""
    return load_dsprites(tiny_data)


# ---- test doubles: translators whose scores are known in advance ----------------------------------
class _Lookup(Translates):
    """Knows the factors of every image it has seen (the dataset's, and its own outputs)."""

    domains = SHAPES

    def __init__(self, dataset) -> None:
        self.config = SimpleNamespace(domain_split=lambda: "shape")
        self.known = {self._key(img): c for img, c in zip(dataset.images, dataset.factor_classes.numpy())}

    @staticmethod
    def _key(image: torch.Tensor) -> bytes:
        return (image.float() > 0.5).numpy().tobytes()

    def translator_parameters(self) -> int:
        return 0


class Oracle(_Lookup):
    """Draws the true counterpart: every ground-truth score is perfect and the cycle is exact."""

    split = "shape"

    def translate(self, images, to, source=None):
        classes = np.stack([self.known[self._key(img)] for img in images])
        wanted = counterpart_classes(classes, self.split, to)
        out = torch.from_numpy(render_classes(wanted)).unsqueeze(1).float()
        for img, c in zip(out, wanted):
            self.known[self._key(img)] = c
        return out


class ScaleOracle(Oracle):
    """The oracle of the small / large split (a StarGAN's second attribute)."""

    domains = ("small", "large")
    split = "scale"

    def __init__(self, dataset) -> None:
        super().__init__(dataset)
        self.config = SimpleNamespace(domain_split=lambda: "scale")


class Identity(_Lookup):
    """Changes nothing: the domain is never reached, the content always kept."""

    def translate(self, images, to, source=None):
        return images.clone()


# ---- ground truth ---------------------------------------------------------------------------------
def test_moving_a_value_to_another_bin_keeps_its_offset():
    assert move_to_domain(np.arange(6), 6, 2, 1).tolist() == [3, 4, 5, 3, 4, 5]   # dSprites small -> large
    assert move_to_domain(np.arange(6), 6, 2, 0).tolist() == [0, 1, 2, 0, 1, 2]
    assert move_to_domain(np.arange(3), 3, 3, 2).tolist() == [2, 2, 2]             # shape: replace the index
    # Unequal bins (5 values, 2 domains: 0-2 and 3-4): an offset past the target bin's end is clipped.
    assert move_to_domain(np.array([0, 1, 2, 3, 4]), 5, 2, 1).tolist() == [3, 4, 4, 3, 4]
    with pytest.raises(GMError, match="out of range"):
        move_to_domain(np.arange(6), 6, 2, 2)


def test_counterpart_factors_change_the_split_factor_only():
    square = np.array([[0, 1, 0, 7, 20]])
    assert counterpart_classes(square, "shape", "heart").tolist() == [[2, 1, 0, 7, 20]]
    assert counterpart_classes(square, "scale", "large").tolist() == [[0, 4, 0, 7, 20]]
    assert counterpart_classes(np.array([[1, 5, 3, 0, 31]]), "scale", "small").tolist() == [[1, 2, 3, 0, 31]]
    with pytest.raises(GMError, match="no domain split 'colour'"):
        counterpart_classes(square, "colour", "red")
    with pytest.raises(GMError, match="Unknown domain 'triangle'"):
        counterpart_classes(square, "shape", "triangle")


def test_a_squares_counterpart_is_the_ellipse_at_the_same_place(tiny):
    squares = torch.nonzero(tiny.labels == 0).reshape(-1)[:12]
    got = counterparts(tiny, squares, "shape", "ellipse")
    assert got.dtype == torch.uint8 and got.shape == (12, 1, 64, 64)
    wanted = tiny.factor_classes[squares].numpy().copy()
    wanted[:, 0] = 1
    assert torch.equal(got[:, 0], torch.from_numpy(render_classes(wanted)))
    # Same sprite centre: both shapes are symmetric about it (pixel sampling moves each coordinate
    # of a centroid by at most half a pixel).
    assert float((centroids(got > 0) - centroids(tiny.images[squares] > 0)).abs().max()) <= 0.5
    # By scale: same shape and position, the same step up in the large bin.
    small = torch.nonzero(tiny.factor_classes[:, 1] < 3).reshape(-1)[:5]
    large = counterparts(tiny, small, "scale", "large")
    wanted = tiny.factor_classes[small].numpy().copy()
    wanted[:, 1] += 3
    assert torch.equal(large[:, 0], torch.from_numpy(render_classes(wanted)))
    assert (large.flatten(1).sum(1) > tiny.images[small].flatten(1).sum(1)).all()


def test_a_counterpart_the_dataset_holds_is_taken_from_it():
    """A dataset loaded from DeepMind's file is compared with DeepMind's drawing, not gm's."""
    classes = np.array([[0, 2, 0, 5, 9], [1, 2, 0, 5, 9], [2, 2, 0, 5, 9], [0, 3, 0, 30, 1]])
    images = torch.from_numpy(render_classes(classes)).unsqueeze(1)
    images[1, 0, 0, 0] = 1                              # the dataset's own ellipse, marked
    ds = _make(images, classes, source="test")
    got = counterparts(ds, torch.tensor([0, 3]), "shape", "ellipse")
    assert torch.equal(got[0], images[1])               # held: taken from the dataset (mark included)
    wanted = classes[3:4].copy()
    wanted[:, 0] = 1
    assert torch.equal(got[1, 0], torch.from_numpy(render_classes(wanted))[0])   # not held: rendered


@pytest.fixture
def no_ground_truth(tiny):
    """dSprites under another name whose spec has no counterpart hook (but the same evaluator)."""
    spec = get_dataset_spec("dsprites")
    fields = {f.name: getattr(spec, f.name) for f in dataclasses.fields(DatasetSpec)}
    register_dataset(DatasetSpec(**{**fields, "name": "dsprites-no-gt", "counterpart": None,
                                    "loader": lambda data_dir=None: None}))
    try:
        yield dataclasses.replace(tiny, name="dsprites-no-gt")
    finally:
        unregister_dataset("dsprites-no-gt")


def test_a_dataset_without_ground_truth_says_so_and_keeps_the_other_figures(no_ground_truth):
    with pytest.raises(GMError, match="no ground truth") as err:
        counterparts(no_ground_truth, [0], "shape", "ellipse")
    assert str(err.value).count(".") == 1   # one sentence
    out = evaluate_translation(Identity(no_ground_truth), no_ground_truth, n=10, device="cpu")
    assert "no ground truth" in out["note"]
    assert not {"gt_iou", "gt_l1", "position_error_px"} & set(out)
    assert out["target_accuracy"] == 0.0 and out["cycle_l1"] == 0.0 and "content_error" in out


# ---- pure helpers, against hand-worked numbers -----------------------------------------------------
def test_iou_centroids_and_l1_by_hand():
    a = torch.zeros(1, 4, 4, dtype=torch.bool)
    b = torch.zeros(1, 4, 4, dtype=torch.bool)
    a[0, 0:2, 0:2] = True          # 4 pixels, centroid (x, y) = (0.5, 0.5)
    b[0, 0:2, 1:3] = True          # 4 pixels, centroid (1.5, 0.5); 2 shared, 6 in the union
    assert iou(a, b).tolist() == pytest.approx([1 / 3])
    assert centroids(a).tolist() == [[0.5, 0.5]] and centroids(b).tolist() == [[1.5, 0.5]]
    assert centroid_distance(a, b).tolist() == [1.0]
    c = torch.zeros(1, 4, 4, dtype=torch.bool)
    c[0, 3, 3] = True              # (3, 3): 2.5 right and down of a's centroid
    assert centroid_distance(a, c).tolist() == pytest.approx([2.5 * 2 ** 0.5])
    empty = torch.zeros(2, 1, 4, 4)
    assert iou(empty, empty).tolist() == [1.0, 1.0]             # nothing to draw, nothing drawn
    assert iou(a.unsqueeze(1).float(), empty[:1]).tolist() == [0.0]
    assert centroids(empty).tolist() == [[1.5, 1.5], [1.5, 1.5]]  # an empty mask: the canvas centre
    x = torch.zeros(2, 1, 2, 2)
    y = torch.tensor([[[[1.0, 0.0], [0.0, 0.0]]], [[[0.5, 0.5], [0.5, 0.5]]]])
    assert per_image_l1(x, y).tolist() == [0.25, 0.5]


def test_sources_are_a_seeded_choice_of_the_source_domain(tiny):
    a = choose_sources(tiny, "shape", "ellipse", 20, seed=0)
    assert torch.equal(a, choose_sources(tiny, "shape", "ellipse", 20, seed=0))
    assert not torch.equal(a, choose_sources(tiny, "shape", "ellipse", 20, seed=1))
    assert (tiny.labels[a] == 1).all() and len(set(a.tolist())) == 20
    everything = choose_sources(tiny, "shape", "heart", 10_000, seed=0)   # capped at the domain's size
    assert len(everything) == int((tiny.labels == 2).sum())


# ---- the metrics can fail --------------------------------------------------------------------------
def test_an_oracle_translator_scores_perfectly(tiny):
    out = evaluate_translation(Oracle(tiny), tiny, n=24, seed=0, device="cpu")
    assert set(out["pairs"]) == {f"{a}->{b}" for a in SHAPES for b in SHAPES if a != b}
    assert out["n"] == 24 and out["parameters"] == 0 and out["split"] == "shape"
    for figures in out["pairs"].values():
        assert set(KEYS) <= set(figures) and figures["n"] == 24
    assert out["target_accuracy"] >= 0.95
    assert out["content_error"] <= 0.05
    assert out["gt_iou"] == 1.0 and out["gt_l1"] == 0.0 and out["position_error_px"] == 0.0
    assert out["cycle_l1"] == 0.0
    overall = np.mean([p["target_accuracy"] for p in out["pairs"].values()])
    assert out["target_accuracy"] == pytest.approx(overall)


def test_the_scale_split_reads_the_binned_scale_head(tiny):
    out = evaluate_translation(ScaleOracle(tiny), tiny, n=16, seed=0, device="cpu")
    assert set(out["pairs"]) == {"small->large", "large->small"} and out["split"] == "scale"
    assert out["target_accuracy"] >= 0.95 and out["content_error"] <= 0.05
    assert out["gt_iou"] == 1.0 and out["cycle_l1"] == 0.0

    class ScaleIdentity(Identity):
        domains = ("small", "large")

    wrong = evaluate_translation(ScaleIdentity(tiny), tiny, n=16, seed=0, device="cpu", by="scale")
    assert wrong["split"] == "scale" and wrong["target_accuracy"] <= 0.05 and wrong["gt_iou"] < 0.9
    with pytest.raises(GMError, match="domain 'square' is not one of the dsprites split 'scale'"):
        evaluate_translation(Identity(tiny), tiny, n=4, device="cpu", by="scale")


def test_an_identity_translator_misses_every_domain_but_keeps_content(tiny):
    out = evaluate_translation(Identity(tiny), tiny, n=24, seed=0, device="cpu")
    assert out["target_accuracy"] <= 0.05          # the evaluator still sees the source shape
    assert out["content_error"] <= 0.05            # ... at the right scale and place
    assert out["gt_iou"] < 0.9 and out["gt_l1"] > 0
    assert out["cycle_l1"] == 0.0


def test_a_shifted_translation_shows_in_position_and_content(tiny):
    class Shifted(Oracle):
        def translate(self, images, to, source=None):
            drawn = super().translate(images, to, source)
            moved = torch.roll(drawn, shifts=4, dims=-1)
            for a, b in zip(drawn, moved):
                self.known[self._key(b)] = self.known[self._key(a)]   # the way back stays known
            return moved

    out = evaluate_translation(Shifted(tiny), tiny, n=16, seed=0, device="cpu")
    assert out["position_error_px"] == pytest.approx(4.0)
    assert out["content_error"] >= 0.9             # 4 px is about 4 position indices: not kept
    assert out["gt_iou"] < 0.9 and out["target_accuracy"] >= 0.9


# ---- the grid ----------------------------------------------------------------------------------------
def test_the_grid_has_sources_then_translation_and_cycle_rows(tiny):
    oracle = Oracle(tiny)
    squares = tiny.images[tiny.labels == 0][:3].float()
    images, per_row = translation_grid(oracle, squares, ["ellipse", "heart"], source="square")
    assert per_row == 3 and images.shape == (15, 1, 64, 64)
    assert torch.equal(images[:3], squares)
    idx = torch.nonzero(tiny.labels == 0).reshape(-1)[:3]
    assert torch.equal(images[3:6], counterparts(tiny, idx, "shape", "ellipse").float())
    assert torch.equal(images[6:9], squares)                         # the cycle comes back exactly
    assert torch.equal(images[9:12], counterparts(tiny, idx, "shape", "heart").float())
    with pytest.raises(GMError, match="Say which domain"):            # three domains: ambiguous
        translation_grid(oracle, squares, "ellipse")
    with pytest.raises(GMError, match="does not translate square to square"):
        translation_grid(oracle, squares, "square", source="square")
    with pytest.raises(GMError, match="Unknown domain 'triangle'"):
        translation_grid(oracle, squares, "triangle", source="square")


# ---- the toy translator through `gm eval` --------------------------------------------------------------
@pytest.fixture(scope="module")
def toy_run(tiny_data, tmp_path_factory):
    from gm.config import with_overrides
    from gm.registry import get_spec
    from gm.runs.loop import new_session, train

    with toy_models.registered():
        spec = get_spec(toy_models.NAME)
        config = with_overrides(spec.config_cls(), {"batch_size": 8, "log_every": 1, "sample_every": 2,
                                                    "checkpoint_every": 2}, model=spec.name)
        session = new_session(spec.name, config, runs_dir=tmp_path_factory.mktemp("runs"), name="toy",
                              device="cpu", steps=2, data_dir=str(tiny_data))
        assert train(session) == "finished"
    return session.run


def test_gm_eval_measures_a_translation_run_and_records_it(toy_run, tiny_data, capsys):
    from gm.cli import main
    from gm.metrics.evaluate import evaluate

    before = len(toy_run.read_eval())
    with toy_models.registered():
        out = evaluate(toy_run.path, n=12, seed=3, device="cpu", data_dir=str(tiny_data))
        again = evaluate(toy_run.path, n=12, seed=3, device="cpu", data_dir=str(tiny_data), record=False)
        code = main(["eval", str(toy_run.path), "--n", "6", "--device", "cpu", "--data-dir", str(tiny_data),
                     "--quiet", "--no-record"])
    assert out["kind"] == "translation" and out["step"] == 2 and out["n"] == 12 and out["seed"] == 3
    assert set(out["pairs"]) == {"square->ellipse", "ellipse->square"}   # the toy's two domains
    assert set(KEYS) | {"parameters"} <= set(out)
    assert out["parameters"] == 2 * (9 + 1)                              # two 3x3 convolutions
    assert "fid_classifier" not in out
    lines = toy_run.read_eval()[before:]
    assert {line["features"] for line in lines} == {"translation"}
    overall = {line["metric"]: line["value"] for line in lines if "pair" not in line}
    assert set(overall) == set(KEYS) | {"parameters"} and overall["gt_iou"] == out["gt_iou"]
    by_pair = {(line["pair"], line["metric"]): line["value"] for line in lines if "pair" in line}
    assert by_pair[("square->ellipse", "gt_iou")] == out["pairs"]["square->ellipse"]["gt_iou"]
    assert ("ellipse->square", "cycle_l1") in by_pair and ("ellipse->square", "parameters") not in by_pair
    assert len(lines) == 7 + 2 * 6      # 7 figures overall, 6 per pair (parameters belong to the model)
    assert all(line["n"] == 12 and line["seed"] == 3 and line["step"] == 2 for line in lines)
    assert again["pairs"] == out["pairs"]                                   # the same seed, the same figures
    from gm.translate_views import scores_of

    scores = scores_of(toy_run)                                              # what Evaluate reads back
    assert scores.overall["target_accuracy"] == out["target_accuracy"] and scores.step == 2
    assert scores.pairs["ellipse->square"]["gt_l1"] == out["pairs"]["ellipse->square"]["gt_l1"]
    assert code == 0
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert printed["n"] == 6 and "target_accuracy" in printed and "square->ellipse" in printed["pairs"]
    assert len(toy_run.read_eval()) == before + len(lines)                 # --no-record wrote nothing


def test_the_toy_grid_infers_its_source(toy_run, tiny):
    import gm

    with toy_models.registered():
        model = gm.load_model(toy_run.path, device="cpu")
    squares = tiny.images[tiny.labels == 0][:4].float()
    images, per_row = translation_grid(model, squares, "ellipse")            # two domains: the source is square
    assert per_row == 4 and images.shape == (12, 1, 64, 64)
    with torch.no_grad():
        assert torch.allclose(images[4:8], model.translate(squares, to="ellipse", source="square"))

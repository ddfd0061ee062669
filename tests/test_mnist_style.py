"""mnist-style: MNIST digits in three rendered styles, their true counterparts, the style + digit
evaluator, and the translation models trained and measured on them (cyclegan-digits, stargan-digits)."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
import torch

from gm.config import with_overrides
from gm.data import ImageDataset, get_dataset_spec, load_dataset, split_domains
from gm.data.domains import counterparts
from gm.data.mnist_style import STYLES, assign_styles, bold, render, render_styles, slant
from gm.errors import GMError
from gm.models.base import Translates
from gm.registry import get_spec
from tests.conftest import SHARED_DATA


@pytest.fixture(scope="module")
def styled() -> ImageDataset:
    """The train split, loaded once for the module (2-3 s: the slant is rendered for 2,333 digits)."""
    if not (SHARED_DATA / "MNIST" / "raw" / "train-images-idx3-ubyte").is_file():
        pytest.skip(f"MNIST-dependent: the offline digits are not at {SHARED_DATA}")
    return load_dataset("mnist-style", SHARED_DATA)


def _centroid_x(row: torch.Tensor) -> float:
    w = row.double()
    return float((w * torch.arange(len(row), dtype=torch.float64)).sum() / w.sum())


# ---- the styles, on hand-made images ------------------------------------------------------------
def test_bold_thickens_a_one_pixel_line_by_one_pixel_each_side():
    x = torch.zeros(2, 1, 28, 28, dtype=torch.uint8)
    x[0, 0, 14, 5:20] = 200                      # a horizontal line, one pixel thick
    x[1, 0, 9, 9] = 255                          # a single dot
    out = bold(x)
    assert out.dtype == torch.uint8 and out.shape == x.shape
    rows = torch.nonzero(out[0, 0].sum(1)).reshape(-1).tolist()
    cols = torch.nonzero(out[0, 0].sum(0)).reshape(-1).tolist()
    assert rows == [13, 14, 15] and cols == list(range(4, 21))
    assert set(out[0, 0].unique().tolist()) == {0, 200}        # grey levels kept, nothing brighter
    assert torch.equal(torch.nonzero(out[1, 0]).amin(0), torch.tensor([8, 8]))
    assert int((out[1, 0] == 255).sum()) == 9                  # a dot becomes a 3x3 square
    assert torch.equal(bold(x), out)                           # deterministic


def test_slant_leans_a_vertical_bar_right_at_the_top_and_keeps_the_centre():
    x = torch.zeros(1, 1, 28, 28, dtype=torch.uint8)
    x[0, 0, 4:24, 13:15] = 255                   # a bar two pixels wide, centred on (13.5, 13.5)
    out = slant(x, 0.35)
    assert out.dtype == torch.uint8 and out.shape == x.shape
    img = out[0, 0]
    for y in range(6, 22):                       # each row moves by 0.35 px per row above the centre
        assert _centroid_x(img[y]) == pytest.approx(13.5 + 0.35 * (13.5 - y), abs=0.05), y
    assert _centroid_x(img[6]) > 15.5 and _centroid_x(img[21]) < 11.5
    ys, xs = torch.nonzero(img > 0, as_tuple=True)
    mass = img[ys, xs].double()
    assert float((xs * mass).sum() / mass.sum()) == pytest.approx(13.5, abs=0.05)   # the centre stays
    assert float((ys * mass).sum() / mass.sum()) == pytest.approx(13.5, abs=0.05)
    assert torch.equal(slant(x, 0.35), out) and torch.equal(slant(x, 0.0), x)


def test_render_draws_each_image_in_its_own_style_and_names_bad_input():
    x = torch.zeros(3, 1, 28, 28, dtype=torch.uint8)
    x[:, 0, 4:24, 13] = 255
    out = render_styles(x, torch.tensor([0, 1, 2]))
    assert torch.equal(out[0], x[0]) and torch.equal(out[1], bold(x[1:2])[0]) and torch.equal(out[2], slant(x[2:])[0])
    assert torch.equal(render(x, "plain"), x)
    with pytest.raises(GMError, match="Unknown style 'italic'; the styles are plain, bold, slanted"):
        render(x, "italic")
    with pytest.raises(GMError, match="uint8"):
        bold(x.float())


def test_style_assignment_is_seeded_balanced_and_differs_between_splits():
    a = assign_styles(7000)
    assert (a == assign_styles(7000)).all() and sorted(set(a.tolist())) == [0, 1, 2]
    assert sorted(torch.bincount(torch.from_numpy(a)).tolist()) == [2333, 2333, 2334]
    assert (a[:1000] != assign_styles(1000, train=False)).any()


# ---- the dataset --------------------------------------------------------------------------------
def test_spec_lists_styles_digits_and_counterparts():
    spec = get_dataset_spec("mnist-style")
    assert spec.image_shape == (1, 28, 28) and spec.max_value == 255 and spec.splits == ("train", "test")
    assert spec.factors == ("style", "digit") and spec.factor_sizes == (3, 10)
    assert spec.classes == tuple("0123456789") and spec.class_factor == "digit"
    assert spec.domain_splits == {"style": STYLES}
    assert spec.evaluator == "mnist_style_classifier" and spec.counterpart_fn() is not None


def test_every_digit_is_in_exactly_one_style(styled, mnist_dir):
    mnist = load_dataset("mnist", mnist_dir)
    assert len(styled) == len(mnist) == 7000 and styled.factor_names == ("style", "digit")
    assert torch.equal(styled.labels, mnist.labels) and torch.equal(styled.factor_classes[:, 1], mnist.labels)
    assert torch.equal(styled.base_index, torch.arange(7000)) and torch.equal(styled.plain, mnist.images)
    style = styled.factor_classes[:, 0]
    assert torch.equal(style, torch.from_numpy(assign_styles(7000)))
    for i, name in enumerate(STYLES):
        rows = torch.nonzero(style == i).reshape(-1)[:50]
        assert torch.equal(styled.images[rows], render(mnist.images[rows], name)), name
    parts = split_domains(styled, "style")
    assert tuple(parts) == STYLES and sum(len(p) for p in parts.values()) == 7000
    bases = [set(p.base_index.tolist()) for p in parts.values()]
    assert not (bases[0] & bases[1] or bases[0] & bases[2] or bases[1] & bases[2])   # unpaired
    test = load_dataset("mnist-style", mnist_dir, train=False)
    assert len(test) == 1000 and test.meta["split"] == "test"


def test_counterparts_are_the_same_digit_in_the_other_style(styled):
    plain = torch.nonzero(styled.factor_classes[:, 0] == 0).reshape(-1)[:20]
    for to in STYLES:
        got = counterparts(styled, plain, "style", to)
        assert got.dtype == torch.uint8 and got.shape == (20, 1, 28, 28)
        assert torch.equal(got, render(styled.images[plain], to))
    # In its own style, an image's counterpart is the image itself.
    slanted = torch.nonzero(styled.factor_classes[:, 0] == 2).reshape(-1)[:20]
    assert torch.equal(counterparts(styled, slanted, "style", "slanted"), styled.images[slanted])
    # A domain's own dataset keeps which MNIST digit each image is, so its counterparts are the same.
    part = split_domains(styled, "style")["slanted"]
    assert torch.equal(counterparts(part, torch.arange(20), "style", "bold"),
                       counterparts(styled, slanted, "style", "bold"))
    with pytest.raises(GMError, match="Unknown domain 'italic'"):
        counterparts(styled, plain, "style", "italic")
    bare = ImageDataset("mnist-style", styled.images[:4], 255, labels=styled.labels[:4])
    with pytest.raises(GMError, match="does not say which MNIST digit"):
        counterparts(bare, [0], "style", "bold")


# ---- the evaluator ------------------------------------------------------------------------------
def test_the_shipped_evaluator_reads_style_and_digit_of_the_test_split(mnist_dir):
    from gm.metrics.classifiers import evaluators_dir, load_classifier, predict

    info = json.loads((evaluators_dir() / "mnist_style_classifier.json").read_text())
    assert info["accuracy"]["style"] >= 0.98 and info["accuracy"]["digit"] >= 0.96
    assert info["command"].startswith("python -m gm.metrics.train_evaluators mnist-style")
    test = load_dataset("mnist-style", mnist_dir, train=False)
    preds = predict(load_classifier("mnist-style"), test.images.float() / 255)
    assert set(preds) == {"style", "digit"}
    style_acc = float((torch.from_numpy(preds["style"]) == test.factor_classes[:, 0]).double().mean())
    digit_acc = float((torch.from_numpy(preds["digit"]) == test.labels).double().mean())
    # What the record says, give or take one image (another CPU's arithmetic may flip a close call).
    assert style_acc == pytest.approx(info["accuracy"]["style"], abs=0.0015) and style_acc >= 0.98
    assert digit_acc == pytest.approx(info["accuracy"]["digit"], abs=0.0015) and digit_acc >= 0.96


class _Stylist(Translates):
    """Draws plain digits in a style with gm's own renderer (an oracle), or leaves them (identity)."""

    domains = STYLES

    def __init__(self, oracle: bool) -> None:
        self.oracle = oracle
        self.config = SimpleNamespace(domain_split=lambda: "style")

    def pairs(self):
        return (("plain", "bold"), ("plain", "slanted"))

    def translate(self, images, to, source=None):
        if not self.oracle or to == "plain":
            return images.clone()
        return render((images * 255).round().to(torch.uint8), to).float() / 255

    def translator_parameters(self) -> int:
        return 0


def test_translation_metrics_score_digits_against_their_true_styles(styled):
    from gm.metrics.translation import evaluate_translation

    oracle = evaluate_translation(_Stylist(True), styled, n=60, seed=0, device="cpu")
    assert oracle["classifier"] == "mnist_style_classifier" and set(oracle["pairs"]) == {"plain->bold",
                                                                                         "plain->slanted"}
    assert oracle["target_accuracy"] >= 0.95 and oracle["content_error"] <= 0.05
    assert oracle["gt_iou"] == 1.0 and oracle["gt_l1"] == 0.0 and oracle["position_error_px"] == 0.0
    same = evaluate_translation(_Stylist(False), styled, n=60, seed=0, device="cpu")
    assert same["target_accuracy"] <= 0.1 and same["content_error"] <= 0.05     # digit kept, style not
    assert same["gt_iou"] < 0.9 and same["gt_l1"] > 0


# ---- the models ----------------------------------------------------------------------------------
def test_digit_models_default_to_the_style_split():
    cyc, star = get_spec("cyclegan-digits"), get_spec("stargan-digits")
    assert cyc.dataset == star.dataset == "mnist-style"
    c = cyc.config_cls()
    assert (c.domains, c.source, c.target) == ("style", "plain", "bold")
    assert star.config_cls().domain_split() == "style"
    with pytest.raises(GMError, match="'domains' must be one of style"):
        with_overrides(star.config_cls(), {"domains": "shape"}, model="stargan-digits")
    # The dSprites models keep their split.
    assert get_spec("cyclegan").config_cls().domains == "shape"


def test_stargan_digits_discriminator_fits_28_pixels():
    from gm.models.base import DataInfo

    info = DataInfo("mnist-style", (1, 28, 28), 255, num_classes=10, domains=STYLES)
    config = with_overrides(get_spec("stargan-digits").config_cls(), {"n_blocks": 1}, model="stargan-digits")
    model = get_spec("stargan-digits").build_model(config, info)
    src, cls = model.discriminator(torch.zeros(2, 1, 28, 28))
    assert src.shape == (2, 1, 7, 7) and cls.shape == (2, 3)
    out = model.translate(torch.rand(2, 1, 28, 28), to="slanted")
    assert out.shape == (2, 1, 28, 28)


def test_a_tiny_cyclegan_digits_run_trains_and_gm_eval_scores_it(mnist_dir, runs_dir, capsys):
    from gm.cli import main
    from gm.runs.loop import new_session, train

    spec = get_spec("cyclegan-digits")
    config = with_overrides(spec.config_cls(), {"batch_size": 2, "width": 0.125, "n_blocks": 1, "log_every": 1,
                                                "sample_every": 3, "checkpoint_every": 3}, model=spec.name)
    session = new_session(spec.name, config, runs_dir=runs_dir, name="digits", device="cpu", steps=3,
                          data_dir=str(mnist_dir))
    assert train(session) == "finished"
    assert session.trainer.model.domains == ("plain", "bold")
    code = main(["eval", str(session.run.path), "--n", "8", "--device", "cpu", "--data-dir", str(mnist_dir),
                 "--quiet", "--no-record"])
    assert code == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert set(out["pairs"]) == {"plain->bold", "bold->plain"}
    for key in ("target_accuracy", "gt_iou", "content_error", "gt_l1", "position_error_px", "cycle_l1"):
        assert 0 <= out[key] < float("inf"), key

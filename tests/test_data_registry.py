"""The dataset registry, domain splits, Batch, Batcher.draw and the unpaired DomainBatcher."""

from __future__ import annotations

import re

import pytest
import torch

from gm.cli import main
from gm.data import (
    DATASETS,
    Batch,
    Batcher,
    DatasetSpec,
    DomainBatcher,
    ImageDataset,
    dataset_names,
    get_dataset_spec,
    load_dataset,
    make_batcher,
    split_domains,
    unregister_dataset,
)
from gm.data import dsprites as ds
from gm.errors import GMError
from tests.conftest import REPO

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def sprites() -> ImageDataset:
    return ds.load_dsprites(render_only=True)


def _load(name: str, request: pytest.FixtureRequest) -> ImageDataset:
    """A registered dataset, offline: dSprites rendered, MNIST from ../shared/data (or skip)."""
    if name == "dsprites":
        return request.getfixturevalue("sprites")
    if name in ("mnist", "mnist-style"):
        return load_dataset(name, request.getfixturevalue("mnist_dir"))
    pytest.skip(f"no offline copy of {name} known to this test")


# ---- the registry -----------------------------------------------------------------------------
def test_registry_lists_the_builtin_datasets():
    assert dataset_names()[:2] == ("dsprites", "mnist")
    assert list(DATASETS) == list(dataset_names())
    mnist, sprites = get_dataset_spec("mnist"), get_dataset_spec("dsprites")
    assert mnist.classes == tuple("0123456789") and mnist.max_value == 255 and mnist.factors == ()
    assert mnist.domain_splits == {} and mnist.splits == ("train", "test")
    assert sprites.classes == ("square", "ellipse", "heart") and sprites.class_factor == "shape"
    assert sprites.domain_splits == {"shape": ("square", "ellipse", "heart"), "scale": ("small", "large")}
    assert sprites.evaluator == "dsprites_classifier" and sprites.coverage == "shape"


def test_unknown_dataset_is_one_sentence_naming_the_valid_ones():
    with pytest.raises(GMError) as err:
        get_dataset_spec("cifar")
    msg = str(err.value)
    assert msg == "Unknown dataset 'cifar'; use one of dsprites, mnist, mnist-style."
    with pytest.raises(GMError, match="Unknown dataset 'cifar'"):
        load_dataset("cifar")


def test_bad_spec_and_duplicate_name_are_clear_errors():
    with pytest.raises(GMError, match="domain split 'colour' must name a factor"):
        DatasetSpec(name="x", description="", image_shape=(1, 8, 8), max_value=1, loader="m:f",
                    domain_splits={"colour": ("red", "blue")})
    with pytest.raises(GMError, match="already registered"):
        from gm.data import register_dataset
        register_dataset(DatasetSpec(name="mnist", description="", image_shape=(1, 8, 8), max_value=1,
                                     loader="elsewhere:load"))
    assert get_dataset_spec("mnist").image_shape == (1, 28, 28)


def test_metrics_tables_read_the_registry():
    from gm.metrics.classifiers import CLASSIFIER_FOR
    from gm.metrics.evaluate import COVERAGE_OF
    assert dict(CLASSIFIER_FOR) == {"dsprites": "dsprites_classifier", "mnist": "mnist_classifier",
                                    "mnist-style": "mnist_style_classifier"}
    assert COVERAGE_OF["mnist"] == ("class", tuple("0123456789"))
    assert COVERAGE_OF["dsprites"] == ("shape", ("square", "ellipse", "heart"))


def test_dsprites_has_no_test_split():
    with pytest.raises(GMError, match="no test split"):
        load_dataset("dsprites", train=False, render_only=True)


@pytest.mark.parametrize("name", list(DATASETS))
def test_every_dataset_matches_its_spec(name, request):
    spec = get_dataset_spec(name)
    data = _load(name, request)
    assert data.name == name and data.image_shape == spec.image_shape
    assert data.max_value == spec.max_value and data.images.dtype == torch.uint8
    assert int(data.images[:500].max()) <= spec.max_value
    assert data.num_classes == len(spec.classes)
    assert tuple(data.factor_names) == spec.factors
    for by, names in spec.domain_splits.items():
        parts = split_domains(data, by)
        assert tuple(parts) == names and sum(len(p) for p in parts.values()) == len(data)


# ---- domains ----------------------------------------------------------------------------------
def test_split_by_shape_gives_exactly_each_shape(sprites):
    parts = split_domains(sprites, "shape")
    assert list(parts) == ["square", "ellipse", "heart"]
    for i, (name, part) in enumerate(parts.items()):
        assert len(part) == 6144 and part.domain == name
        assert (part.factor_classes[:, 0] == i).all() and (part.labels == i).all()
        # The images are the rows of that shape, in the dataset's order.
        rows = torch.nonzero(sprites.factor_classes[:, 0] == i).reshape(-1)
        assert torch.equal(part.images, sprites.images[rows])


def test_split_by_scale_gives_small_and_large(sprites):
    parts = load_dataset("dsprites", render_only=True, domains="scale")
    assert list(parts) == ["small", "large"]
    assert (parts["small"].factor_classes[:, 1] < 3).all() and (parts["large"].factor_classes[:, 1] >= 3).all()
    assert len(parts["small"]) == len(parts["large"]) == 9216


def test_unknown_split_names_the_splits(sprites):
    with pytest.raises(GMError, match="no domain split 'colour'; its splits: shape, scale"):
        split_domains(sprites, "colour")


def test_split_of_the_lazy_full_dataset_stays_lazy():
    full = ds.load_dsprites(full=True, render_only=True)
    hearts = split_domains(full, "scale")["large"]
    assert len(hearts) == 737280 // 2
    assert hearts.images.untyped_storage().nbytes() <= 64 * 64  # still a placeholder
    idx = torch.tensor([0, 1000, len(hearts) - 1])
    expected = ds.render_classes(hearts.factor_classes[idx].numpy())
    assert (hearts.take(idx)[:, 0].numpy() == expected).all()
    # A subset of a subset still renders the right rows.
    twice = hearts.subset(idx)
    assert (twice.take(torch.arange(3))[:, 0].numpy() == expected).all()


# ---- Batch ------------------------------------------------------------------------------------
def test_batch_only_and_labels():
    x, y = torch.zeros(4, 1, 2, 2, dtype=torch.uint8), torch.arange(4)
    one = Batch({"mnist": x}, labels={"mnist": y})
    assert one.domains == ("mnist",) and one.num_images == 4
    assert one.only() is x and one.only_labels() is y
    assert Batch({"mnist": x}).only_labels() is None
    two = Batch({"a": x, "b": x})
    assert two.num_images == 8
    with pytest.raises(GMError, match="2 domains"):
        two.only()


# ---- Batcher.draw -----------------------------------------------------------------------------
def _old_ended_epoch(batcher: Batcher, epoch_before: int, drawn: int) -> bool:
    """gm/runs/loop.py's _ended_epoch before draw() took it over: the reference semantics."""
    if batcher.position >= batcher.batches_per_epoch * batcher.batch_size:
        return True
    return batcher.epoch != epoch_before and batcher.position < drawn


def _tiny(n: int = 40, name: str = "tiny") -> ImageDataset:
    images = torch.arange(n, dtype=torch.uint8).reshape(n, 1, 1, 1).expand(n, 1, 2, 2).contiguous()
    return ImageDataset(name, images, max_value=255, labels=torch.arange(n))


@pytest.mark.parametrize("k", [1, 2, 3, 4])
def test_draw_equals_k_next_calls_and_ends_each_epoch_once(k):
    data = _tiny(43)                              # 10 batches of 4 per epoch, 3 images dropped
    a, b = Batcher(data, 4, 7, CPU, with_labels=True), Batcher(data, 4, 7, CPU, with_labels=True)
    ended = []
    for _ in range(40):
        epoch_before = b.epoch
        parts = [b.next() for _ in range(k)]
        batch = a.draw(k)
        assert torch.equal(batch.only(), torch.cat([p[0] for p in parts]))
        assert torch.equal(batch.only_labels(), torch.cat([p[1] for p in parts]))
        assert a.ended_epoch == _old_ended_epoch(b, epoch_before, 4 * k)
        assert a.state_dict() == b.state_dict()
        ended.append(a.ended_epoch)
    # One True per finished epoch, also when a draw of k batches straddles the boundary.
    assert sum(ended) == (40 * k) // 10


def test_batcher_state_dict_format_is_unchanged(sprites):
    b = Batcher(sprites, 64, 3, CPU)
    b.draw(5)
    assert b.state_dict() == {"epoch": 0, "position": 320}
    assert b.draw().domains == ("dsprites",)


# ---- DomainBatcher ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def shapes(sprites) -> dict[str, ImageDataset]:
    return split_domains(sprites, "shape")


def test_domain_batcher_draws_unpaired_batches_of_each_domain(shapes):
    batcher = DomainBatcher(shapes, 16, seed=1, device=CPU, with_labels=True, with_factors=True)
    batch = batcher.draw(2)
    assert batch.domains == ("square", "ellipse", "heart") and batch.num_images == 3 * 32
    for i, name in enumerate(batch.domains):
        assert batch.images[name].shape == (32, 1, 64, 64)
        assert (batch.labels[name] == i).all() and (batch.factors[name][:, 0] == i).all()
    # Independent streams: the domains are not drawn in the same row order.
    rows = {n: batch.factors[n][:, 1:].tolist() for n in batch.domains}
    assert rows["square"] != rows["ellipse"] != rows["heart"]
    assert batcher.batches_per_epoch == 6144 // 16


def test_domain_batcher_is_deterministic_and_resumes_bit_exactly(shapes):
    def stream(b: DomainBatcher, steps: int) -> list[Batch]:
        return [b.draw(2) for _ in range(steps)]

    a = stream(DomainBatcher(shapes, 512, seed=5, device=CPU), 14)     # 12 batches an epoch: crosses two
    again = stream(DomainBatcher(shapes, 512, seed=5, device=CPU), 14)
    assert all(torch.equal(x.images[n], y.images[n]) for x, y in zip(a, again) for n in x.domains)
    other = DomainBatcher(shapes, 512, seed=6, device=CPU).draw(2)
    assert not torch.equal(other.images["heart"], a[0].images["heart"])

    half = DomainBatcher(shapes, 512, seed=5, device=CPU)
    stream(half, 5)
    state = half.state_dict()
    assert set(state["domains"]) == {"square", "ellipse", "heart"}
    resumed = DomainBatcher(shapes, 512, seed=5, device=CPU)
    resumed.load_state_dict(state)
    rest = stream(resumed, 9)
    assert all(torch.equal(x.images[n], y.images[n]) for x, y in zip(a[5:], rest) for n in x.domains)
    assert resumed.epoch == 2 and resumed.ended_epoch is False


def test_domain_batcher_epochs_follow_the_largest_domain():
    batcher = DomainBatcher({"few": _tiny(8, "few"), "many": _tiny(40, "many")}, 4, seed=0, device=CPU)
    assert batcher.batches_per_epoch == 10
    ended = [batcher.draw().images and batcher.ended_epoch for _ in range(20)]
    assert ended.count(True) == 2 and batcher.epoch == 1
    assert batcher.batchers["few"].epoch == 9  # the small domain went round ten times
    with pytest.raises(GMError, match="domains"):
        batcher.load_state_dict({"domains": {"few": {"epoch": 0, "position": 0}}})


def test_domain_batcher_names_a_domain_too_small(shapes):
    with pytest.raises(GMError, match="larger than domain 'square'"):
        DomainBatcher(shapes, 10_000, seed=0, device=CPU)


def test_make_batcher_picks_by_domains(sprites):
    assert isinstance(make_batcher(sprites, 8, 0, CPU), Batcher)
    two = make_batcher(sprites, 8, 0, CPU, domains="scale")
    assert isinstance(two, DomainBatcher) and two.draw().domains == ("small", "large")


# ---- CLI and README ---------------------------------------------------------------------------
def test_datasets_command_lists_every_dataset(capsys):
    assert main(["datasets"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == list(dataset_names())
    sprites = next(line for line in lines if line.startswith("dsprites"))
    assert "1x64x64" in sprites and "3 classes" in sprites and "shape=square|ellipse|heart" in sprites
    assert "scale=small|large" in sprites
    assert "10 classes" in next(line for line in lines if line.startswith("mnist"))


def test_metrics_cli_checks_datasets_against_the_registry(capsys):
    assert main(["stats", "cifar"]) == 2
    assert "Unknown dataset 'cifar'; use one of dsprites, mnist, mnist-style." in capsys.readouterr().err


def test_readme_adding_a_dataset_example_runs():
    text = (REPO / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(# README: adding a dataset\n.*?)```", text, re.S)
    assert len(blocks) == 1, "README's 'Adding a dataset' example (marked by its first line) is missing"
    scope: dict = {"__name__": "readme_example"}
    try:
        exec(compile(blocks[0], "README.md", "exec"), scope)
        assert "bars" in dataset_names()
        bars = load_dataset("bars")
        assert len(bars) == 32 and bars.image_shape == (1, 16, 16)
        assert {k: len(v) for k, v in scope["parts"].items()} == {"horizontal": 16, "vertical": 16}
        batch = make_batcher(bars, 4, 0, CPU, domains="direction").draw()
        assert batch.domains == ("horizontal", "vertical")
        # Re-running the example (a notebook cell twice) replaces the entry instead of failing.
        exec(compile(blocks[0], "README.md", "exec"), scope)
    finally:
        unregister_dataset("bars")
    assert "bars" not in dataset_names()

"""Every registered model, whatever its kind: builds, trains a step, samples, saves and loads.

These tests loop over gm.registry.MODELS (and the dataset registry for the data), so a new entry is
tested without editing this file. Tiny widths and fake images keep them fast on a CPU.
"""

from __future__ import annotations

import dataclasses
import json
import math

import pytest
import torch
from safetensors.torch import load_file

import gm
from gm.config import to_dict, with_overrides
from gm.data.base import Batch, ImageDataset
from gm.data.registry import get_dataset_spec
from gm.i18n import catalog
from gm.losses import ADVERSARIAL_LOSSES
from gm.models.base import CAPABILITIES, DataInfo, GenerativeModel
from gm.pretrained import ENTRIES
from gm.registry import MODELS, get_spec
from tests.conftest import REPO

CPU = torch.device("cpu")
REFERENCES = REPO / "tests" / "data" / "pretrained_reference_samples.safetensors"


def fake_dataset(name: str, n: int = 32, seed: int = 0) -> ImageDataset:
    """Random images of the shape and range the dataset declares, with labels of its classes."""
    spec = get_dataset_spec(name)
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, spec.max_value + 1, (n, *spec.image_shape), dtype=torch.uint8, generator=g)
    classes = len(spec.classes)
    labels = torch.randint(0, max(classes, 1), (n,), generator=g)
    return ImageDataset(name=name, images=images, max_value=spec.max_value, labels=labels, num_classes=classes)


def tiny_config(model: str, **values):
    """The model's defaults at a CPU-test size: the smallest width its config allows, batch 8."""
    spec = get_spec(model)
    fields = {f.name: f for f in dataclasses.fields(spec.config_cls)}
    small = {"batch_size": 8}
    if "width" in fields:
        small["width"] = max(0.125, fields["width"].metadata.get("min") or 0.125)
    return with_overrides(spec.config_cls(), {**small, **values}, model=model)


def fresh(model: str, **values):
    spec = get_spec(model)
    return spec.new_trainer(tiny_config(model, **values), fake_dataset(spec.dataset), CPU)


def a_batch(trainer, dataset: str, seed: int = 1) -> Batch:
    """What the loop would draw: one dataset's images, or (a model of a domain split) the same
    number of images of every domain."""
    n = trainer.config.batch_size * trainer.batches_per_step()
    split = trainer.config.domain_split()
    if split:
        domains = get_dataset_spec(dataset).domains(split)
        parts = {d: fake_dataset(dataset, n, seed + i) for i, d in enumerate(domains)}
        return Batch({d: ds.images for d, ds in parts.items()}, {d: ds.labels for d, ds in parts.items()})
    ds = fake_dataset(dataset, n, seed)
    return Batch({dataset: ds.images}, {dataset: ds.labels})


@pytest.mark.parametrize("name", list(MODELS))
def test_every_model_declares_what_it_can_do(name):
    spec = get_spec(name)
    assert issubclass(spec.model_cls, GenerativeModel)
    assert spec.capabilities and spec.capabilities <= {c.key for c in CAPABILITIES}
    assert catalog("en").get(f"model.{name}") and catalog("fa").get(f"model.{name}")
    get_dataset_spec(spec.dataset)   # names a registered dataset


@pytest.mark.parametrize("name", list(MODELS))
def test_every_model_trains_a_step_and_samples(name):
    spec = get_spec(name)
    trainer = fresh(name)
    metrics = trainer.train_step(a_batch(trainer, spec.dataset))
    assert trainer.step == 1 and metrics
    for key, value in metrics.items():
        value = torch.as_tensor(value)
        assert bool(torch.isfinite(value).all()), key
        assert not value.requires_grad, key
    if trainer.model.capabilities & {"samples"}:
        x = trainer.model.sample(4, seed=3)
        assert x.shape == (4, *spec.model_cls(trainer.config, trainer.model.data).image_shape)
        assert float(x.min()) >= 0 and float(x.max()) <= 1
        assert torch.equal(x, trainer.model.sample(4, seed=3))
    grid, ncol = trainer.sample_grid()
    assert grid.shape[0] % ncol == 0


@pytest.mark.parametrize("name", list(MODELS))
def test_save_pretrained_and_load_model_round_trip(name, tmp_path, monkeypatch):
    trainer = fresh(name)
    trainer.train_step(a_batch(trainer, get_spec(name).dataset))
    model = trainer.model.eval()
    run = model.save_pretrained(tmp_path / "saved", step=1)

    built: list[str] = []
    real_init = torch.optim.Optimizer.__init__

    def spy(self, *args, **kwargs):
        built.append(type(self).__name__)
        real_init(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.Optimizer, "__init__", spy)
    torch.manual_seed(1234)
    rng = torch.get_rng_state()
    loaded = gm.load_model(run.path, device="cpu")
    assert built == []                                   # no optimizer is built to load a model
    assert torch.equal(rng, torch.get_rng_state())       # the caller's random state is untouched
    assert type(loaded) is type(model) and loaded.model_name == name
    assert to_dict(loaded.config) == to_dict(model.config)
    for key, value in model.state_dict().items():
        assert torch.equal(value, loaded.state_dict()[key]), key
    if "samples" in loaded.capabilities:
        assert torch.equal(loaded.sample(3, seed=5), model.sample(3, seed=5))


@pytest.mark.parametrize("name", [n for n, s in MODELS.items() if "loss" in to_dict(s.config_cls())])
@pytest.mark.parametrize("loss", list(ADVERSARIAL_LOSSES))
def test_every_gan_trains_with_every_loss_of_the_table(name, loss):
    trainer = fresh(name, loss=loss)
    out = trainer.train_step(a_batch(trainer, get_spec(name).dataset))
    assert all(math.isfinite(float(v)) for v in out.values())
    assert ("w_dist" in out) == (loss == "wasserstein")
    assert ("d_acc" in out) == (ADVERSARIAL_LOSSES[loss].threshold is not None)


def test_two_models_built_in_one_thread_do_not_share_random_state():
    """Building never seeds torch's global RNG, and dropout masks come from each trainer's own
    generator: a job next to another one draws exactly what it draws alone."""
    def three_steps(interleave: bool) -> list[float]:
        a = fresh("dcgan", seed=3)
        b = fresh("dcgan", seed=4) if interleave else None
        out = []
        for i in range(3):
            if b is not None:
                b.train_step(a_batch(b, "mnist", 10 + i))
                torch.rand(5)   # someone else's use of the global RNG
            out.append(float(a.train_step(a_batch(a, "mnist", i))["d_loss"]))
        return out

    assert three_steps(False) == three_steps(True)


@pytest.mark.parametrize("name", list(ENTRIES))
def test_pretrained_entries_sample_exactly_as_stored(name):
    """8 samples (seed 7, fp16) and float64 sums of the samples and of the fixed-seed grid, stored
    when the shipped runs were built (`python -m tests.data.make_pretrained_references`; the runs
    kept from before the model/trainer split were stored by the code before it). Equal to float32
    rounding: the references were made with torch's default threads, these tests run on one, which
    changes the order of a convolution's sums in the last bit."""
    folder = REPO / "checkpoints" / "pretrained" / name
    if not (folder / "config.json").is_file():
        pytest.skip(f"no shipped pretrained run {name}")
    from tests.data.make_pretrained_references import reference_outputs

    ref = load_file(str(REFERENCES))
    model = gm.load_model(folder, device="cpu")
    x, grid = reference_outputs(model)
    assert float(x.double().sum()) == pytest.approx(float(ref[f"{name}.sample_sum"]), rel=1e-7)
    assert float(grid.double().sum()) == pytest.approx(float(ref[f"{name}.grid_sum"]), rel=1e-7)
    torch.testing.assert_close(x.half(), ref[f"{name}.sample"], atol=1e-3, rtol=0)


def test_load_model_takes_entry_names_and_says_what_is_wrong(tmp_path):
    from gm.errors import GMError
    with pytest.raises(GMError, match="No run at"):
        gm.load_model(tmp_path / "nothing")
    with pytest.raises(GMError, match="No run at"):
        gm.load_model("no-such-entry-or-run")


def test_data_info_records_domains_of_a_split():
    from gm.models.loading import data_info_for

    @dataclasses.dataclass
    class Split:
        def domain_split(self):
            return "shape"

    info = data_info_for(fake_dataset("dsprites"), "dsprites", Split())
    assert info.domains == ("square", "ellipse", "heart")
    assert DataInfo.from_run_config({"dataset": "dsprites", "data_shape": info.to_json()}).domains == info.domains


def test_a_run_written_before_the_redesign_loads_and_resumes(tmp_path, mnist_dir):
    """tests/data/old_runs/wgan: 2 steps of WGAN at width 0.0625 written by the code before models
    were separated from trainers (no `loss` field, the trainer's global-RNG state in its checkpoint)."""
    import shutil

    from gm.runs.loop import open_session, train
    run = tmp_path / "wgan"
    shutil.copytree(REPO / "tests" / "data" / "old_runs" / "wgan", run)
    assert "loss" not in json.loads((run / "config.json").read_text())["config"]
    model = gm.load_model(run, device="cpu")
    assert to_dict(model.config)["loss"] == "wasserstein" and model.sample(2, seed=0).shape == (2, 1, 28, 28)
    session = open_session(run, steps=2, data_dir=str(mnist_dir))
    assert session.trainer.step == 2
    assert train(session) == "finished" and session.trainer.step == 4


def test_readme_adding_a_model_example_trains_and_charts(runs_dir):
    """README "Adding a model": the R1-penalty GAN is a hook, a config and a registry entry; it then
    trains through the real loop, logs its own metric, gets a chart and loads like any model."""
    import re

    from gm import plots
    from gm.registry import unregister
    from gm.runs.loop import new_session, train

    text = (REPO / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(# README: adding a model\n.*?)```", text, re.S)
    assert len(blocks) == 1, "README's 'Adding a model' example (marked by its first line) is missing"
    import sys
    import types
    module = types.ModuleType("readme_model_example")   # as a user's own module would be
    sys.modules[module.__name__] = module
    try:
        exec(compile(blocks[0], "README.md", "exec"), module.__dict__)
        spec = get_spec("r1gan")
        assert spec.capabilities == {"samples"}
        config = tiny_config("r1gan", log_every=1, sample_every=2, r1_gamma=5.0)
        session = new_session("r1gan", config, runs_dir=runs_dir, name="r1", device="cpu", steps=2,
                              dataset=fake_dataset("mnist", 64))
        assert train(session) == "finished"
        records = session.run.read_metrics()
        assert all(r["r1"] >= 0 for r in records) and len(records) == 2
        assert "r1" in [title for title, _, _ in plots.charts_for(records)]
        assert gm.load_model(session.run.path, "cpu").sample(2, seed=0).shape == (2, 1, 28, 28)
    finally:
        unregister("r1gan")
        del sys.modules[module.__name__]
    assert "r1gan" not in MODELS


def test_no_page_or_library_module_branches_on_a_family_name():
    """What a model can do is declared (capabilities); nothing compares its "family" string."""
    import re
    pattern = re.compile(r"family *==|family *!=|family in")
    files = [*(REPO / "gm").rglob("*.py"), *(REPO / "pages").rglob("*.py"), REPO / "app.py"]
    hits = [f"{f.relative_to(REPO)}:{i}" for f in files
            for i, line in enumerate(f.read_text(encoding="utf-8").splitlines(), 1) if pattern.search(line)]
    assert hits == []

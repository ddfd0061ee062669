"""CycleGAN and StarGAN: networks as the papers draw them, one-sentence errors, and training that
resumes bit-exactly (CycleGAN's image pool and the grid's source images included)."""

from __future__ import annotations

import json

import pytest
import torch

import gm
from gm.config import with_overrides
from gm.errors import GMError
from gm.models.base import DataInfo
from gm.models.translation_nets import PatchDiscriminator, ResnetGenerator, StarDiscriminator
from gm.registry import get_spec
from gm.runs.loop import new_session, open_session, train
from gm.trainers.translation import ImagePool, lr_factor

SHAPES = ("square", "ellipse", "heart")
INFO = DataInfo("dsprites", (1, 64, 64), 1, num_classes=3, domains=SHAPES)
TINY = {"batch_size": 2, "width": 0.125, "n_blocks": 1, "log_every": 1, "sample_every": 3,
        "checkpoint_every": 3}


def _config(name: str, **values):
    spec = get_spec(name)
    return with_overrides(spec.config_cls(), {**TINY, **values}, model=name)


def test_networks_keep_the_image_size_and_the_papers_heads():
    x = torch.rand(2, 1, 64, 64) * 2 - 1
    g = ResnetGenerator(1, width=0.125, n_blocks=2)
    with torch.no_grad():
        assert g(x).shape == x.shape and float(g(x).abs().max()) <= 1
    star = ResnetGenerator(1, width=0.125, n_blocks=2, cond_channels=3, variant="stargan")
    assert star(x, torch.eye(3)[:2]).shape == x.shape
    with pytest.raises(GMError, match="target domain"):
        star(x)
    assert PatchDiscriminator(1, width=0.125)(x).shape == (2, 1, 6, 6)   # one score per 70x70 patch
    src, cls = StarDiscriminator(1, 64, 3, width=0.125)(x)
    assert src.shape == (2, 1, 2, 2) and cls.shape == (2, 3)
    # width 1 = the papers' channels: 64 after the first layer, 256 in the residual blocks.
    full = ResnetGenerator(3, width=1.0, n_blocks=9)
    convs = [m for m in full.modules() if isinstance(m, torch.nn.Conv2d)]
    assert convs[0].out_channels == 64 and convs[3].out_channels == 256
    assert 11.3e6 < sum(p.numel() for p in full.parameters()) < 11.4e6   # CycleGAN's 256-px G: 11.378M


def test_models_translate_in_the_unit_range_and_name_bad_domains():
    cyc = get_spec("cyclegan").build_model(_config("cyclegan", target="heart"), INFO)
    assert cyc.domains == ("square", "heart") and cyc.pairs() == (("square", "heart"), ("heart", "square"))
    star = get_spec("stargan").build_model(_config("stargan"), INFO)
    assert star.domains == SHAPES and len(star.pairs()) == 6
    x = torch.rand(3, 1, 64, 64)
    for model, to in ((cyc, "heart"), (star, "ellipse")):
        out = model.translate(x, to=to)
        assert out.shape == x.shape and 0 <= float(out.min()) and float(out.max()) <= 1
        assert model.reconstruct(x, source=model.domains[0], to=to).shape == x.shape
        with pytest.raises(GMError, match="Unknown domain 'triangle'"):
            model.translate(x, to="triangle")
        # The discriminators are not needed to translate: the papers' parameter count leaves them out.
        gens = sum(p.numel() for n, p in model.named_parameters() if not n.startswith(("disc", "discriminator")))
        assert model.translator_parameters() == gens
    with pytest.raises(GMError, match="two different domains"):
        get_spec("cyclegan").build_model(_config("cyclegan", target="square"), INFO)
    with pytest.raises(GMError, match="'star' is not a domain"):
        get_spec("cyclegan").build_model(_config("cyclegan", target="star"), INFO)


def test_image_pool_returns_history_half_the_time_and_keeps_it():
    g = torch.Generator().manual_seed(0)
    pool = ImagePool(4, g)
    first = torch.arange(4.0).view(4, 1, 1, 1)
    assert torch.equal(pool.query(first), first) and len(pool) == 4    # filling: the newest come back
    later = 100 + torch.arange(200.0).view(200, 1, 1, 1)
    out = pool.query(later)
    from_history = (out != later).sum().item()
    assert 60 < from_history < 140            # about half are earlier fakes
    assert set(out[out != later].tolist()) <= set(range(4)) | set(range(100, 300))
    assert len(pool) == 4 and (pool.images >= 100).all()
    assert torch.equal(ImagePool(0, g).query(later), later)


def test_lr_schedule_is_constant_then_linear_to_zero():
    assert lr_factor(5, 0, 0) == 1.0
    assert [lr_factor(s, 10, 20) for s in (0, 10, 15, 20, 30)] == [1.0, 1.0, 0.5, 0.0, 0.0]


@pytest.mark.parametrize("name,extra", [("cyclegan", {"pool_size": 3}), ("stargan", {"n_critic": 2}),
                                        ("stargan", {"n_critic": 2, "mask_split": "scale"})])
def test_training_resumes_bit_exactly(name, extra, runs_dir):
    def session(run_name, steps):
        return new_session(name, _config(name, **extra), runs_dir=runs_dir, name=run_name, device="cpu",
                           steps=steps)

    whole = session("whole", 6)
    assert train(whole) == "finished"
    half = session("half", 3)
    assert train(half) == "finished"
    if name == "cyclegan":
        assert len(half.trainer.pool_x) == 3      # the pool is full and in the checkpoint
    resumed = open_session(half.run.path, steps=3)
    if name == "cyclegan":
        assert torch.equal(resumed.trainer.pool_x.images, half.trainer.pool_x.images)
    assert train(resumed) == "finished"
    for key, value in whole.trainer.weights().items():
        assert torch.equal(value, resumed.trainer.weights()[key]), key
    if name == "cyclegan":
        assert torch.equal(whole.trainer.pool_y.images, resumed.trainer.pool_y.images)
    a = [json.loads(r) for r in whole.run.metrics_path.read_text().splitlines()]
    b = [json.loads(r) for r in resumed.run.metrics_path.read_text().splitlines()]
    drop = ("time", "epoch")
    assert [{k: v for k, v in r.items() if k not in drop} for r in a] == \
        [{k: v for k, v in r.items() if k not in drop} for r in b]
    # The grid translates the same source images before and after the resume.
    assert torch.equal(whole.trainer.sample_grid()[0], resumed.trainer.sample_grid()[0])
    model = gm.load_model(resumed.run.path, device="cpu")
    assert "translates" in model.capabilities


def test_stargan_logs_generator_losses_only_on_generator_steps(runs_dir):
    s = new_session("stargan", _config("stargan", n_critic=3), runs_dir=runs_dir, name="sg", device="cpu",
                    steps=6)
    assert train(s) == "finished"
    rows = [json.loads(r) for r in s.run.metrics_path.read_text().splitlines()]
    with_g = [r["step"] for r in rows if "g_loss" in r]
    assert with_g == [3, 6] and all("d_cls" in r and "gp" in r for r in rows)


def test_stargan_mask_vector_combines_two_label_sets(runs_dir):
    """The paper's mask vector: shapes and scales in one generator, each step knowing one set."""
    model = get_spec("stargan").build_model(_config("stargan", mask_split="scale"), INFO)
    assert model.domains == (*SHAPES, "small", "large") and model.uses_mask
    assert ("small", "large") in model.pairs() and ("square", "large") not in model.pairs()
    assert model.domain_split_of("large") == "scale" and model.domain_split_of("heart") == "shape"
    shape_c = model.condition(torch.tensor([2]), label_set=0)
    scale_c = model.condition(torch.tensor([1]), label_set=1)
    #                 square ellipse heart small large | mask: shape, scale
    assert shape_c.tolist() == [[0, 0, 1, 0, 0, 1, 0]]
    assert scale_c.tolist() == [[0, 0, 0, 0, 1, 0, 1]]
    _, logits = model.discriminator(torch.zeros(1, 1, 64, 64))
    assert logits.shape == (1, 5)
    with pytest.raises(GMError, match="different label sets"):
        model.translate(torch.rand(1, 1, 64, 64), to="large", source="square")
    with pytest.raises(GMError, match="another split"):
        _config("stargan", mask_split="shape").validate()

    s = new_session("stargan", _config("stargan", mask_split="scale", n_critic=1), runs_dir=runs_dir,
                    name="mask", device="cpu", steps=4)
    assert train(s) == "finished"
    rows = [json.loads(r) for r in s.run.metrics_path.read_text().splitlines()]
    # Steps alternate: the shape set on odd-numbered steps (0-based even), the scale set on the others.
    assert ["cls_acc_shape" in r for r in rows] == [True, False, True, False]
    assert ["cls_acc_scale" in r for r in rows] == [False, True, False, True]
    from gm.data import load_dataset
    from gm.metrics.translation import evaluate_translation
    result = evaluate_translation(gm.load_model(s.run.path, device="cpu"), load_dataset("dsprites"), n=8)
    assert set(result["pairs"]) == {f"{a}->{b}" for a, b in s.trainer.model.pairs()}
    assert all(k in result["pairs"]["small->large"] for k in ("target_accuracy", "gt_iou", "content_error"))

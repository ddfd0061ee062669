import pytest

from gm.config import describe, from_dict, parse_overrides, with_overrides
from gm.errors import GMError
from gm.registry import MODELS, get_spec


def test_every_model_config_has_defaults_and_help():
    for spec in MODELS.values():
        cls = spec.config_cls
        cls()  # defaults construct
        for field in describe(cls):
            assert field["help"], f"{spec.name}.{field['name']} has no help text"


def test_overrides_are_typed_and_validated():
    cfg = get_spec("vae").config_cls()
    new = with_overrides(cfg, parse_overrides(["lr=3e-4", "latent_dim=8", "batch_size=32"]), model="vae")
    assert new.lr == pytest.approx(3e-4) and new.latent_dim == 8 and new.batch_size == 32
    with pytest.raises(GMError, match="must be a int"):
        with_overrides(cfg, {"latent_dim": "2.5"})
    with pytest.raises(GMError, match="at least"):
        with_overrides(cfg, {"batch_size": "0"})
    with pytest.raises(GMError, match="Unknown config key"):
        with_overrides(cfg, {"nope": "1"})
    with pytest.raises(GMError, match="key=value"):
        parse_overrides(["lr"])


def test_from_dict_round_trip():
    cfg = get_spec("vae").config_cls()
    from gm.config import to_dict
    assert from_dict(type(cfg), to_dict(cfg)) == cfg

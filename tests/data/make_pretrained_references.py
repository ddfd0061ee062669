"""Store what every shipped pretrained run samples, for tests/test_registry_models.py.

    python -m tests.data.make_pretrained_references

Run it after rebuilding a shipped run (`python -m gm.pretrained build`): the test then guards that
refactors leave the shipped weights' outputs unchanged (8 samples of seed 7 in fp16, and float64 sums
of those samples and of the fixed-seed grid; translators: 8 translations and a translation grid).
"""

from __future__ import annotations

import torch
from safetensors.torch import save_file

import gm
from gm.pretrained import pretrained_runs
from tests.conftest import REPO

OUT = REPO / "tests" / "data" / "pretrained_reference_samples.safetensors"


def reference_outputs(model) -> tuple[torch.Tensor, torch.Tensor]:
    """(8 outputs, a grid) that pin a model's weights down: 8 samples of seed 7 and the fixed-seed grid
    for a model that samples; for a translator, 8 seeded source images of its first pair translated,
    and the translation grid of those sources to every target."""
    if "samples" in model.capabilities:
        return model.sample(8, seed=7), model.sample_grid()[0]
    from gm.data import load_dataset
    from gm.metrics.translation import choose_sources, translation_grid
    from gm.registry import get_spec

    dataset = load_dataset(get_spec(model.model_name).dataset, render_only=True)
    source, target = model.pairs()[0]
    index = choose_sources(dataset, model.config.domain_split(), source, 8, seed=7)
    x = dataset.take(index).float() / dataset.max_value
    targets = tuple(b for a, b in model.pairs() if a == source)
    return model.translate(x, to=target, source=source), translation_grid(model, x, targets, source=source)[0]


def main() -> None:
    refs: dict[str, torch.Tensor] = {}
    for run in pretrained_runs():
        model = gm.load_model(run.path, device="cpu")
        x, grid = reference_outputs(model)
        refs[f"{run.name}.sample"] = x.half().contiguous()
        refs[f"{run.name}.sample_sum"] = x.double().sum().reshape(1)
        refs[f"{run.name}.grid_sum"] = grid.double().sum().reshape(1)
    save_file(refs, str(OUT))
    print(f"{OUT}: {len(refs) // 3} runs")


if __name__ == "__main__":
    main()

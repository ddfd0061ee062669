"""Store what every shipped pretrained run samples, for tests/test_registry_models.py.

    python -m tests.data.make_pretrained_references

Run it after rebuilding a shipped run (`python -m gm.pretrained build`): the test then guards that
refactors leave the shipped weights' samples unchanged (8 samples of seed 7 in fp16, and float64 sums
of those samples and of the fixed-seed grid).
"""

from __future__ import annotations

import torch
from safetensors.torch import save_file

import gm
from gm.pretrained import pretrained_runs
from tests.conftest import REPO

OUT = REPO / "tests" / "data" / "pretrained_reference_samples.safetensors"


def main() -> None:
    refs: dict[str, torch.Tensor] = {}
    for run in pretrained_runs():
        model = gm.load_model(run.path, device="cpu")
        x = model.sample(8, seed=7)
        grid, _ = model.sample_grid()
        refs[f"{run.name}.sample"] = x.half().contiguous()
        refs[f"{run.name}.sample_sum"] = x.double().sum().reshape(1)
        refs[f"{run.name}.grid_sum"] = grid.double().sum().reshape(1)
    save_file(refs, str(OUT))
    print(f"{OUT}: {len(refs) // 3} runs")


if __name__ == "__main__":
    main()

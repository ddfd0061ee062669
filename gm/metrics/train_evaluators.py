"""Re-train the shipped evaluator classifiers from scratch.

    python -m gm.metrics.train_evaluators mnist      # MNIST digits (GM_DATA_DIR / --data-dir)
    python -m gm.metrics.train_evaluators dsprites   # rendered dSprites, orientation 0
    python -m gm.metrics.train_evaluators mnist-style  # style + digit of gm.data.mnist_style's digits
    python -m gm.metrics.train_evaluators            # all three

Each run is seeded, uses one CPU thread by default (a few minutes each) and writes
``checkpoints/evaluators/<name>.safetensors`` + ``<name>.json`` with the held-out accuracy and the
command that produced it.
"""

from __future__ import annotations

import argparse
import math
import platform
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from gm.data.registry import DATASETS, dataset_names, get_dataset_spec
from gm.errors import GMError
from gm.metrics.classifiers import (
    DSPRITES_HEADS,
    MNIST_STYLE_HEADS,
    DSpritesClassifier,
    MNISTClassifier,
    MNISTStyleClassifier,
    evaluators_dir,
    save_classifier,
)


def random_affine(x: torch.Tensor, gen: torch.Generator, shift_px: float, degrees: float,
                  scale: float) -> torch.Tensor:
    """Small random shifts, rotations and zooms: 7,000 digits are few, so teach invariance to them."""
    n, _, h, _ = x.shape
    angle = (torch.rand(n, generator=gen) * 2 - 1) * math.radians(degrees)
    zoom = 1 + (torch.rand(n, generator=gen) * 2 - 1) * scale
    shift = (torch.rand(n, 2, generator=gen) * 2 - 1) * (2 * shift_px / h)
    cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
    theta = torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def _schedule(opt: torch.optim.Optimizer, total_steps: int, lr: float) -> torch.optim.lr_scheduler.LRScheduler:
    return torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=total_steps, pct_start=0.2)


@torch.no_grad()
def _accuracy(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int = 1000) -> float:
    model.eval()
    right = 0
    for s in range(0, x.shape[0], batch):
        right += int((model(x[s:s + batch]).argmax(1) == y[s:s + batch]).sum())
    return right / x.shape[0]


def train_mnist(data_dir: str | None, epochs: int = 14, batch_size: int = 64, lr: float = 3e-3,
                seed: int = 0, width: int = 24, log=print) -> tuple[MNISTClassifier, dict]:
    from gm.data.mnist import load_mnist

    train = load_mnist(data_dir, train=True)
    test = load_mnist(data_dir, train=False)
    x, y = train.images.float() / 255, train.labels
    xt, yt = test.images.float() / 255, test.labels
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    model = MNISTClassifier(width)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    steps_per_epoch = x.shape[0] // batch_size
    sched = _schedule(opt, epochs * steps_per_epoch, lr)
    start, cpu_start = time.perf_counter(), time.process_time()
    for epoch in range(epochs):
        model.train()
        perm = torch.randperm(x.shape[0], generator=gen)
        for i in range(steps_per_epoch):
            idx = perm[i * batch_size:(i + 1) * batch_size]
            xb = random_affine(x[idx], gen, shift_px=2.0, degrees=10.0, scale=0.1)
            loss = F.cross_entropy(model(xb), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
        log(f"epoch {epoch + 1}/{epochs}  loss {loss.item():.4f}  test accuracy {_accuracy(model, xt, yt):.4f}  "
            f"{time.perf_counter() - start:.0f}s")
    acc = _accuracy(model, xt, yt)
    info = {"dataset": "mnist", "accuracy": round(acc, 4), "accuracy_on": f"{len(test)} MNIST test digits",
            "train_images": len(train), "epochs": epochs, "batch_size": batch_size, "lr": lr, "seed": seed,
            "augmentation": "random shift +-2 px, rotation +-10 deg, zoom +-10%",
            "seconds": round(time.perf_counter() - start, 1),
            "cpu_seconds": round(time.process_time() - cpu_start, 1), "data_source": train.meta.get("source")}
    return model, info


def _dsprites_split(seed: int, holdout: float = 0.1):
    from gm.data.dsprites import load_dsprites

    ds = load_dsprites(render_only=True)
    x = ds.images.float()                                   # binary 0/1 -> [0, 1]
    factors = ds.factor_classes[:, [0, 1, 3, 4]]           # shape, scale, posX, posY (orientation is 0)
    perm = torch.randperm(len(ds), generator=torch.Generator().manual_seed(seed))
    cut = int(len(ds) * (1 - holdout))
    return (x[perm[:cut]], factors[perm[:cut]]), (x[perm[cut:]], factors[perm[cut:]])


def _soften(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Blur half of a batch a little: generated sprites are grey at the edges, rendered ones are not."""
    blur = F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)
    pick = (torch.rand(x.shape[0], 1, 1, 1, generator=gen) < 0.5).float()
    return pick * blur + (1 - pick) * x


@torch.no_grad()
def dsprites_accuracy(model: DSpritesClassifier, x: torch.Tensor, factors: torch.Tensor) -> dict[str, float]:
    model.eval()
    right = {name: 0 for name, _ in DSPRITES_HEADS}
    for s in range(0, x.shape[0], 1000):
        out = model(x[s:s + 1000])
        for j, (name, _) in enumerate(DSPRITES_HEADS):
            right[name] += int((out[name].argmax(1) == factors[s:s + 1000, j]).sum())
    return {name: right[name] / x.shape[0] for name in right}


def train_dsprites(epochs: int = 8, batch_size: int = 64, lr: float = 2e-3, seed: int = 0,
                   log=print) -> tuple[DSpritesClassifier, dict]:
    (x, f), (xt, ft) = _dsprites_split(seed)
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed + 1)
    model = DSpritesClassifier()
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    steps_per_epoch = x.shape[0] // batch_size
    sched = _schedule(opt, epochs * steps_per_epoch, lr)
    start, cpu_start = time.perf_counter(), time.process_time()
    for epoch in range(epochs):
        model.train()
        perm = torch.randperm(x.shape[0], generator=gen)
        for i in range(steps_per_epoch):
            idx = perm[i * batch_size:(i + 1) * batch_size]
            out = model(_soften(x[idx], gen))
            loss = sum(F.cross_entropy(out[name], f[idx, j]) for j, (name, _) in enumerate(DSPRITES_HEADS))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
        accs = dsprites_accuracy(model, xt, ft)
        log(f"epoch {epoch + 1}/{epochs}  loss {loss.item():.4f}  held-out accuracy "
            + "  ".join(f"{k} {v:.4f}" for k, v in accs.items()) + f"  {time.perf_counter() - start:.0f}s")
    accs = dsprites_accuracy(model, xt, ft)
    info = {"dataset": "dsprites", "accuracy": {k: round(v, 4) for k, v in accs.items()},
            "accuracy_on": f"{xt.shape[0]} held-out rendered sprites (orientation 0; 10% split, seed {seed})",
            "train_images": int(x.shape[0]), "epochs": epochs, "batch_size": batch_size, "lr": lr,
            "seed": seed, "augmentation": "3x3 box blur on half of each batch",
            "seconds": round(time.perf_counter() - start, 1),
            "cpu_seconds": round(time.process_time() - cpu_start, 1), "data_source": "rendered (gm.data.dsprites)"}
    return model, info


def random_shift(x: torch.Tensor, gen: torch.Generator, max_px: int) -> torch.Tensor:
    """Whole-pixel random shifts of up to max_px each way (zeros come in): the strokes themselves are
    not resampled, so their width and slant, which are what a style is, stay exactly as drawn."""
    n, _, h, w = x.shape
    shift = torch.randint(-max_px, max_px + 1, (n, 2), generator=gen).float()
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0] = theta[:, 1, 1] = 1
    theta[:, 0, 2], theta[:, 1, 2] = -shift[:, 0] * 2 / w, -shift[:, 1] * 2 / h
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="nearest", padding_mode="zeros", align_corners=False)


def _all_styles(images: torch.Tensor) -> torch.Tensor:
    """uint8 S x N x 1 x 28 x 28: every digit in every style of gm.data.mnist_style."""
    from gm.data.mnist_style import STYLES, render

    return torch.stack([render(images, name) for name in STYLES])


@torch.no_grad()
def mnist_style_accuracy(model: MNISTStyleClassifier, x: torch.Tensor, factors: torch.Tensor) -> dict[str, float]:
    """Share of images (uint8 N x 1 x 28 x 28) whose style and digit (factors: N x 2) are read right."""
    model.eval()
    right = {name: 0 for name, _ in MNIST_STYLE_HEADS}
    for s in range(0, x.shape[0], 1000):
        out = model(x[s:s + 1000].float() / 255)
        for j, (name, _) in enumerate(MNIST_STYLE_HEADS):
            right[name] += int((out[name].argmax(1) == factors[s:s + 1000, j]).sum())
    return {name: right[name] / x.shape[0] for name in right}


def train_mnist_style(data_dir: str | None, epochs: int = 20, batch_size: int = 64, lr: float = 3e-3,
                      seed: int = 0, width: int = 16, log=print) -> tuple[MNISTStyleClassifier, dict]:
    """The mnist-style evaluator: each epoch shows every training digit once, in a style drawn at
    random (so all three renderings of every digit are seen over the epochs, not only the one style
    the dataset assigns it), shifted by up to 2 whole pixels."""
    from gm.data.mnist_style import STYLES, load_mnist_style

    train = load_mnist_style(data_dir, train=True)
    test = load_mnist_style(data_dir, train=False)
    assert train.plain is not None and test.plain is not None and train.labels is not None
    every = _all_styles(train.plain)                  # S x N x 1 x 28 x 28, uint8
    digits = train.labels
    n = digits.shape[0]
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    model = MNISTStyleClassifier(width)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    steps_per_epoch = n // batch_size
    sched = _schedule(opt, epochs * steps_per_epoch, lr)
    start, cpu_start = time.perf_counter(), time.process_time()
    for epoch in range(epochs):
        model.train()
        perm = torch.randperm(n, generator=gen)
        style = torch.randint(0, len(STYLES), (n,), generator=gen)
        for i in range(steps_per_epoch):
            idx = perm[i * batch_size:(i + 1) * batch_size]
            xb = random_shift(every[style[idx], idx].float() / 255, gen, 2)
            out = model(xb)
            loss = F.cross_entropy(out["style"], style[idx]) + F.cross_entropy(out["digit"], digits[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
        accs = mnist_style_accuracy(model, test.images, test.factor_classes)
        log(f"epoch {epoch + 1}/{epochs}  loss {loss.item():.4f}  test accuracy "
            + "  ".join(f"{k} {v:.4f}" for k, v in accs.items()) + f"  {time.perf_counter() - start:.0f}s")
    accs = mnist_style_accuracy(model, test.images, test.factor_classes)
    # Every test digit in every style, too: a translation can ask for any of them.
    test_every = _all_styles(test.plain)
    k = test_every.shape[1]
    both = torch.stack([torch.arange(len(STYLES)).repeat_interleave(k), test.labels.repeat(len(STYLES))], 1)
    accs_all = mnist_style_accuracy(model, test_every.reshape(-1, 1, 28, 28), both)
    info = {"dataset": "mnist-style", "accuracy": {k: round(v, 4) for k, v in accs.items()},
            "accuracy_on": f"the {len(test)} mnist-style test images (each MNIST test digit in its assigned style)",
            "accuracy_every_style": {k: round(v, 4) for k, v in accs_all.items()},
            "accuracy_every_style_on": f"every one of the {k} MNIST test digits in each of the {len(STYLES)} styles",
            "train_images": n, "epochs": epochs, "batch_size": batch_size, "lr": lr, "seed": seed, "width": width,
            "augmentation": "each training digit in a random style every epoch; random shift +-2 whole pixels",
            "seconds": round(time.perf_counter() - start, 1),
            "cpu_seconds": round(time.process_time() - cpu_start, 1), "data_source": train.meta.get("source")}
    return model, info


# How each dataset's evaluator is trained (its checkpoint name comes from the dataset's spec).
RECIPES = {"mnist": lambda data_dir, **kw: train_mnist(data_dir, **kw),
           "dsprites": lambda data_dir, **kw: train_dsprites(**kw),
           "mnist-style": lambda data_dir, **kw: train_mnist_style(data_dir, **kw)}


def trainable() -> tuple[str, ...]:
    """Registered datasets that have an evaluator and a recipe to train it."""
    return tuple(n for n in dataset_names() if DATASETS[n].evaluator and n in RECIPES)


def _which(name: str) -> str:
    """argparse type: a dataset whose evaluator this module can train (a one-sentence error if not)."""
    get_dataset_spec(name)
    if name not in trainable():
        raise GMError(f"There is no evaluator recipe for dataset '{name}'; use one of {', '.join(trainable())}.")
    return name


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m gm.metrics.train_evaluators",
                                description="Re-train the evaluator classifiers shipped in checkpoints/evaluators/.")
    # A type, not choices: argparse checks choices against the empty default and refused no arguments.
    p.add_argument("which", nargs="*", type=_which, default=[], metavar="DATASET",
                   help=f"datasets whose evaluator to train (default all: {', '.join(trainable())})")
    p.add_argument("--data-dir", help="MNIST folder (default $GM_DATA_DIR or ~/.cache/gm/data)")
    p.add_argument("--out", help="output folder (default checkpoints/evaluators)")
    p.add_argument("--epochs", type=int, help="override the number of epochs")
    p.add_argument("--threads", type=int, default=1, help="CPU threads (default 1: reproducible, polite)")
    p.add_argument("--seed", type=int, default=0)
    try:
        args = p.parse_args(argv)
    except GMError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    torch.set_num_threads(max(1, args.threads))
    out = Path(args.out) if args.out else evaluators_dir()
    command = "python -m gm.metrics.train_evaluators " + " ".join(argv if argv is not None else sys.argv[1:])
    env = {"torch": torch.__version__, "python": platform.python_version(), "threads": args.threads}
    try:
        for which in args.which or trainable():
            kwargs = {"seed": args.seed}
            if args.epochs:
                kwargs["epochs"] = args.epochs
            model, info = RECIPES[which](args.data_dir, **kwargs)
            name = DATASETS[which].evaluator
            path = save_classifier(model, name, {**info, "command": command.strip(), "env": env}, out)
            print(f"{which}: accuracy {info['accuracy']} -> {path}")
    except GMError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Train the offline realism evaluators (see :mod:`gm.metrics.offline`).

    python -m gm.metrics.train_offline mnist      # the shared MNIST digits (GM_DATA_DIR / --data-dir)
    python -m gm.metrics.train_offline dsprites   # rendered dSprites, orientation 0
    python -m gm.metrics.train_offline            # both

Each batch holds real images (labels 0..K-1, lightly augmented) and a third as many generated
non-images (label K, "not a digit / not a sprite"): noise and noise clouds, grey blobs, rectangles,
the other dataset's images, and real images ruined by heavy blur, heavy noise or heavy salt and pepper. Seeded, one CPU
thread by default, a minute or two each; writes ``checkpoints/evaluators/<dataset>_offline.safetensors``
and ``.json`` (accuracy, reject rates, command).

MNIST: the first 6,000 training digits are used for training; the rest of the training split and the
test split stay held out for the disturbance table. dSprites: a seeded 80/20 split of the rendered
sprites (the held-out 20% feed the table).
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from gm.errors import GMError
from gm.metrics import disturb
from gm.metrics.classifiers import evaluators_dir, save_classifier
from gm.metrics.offline import OFFLINE, OfflineNet

MNIST_TRAIN = 6000        # training digits; train[6000:] and the test split are held out
DSPRITES_HOLDOUT = 0.2


def mnist_split(data_dir: str | None):
    """(train images, labels), (held-out train images, labels), (test images, labels), floats in [0, 1]."""
    from gm.data.mnist import load_mnist

    tr = load_mnist(data_dir, train=True)
    te = load_mnist(data_dir, train=False)
    x, y = tr.images.float() / 255, tr.labels
    return (x[:MNIST_TRAIN], y[:MNIST_TRAIN]), (x[MNIST_TRAIN:], y[MNIST_TRAIN:]), (te.images.float() / 255, te.labels)


def dsprites_split(seed: int = 0):
    """(train images, shapes), (held-out images, shapes) of the rendered orientation-0 sprites."""
    from gm.data.dsprites import load_dsprites

    ds = load_dsprites(render_only=True)
    x = ds.images.float()
    shape = ds.factor_classes[:, 0].long()
    perm = torch.randperm(len(ds), generator=torch.Generator().manual_seed(seed))
    cut = int(len(ds) * (1 - DSPRITES_HOLDOUT))
    return (x[perm[:cut]], shape[perm[:cut]]), (x[perm[cut:]], shape[perm[cut:]])


def negatives(n: int, size: int, real: torch.Tensor, other: torch.Tensor, seed: int) -> torch.Tensor:
    """n non-images of size x size, an even mix of the kinds in the module docstring."""
    g = torch.Generator().manual_seed(seed)
    kinds = torch.randint(0, 7, (n,), generator=g)
    out = torch.empty(n, 1, size, size)
    for k in range(7):
        idx = (kinds == k).nonzero().flatten()
        m = int(idx.numel())
        if m == 0:
            continue
        s = seed * 7 + k
        if k == 0:
            part = disturb.smooth_noise(m, size, s)
        elif k == 1:
            part = disturb.grey_blobs(m, size, s)
        elif k == 2:
            part = disturb.random_rectangles(m, size, s)
        elif k == 3:
            pick = torch.randint(0, other.shape[0], (m,), generator=g)
            part = disturb.fit(other[pick], size)
        else:
            base = real[torch.randint(0, real.shape[0], (m,), generator=g)]
            if k == 4:
                part = disturb.gaussian_blur(base, (2.5 + 1.5 * float(torch.rand(1, generator=g))) * size / 28)
            elif k == 5:
                part = disturb.gaussian_noise(base, 0.6 + 0.4 * float(torch.rand(1, generator=g)), s)
            else:
                part = disturb.salt_and_pepper(base, 0.3 + 0.3 * float(torch.rand(1, generator=g)), s)
        out[idx] = part
    return out


def _augment_mnist(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    from gm.metrics.train_evaluators import random_affine
    return random_affine(x, gen, shift_px=2.0, degrees=10.0, scale=0.1)


def _augment_dsprites(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    from gm.metrics.train_evaluators import _soften
    return _soften(x, gen)


@torch.no_grad()
def _rates(model: OfflineNet, x: torch.Tensor, y: torch.Tensor, neg: torch.Tensor) -> dict[str, float]:
    model.eval()
    k = model.classes
    pred = torch.cat([model(x[s:s + 500]).argmax(1) for s in range(0, x.shape[0], 500)])
    pneg = torch.cat([model(neg[s:s + 500]).argmax(1) for s in range(0, neg.shape[0], 500)])
    return {"accuracy": round(float((pred == y).float().mean()), 4),
            "real_rejected": round(float((pred == k).float().mean()), 4),
            "negatives_rejected": round(float((pneg == k).float().mean()), 4)}


def train(dataset: str, data_dir: str | None = None, epochs: int | None = None, seed: int = 0,
          width: int = 16, hidden: int = 64, batch_size: int = 64, lr: float = 3e-3, log=print):
    """Train one offline evaluator; returns (model, info)."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    _, size, names = OFFLINE[dataset]
    if dataset == "mnist":
        (x, y), _, (xt, yt) = mnist_split(data_dir)
        (dx, _), _ = dsprites_split(seed)
        other = dx[torch.randperm(dx.shape[0], generator=gen)[:3000]]
        augment, epochs = _augment_mnist, epochs or 5
    elif dataset == "dsprites":
        (x, y), (xt, yt) = dsprites_split(seed)
        (mx, _), _, _ = mnist_split(data_dir)
        other = mx
        perm = torch.randperm(x.shape[0], generator=gen)[:6000]   # 6,000 per epoch is plenty for sprites
        x, y = x[perm], y[perm]
        xt, yt = xt[:1000], yt[:1000]
        augment, epochs = _augment_dsprites, epochs or 4
    else:
        raise GMError(f"No offline evaluator recipe for '{dataset}'; use {' or '.join(OFFLINE)}.")
    k = len(names)
    model = OfflineNet(k, size, width, hidden)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    steps = x.shape[0] // batch_size
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=epochs * steps, pct_start=0.2)
    n_neg = batch_size // 3
    start = time.perf_counter()
    for epoch in range(epochs):
        model.train()
        perm = torch.randperm(x.shape[0], generator=gen)
        for i in range(steps):
            idx = perm[i * batch_size:(i + 1) * batch_size]
            neg = negatives(n_neg, size, x, other, seed=1 + epoch * 100_003 + i)
            xb = torch.cat([augment(x[idx], gen), neg])
            yb = torch.cat([y[idx], torch.full((n_neg,), k, dtype=torch.long)])
            loss = F.cross_entropy(model(xb), yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
        rates = _rates(model, xt, yt, negatives(500, size, xt, other, seed=10**9))
        log(f"{dataset} epoch {epoch + 1}/{epochs}  loss {loss.item():.4f}  {rates}  "
            f"{time.perf_counter() - start:.0f}s")
    rates = _rates(model, xt, yt, negatives(1000, size, xt, other, seed=10**9))
    info = {"dataset": dataset, **rates, "rates_on": f"{xt.shape[0]} held-out real images, 1000 generated negatives",
            "train_images": int(x.shape[0]), "epochs": epochs, "batch_size": batch_size, "negatives_per_batch": n_neg,
            "lr": lr, "seed": seed, "classes": list(names) + ["not real"],
            "seconds": round(time.perf_counter() - start, 1)}
    return model, info


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m gm.metrics.train_offline",
                                description="Train the offline realism evaluators (checkpoints/evaluators/*_offline).")
    p.add_argument("which", nargs="*", metavar="DATASET", help=f"datasets (default all: {', '.join(OFFLINE)})")
    p.add_argument("--data-dir", help="MNIST folder (default $GM_DATA_DIR or ~/.cache/gm/data)")
    p.add_argument("--out", help="output folder (default checkpoints/evaluators)")
    p.add_argument("--epochs", type=int, help="override the number of epochs")
    p.add_argument("--threads", type=int, default=1, help="CPU threads (default 1)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    unknown = [w for w in args.which if w not in OFFLINE]
    if unknown:
        print(f"error: no offline evaluator recipe for {', '.join(unknown)}; use {' or '.join(OFFLINE)}.",
              file=sys.stderr)
        return 2
    torch.set_num_threads(max(1, args.threads))
    out = Path(args.out) if args.out else evaluators_dir()
    command = "python -m gm.metrics.train_offline " + " ".join(argv if argv is not None else sys.argv[1:])
    env = {"torch": torch.__version__, "python": platform.python_version(), "threads": args.threads}
    try:
        for which in args.which or list(OFFLINE):
            model, info = train(which, args.data_dir, args.epochs, args.seed)
            path = save_classifier(model, OFFLINE[which][0], {**info, "command": command.strip(), "env": env}, out)
            print(f"{which}: {info['accuracy']} accuracy, {info['negatives_rejected']} negatives rejected -> {path}")
    except GMError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Time to quality: training wall time until the samples are recognisable digits of every class,
gm against the usual course script, in the same run.

    GM_DATA_DIR=/work/shared/data python -m bench.time_to_quality [--models gan,dcgan,wgan-gp]
        [--every 250] [--max-minutes 30] [--ratio 0.9] [--classes 10] [--json out.json]

Per model, two variants train at once, each in its own process on one CPU thread (so both see the
same machine load), from the same seed:

- **gm**: the shipped pretrained entry's recipe (gm.pretrained.ENTRIES: the model's config with the
  entry's overrides, e.g. the generator weight average) through gm's own loop (`new_session` +
  `train`, default callbacks: metrics, grids, checkpoints).
- **course**: what a course notebook does: torchvision ``MNIST`` with ``ToTensor`` + ``Normalize``,
  a ``DataLoader(batch_size, shuffle=True, drop_last=True)``, the *same networks* (built by gm's model
  classes) and the same losses written out inline, Adam (RMSProp for WGAN) at the model's default
  settings, ``.item()`` of each loss every step; no weight average.

Every `--every` generator steps each variant samples 1,000 images from fixed noise (G in eval mode)
and measures them with gm.metrics.quality against the 1,000 held-out digits; the probe's time is
left out of the clock. A variant stops at the first probe where the recognisable share reaches
`--ratio` of real digits' share with `--classes` classes recognised, or at `--max-minutes` of
training. Reported: seconds and generator steps to the target, and course / gm (> 1: gm is faster).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from gm.runs.callbacks import Callback

MODELS = ("gan", "dcgan", "wgan-gp")


def _config(model: str, variant: str) -> Any:
    from gm.config import from_dict, to_dict
    from gm.pretrained import ENTRIES
    from gm.registry import get_spec

    spec = get_spec(model)
    values = to_dict(spec.config_cls())
    if variant == "gm" and model in ENTRIES:
        values.update(dict(ENTRIES[model].overrides))
    return from_dict(spec.config_cls, values, model=model)


def _targets(args: argparse.Namespace):
    from gm.metrics.quality import Targets
    return Targets(classes=args.classes, recognisable_ratio=args.ratio, diversity=0.0, recall=0.0)


def _emit(record: dict[str, Any]) -> None:
    print(json.dumps(record), flush=True)


def run_gm(args: argparse.Namespace) -> None:
    import tempfile

    from gm.metrics.quality import QualityProbe, QualityReference
    from gm.runs.callbacks import Control, default_callbacks
    from gm.runs.loop import new_session, train

    config = _config(args.model, "gm")
    ref = QualityReference("mnist", data_dir=args.data_dir)
    probe = QualityProbe(ref, args.every, targets=_targets(args), log=lambda r: _emit({"probe": r}))
    control = Control()
    callbacks = [probe, *default_callbacks(control)]
    with tempfile.TemporaryDirectory(prefix="ttq-") as tmp:
        session = new_session(args.model, config, runs_dir=tmp, name=args.model, device="cpu",
                              data_dir=args.data_dir, steps=10**7)
        deadline = _Deadline(args.max_minutes * 60, probe)
        train(session, callbacks=[deadline, *callbacks])
    _emit({"done": True, "reached": probe.reached})


class _Deadline(Callback):
    """Stops the loop after `seconds` of training (the probe's time left out)."""

    def __init__(self, seconds: float, probe: Any) -> None:
        self.seconds, self.probe = seconds, probe

    def on_step_end(self, loop: Any, step: int, metrics: dict[str, Any]) -> None:
        if loop.clock() - self.probe.probe_seconds > self.seconds:
            loop.stop()


def run_course(args: argparse.Namespace) -> None:
    """The course script. Its only gm parts: the network classes and the quality probe."""
    import torch
    import torch.nn.functional as F
    from torch.utils.data import DataLoader
    from torchvision import datasets, transforms

    from gm.metrics.quality import QualityReference, shortfalls
    from gm.models.base import DataInfo
    from gm.registry import get_spec

    torch.manual_seed(0)
    c = _config(args.model, "course")
    spec = get_spec(args.model)
    data = datasets.MNIST(args.data_dir, train=True, download=False,
                          transform=transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.5,), (0.5,))]))
    info = DataInfo(dataset="mnist", image_shape=(1, 28, 28), max_value=255, num_classes=10, size=len(data))
    nets = spec.build_model(c, info)
    G, D = nets.generator, nets.discriminator
    if spec.config_cls.OPTIMIZER == "rmsprop":
        opt_g, opt_d = torch.optim.RMSprop(G.parameters(), lr=c.lr_g), torch.optim.RMSprop(D.parameters(), lr=c.lr_d)
    else:
        opt_g = torch.optim.Adam(G.parameters(), lr=c.lr_g, betas=(c.beta1, c.beta2))
        opt_d = torch.optim.Adam(D.parameters(), lr=c.lr_d, betas=(c.beta1, c.beta2))
    loader = DataLoader(data, batch_size=c.batch_size, shuffle=True, drop_last=True)
    ref = QualityReference("mnist", data_dir=args.data_dir)
    targets = _targets(args)
    fixed = torch.randn(1000, c.latent_dim, generator=torch.Generator().manual_seed(1))
    wasserstein = c.loss == "wasserstein"
    gp = getattr(c, "gp_weight", 0.0) if "GradientPenalty" in [h.__name__ for h in spec.config_cls.HOOKS] else 0.0
    clip = getattr(c, "clip", None) if "WeightClipping" in [h.__name__ for h in spec.config_cls.HOOKS] else None
    d_losses, g_losses = [], []
    step, batches, trained, probe_time = 0, 0, 0.0, 0.0
    start = time.perf_counter()
    while True:
        for x, _ in loader:
            # ---- D step
            z = torch.randn(x.shape[0], c.latent_dim)
            fake = G(z)
            d_real, d_fake = D(x).view(-1), D(fake.detach()).view(-1)
            if wasserstein:
                d_loss = d_fake.mean() - d_real.mean()
                if gp:
                    eps = torch.rand(x.shape[0], 1, 1, 1)
                    x_hat = (eps * x + (1 - eps) * fake.detach()).requires_grad_(True)
                    (grad,) = torch.autograd.grad(D(x_hat).sum(), x_hat, create_graph=True)
                    d_loss = d_loss + gp * (grad.flatten(1).norm(2, dim=1) - 1).pow(2).mean()
            else:
                d_loss = (F.binary_cross_entropy_with_logits(d_real, torch.ones_like(d_real))
                          + F.binary_cross_entropy_with_logits(d_fake, torch.zeros_like(d_fake)))
            opt_d.zero_grad()
            d_loss.backward()
            opt_d.step()
            if clip is not None:
                for p in D.parameters():
                    p.data.clamp_(-clip, clip)
            d_losses.append(d_loss.item())
            batches += 1
            if batches % c.n_critic:
                continue
            # ---- G step
            out = D(G(torch.randn(x.shape[0], c.latent_dim))).view(-1)
            g_loss = -out.mean() if wasserstein else F.binary_cross_entropy_with_logits(out, torch.ones_like(out))
            opt_g.zero_grad()
            g_loss.backward()
            opt_g.step()
            g_losses.append(g_loss.item())
            step += 1
            if step % args.every:
                continue
            trained = time.perf_counter() - start - probe_time
            t0 = time.perf_counter()
            G.eval()
            with torch.no_grad():
                images = torch.cat([G(fixed[i:i + 250]) for i in range(0, 1000, 250)])
            G.train()
            images = torch.round((images.float() + 1) / 2 * 255).clamp(0, 255) / 255
            result = ref.measure_images(images)
            probe_time += time.perf_counter() - t0
            result.update(step=step, train_seconds=round(trained, 2))
            _emit({"probe": result})
            if not shortfalls(result, targets):
                _emit({"done": True, "reached": result})
                return
            if trained > args.max_minutes * 60:
                _emit({"done": True, "reached": None})
                return


def _child(model: str, variant: str, args: argparse.Namespace) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "bench.time_to_quality", "--variant", variant, "--model", model,
           "--every", str(args.every), "--max-minutes", str(args.max_minutes), "--ratio", str(args.ratio),
           "--classes", str(args.classes), "--data-dir", args.data_dir]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=env)


def _collect(proc: subprocess.Popen, label: str) -> dict[str, Any]:
    probes, reached = [], None
    for line in proc.stdout:
        try:
            msg = json.loads(line)
        except ValueError:
            continue
        if "probe" in msg:
            p = msg["probe"]
            probes.append(p)
            print(f"  {label:>14} step {p['step']:>6}  {p['train_seconds']:>8.1f} s  recognisable "
                  f"{p['recognisable_ratio']:.3f} of real  classes {p['classes_recognised']}", file=sys.stderr)
        if msg.get("done"):
            reached = msg.get("reached")
    proc.wait()
    return {"reached": reached, "probes": probes}


def _cell(row: dict[str, Any], variant: str, args: argparse.Namespace) -> str:
    if row[f"{variant}_seconds"] is None:
        best = row[f"{variant}_best_ratio"] or 0
        return f"not reached in {args.max_minutes:g} min (best {best:.2f} of real)"
    return f"{row[f'{variant}_seconds']:.0f} ({row[f'{variant}_steps']})"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--models", default=",".join(MODELS))
    p.add_argument("--every", type=int, default=250, help="generator steps between quality probes")
    p.add_argument("--max-minutes", type=float, default=30.0, help="training time cap per variant")
    p.add_argument("--ratio", type=float, default=0.9, help="recognisable share / real digits' share to reach")
    p.add_argument("--classes", type=int, default=10, help="classes recognised to reach")
    p.add_argument("--data-dir", default=os.environ.get("GM_DATA_DIR") or str(Path.home() / ".cache/gm/data"))
    p.add_argument("--json", help="write the results here")
    p.add_argument("--variant", choices=("gm", "course"), help=argparse.SUPPRESS)
    p.add_argument("--model", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.variant:
        import torch
        torch.set_num_threads(1)
        (run_gm if args.variant == "gm" else run_course)(args)
        return 0
    rows = []
    for model in args.models.split(","):
        print(f"{model}: gm and the course script, one thread each, side by side", file=sys.stderr)
        procs = {v: _child(model, v, args) for v in ("gm", "course")}
        from concurrent.futures import ThreadPoolExecutor
        with ThreadPoolExecutor(2) as pool:
            futures = {v: pool.submit(_collect, proc, f"{model} {v}") for v, proc in procs.items()}
            out = {v: f.result() for v, f in futures.items()}
        row: dict[str, Any] = {"model": model}
        for v in ("gm", "course"):
            r = out[v]["reached"]
            row[f"{v}_seconds"] = r["train_seconds"] if r else None
            row[f"{v}_steps"] = r["step"] if r else None
            row[f"{v}_best_ratio"] = max((q["recognisable_ratio"] for q in out[v]["probes"]), default=None)
        if row["gm_seconds"] and row["course_seconds"]:
            row["speedup"] = row["course_seconds"] / row["gm_seconds"]
        rows.append(row)
        print(json.dumps(row))
    print("\n| model | gm: seconds (G steps) | course script: seconds (G steps) | course / gm |")
    print("| --- | --- | --- | --- |")
    for r in rows:
        speed = f"{r['speedup']:.2f}x" if r.get("speedup") else "—"
        print(f"| `{r['model']}` | {_cell(r, 'gm', args)} | {_cell(r, 'course', args)} | {speed} |")
    if args.json:
        Path(args.json).write_text(json.dumps({"args": vars(args), "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Interaction latency of the app, measured on its real code paths (issue 7).

    python -m bench.app_latency [--records 10000]

1. Latent slider: a slider change re-runs the Explore fragment, which decodes one code and encodes the
   PNG (`vae_views.decode_png`), for the paper-size VAE; and for a GAN slider, `gan_views.generate`
   at the default width plus the PNG.
2. Monitor refresh with a long run: `MetricsHistory.update()` on a metrics.jsonl of 10,000 logged steps
   (first read, then the incremental read of one new line), then building every chart of the page and
   serialising it as Streamlit does (plotly JSON), plus the CSV.
3. The whole Monitor page through AppTest (script run, no browser) with that run.
Median of repeats after a warm-up; absolute times on this machine.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import tempfile
import time
from pathlib import Path

import torch

from gm import gan_views, plots, vae_views
from gm.config import with_overrides
from gm.images import make_grid, to_png_bytes
from gm.registry import get_spec
from gm.runs.folder import RunFolder
from gm.runs.reader import MetricsHistory


def median_ms(fn, repeats: int = 30, warmup: int = 3) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def fake_vae_run(runs: Path, records: int) -> RunFolder:
    from gm.runs.loop import new_session, train
    cfg = with_overrides(get_spec("controlvae").config_cls(), {"log_every": "1", "checkpoint_every": "1000"},
                         model="controlvae")
    session = new_session("controlvae", cfg, runs_dir=runs, name="long", device="cpu", steps=2)
    train(session)
    run = session.run
    rng = random.Random(0)
    rows = []
    for step in range(1, records + 1):
        kl = 8 + 6 * 2.718 ** (-step / 800) + rng.gauss(0, 0.3)
        row = {"step": step * 10, "epoch": step * 10 / 288, "time": step * 0.9, "loss": 40 + kl,
               "recon": 40 + rng.gauss(0, 1), "kl": kl, "beta": 1 + 0.1 * rng.random(), "kl_target": 8.0,
               "p_term": 0.005, "i_term": 0.1}
        if step % 20 == 0:
            row["kl_dims"] = [rng.random() for _ in range(10)]
        rows.append(row)
    run.metrics_path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return run


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=10_000)
    args = parser.parse_args()
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))

    vae = vae_views.vae_of(get_spec("vae").new_trainer(get_spec("vae").config_cls(),
                                                       _shape("dsprites"), torch.device("cpu")))
    code = torch.zeros(10)
    slider_vae = median_ms(lambda: vae_views.decode_png(vae, code, scale=4))

    gan = get_spec("gan").new_trainer(get_spec("gan").config_cls(), _shape("mnist"), torch.device("cpu")).model
    z = gan_views.seed_latent(gan, 0)
    slider_gan = median_ms(lambda: to_png_bytes(make_grid(gan_views.generate(gan, z), 1, padding=0), 6))

    with tempfile.TemporaryDirectory() as tmp:
        run = fake_vae_run(Path(tmp), args.records)
        first_read = median_ms(lambda: MetricsHistory(run.metrics_path).update(), repeats=5, warmup=1)
        hist = MetricsHistory(run.metrics_path)
        hist.update()

        def one_new_line() -> None:
            run.append_metrics([{"step": 10**7, "kl": 8.0, "loss": 48.0, "recon": 40.0, "beta": 1.0}])
            hist.update()

        incremental = median_ms(one_new_line, repeats=20)
        records = hist.records

        def charts() -> None:
            for title, keys, ref in plots.charts_for(records):
                plots.line_figure(records, keys, title=title, reference=ref).to_json()
            plots.records_to_csv(records)

        build = median_ms(charts, repeats=5, warmup=1)

        os.environ["GM_RUNS_DIR"] = tmp
        from streamlit.testing.v1 import AppTest

        def page() -> None:
            at = AppTest.from_file(str(Path(__file__).resolve().parents[1] / "app.py"), default_timeout=120)
            at.session_state["run"] = str(run.path)
            at.run()
            at.switch_page("pages/monitor.py")
            at.run()
            assert not at.exception

        whole = median_ms(page, repeats=3, warmup=1)

    print("| what | median |\n| --- | --- |")
    print(f"| VAE slider: decode 64x64 + PNG (paper-size VAE) | {slider_vae:.1f} ms |")
    print(f"| GAN slider: generate 28x28 + PNG (gan, width 1) | {slider_gan:.1f} ms |")
    print(f"| Monitor, first read of {args.records:,} logged steps | {first_read:.0f} ms |")
    print(f"| Monitor poll, incremental read of one new line | {incremental:.2f} ms |")
    print(f"| Monitor, build + serialise every chart and the CSV ({args.records:,} steps) | {build:.0f} ms |")
    print(f"| Monitor page, whole script run through AppTest ({args.records:,} steps) | {whole:.0f} ms |")


def _shape(name: str):
    from gm.data.base import ImageDataset
    shape = (1, 64, 64) if name == "dsprites" else (1, 28, 28)
    return ImageDataset(name=name, images=torch.zeros((1, *shape), dtype=torch.uint8),
                        max_value=1 if name == "dsprites" else 255, num_classes=3 if name == "dsprites" else 10)


if __name__ == "__main__":
    main()

"""How long the walkthrough takes to show and to export, with the shipped pretrained runs.

    GM_DATA_DIR=/work/shared/data OMP_NUM_THREADS=1 python -m bench.walkthrough_latency --repeats 3

Times, in one process: building every step's blocks the first time (models loaded, dSprites
rendered, mode coverage sampled) and again with those caches warm (what a page change costs once
the app has run), the Walkthrough page of each step through AppTest (first visit, when the page's
own caches are empty, and again), the HTML report (interactive
and static) and the ZIP of PNG figures; and the sizes of the three files. Medians of the repeats.
"""

from __future__ import annotations

import argparse
import functools
import os
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.walkthrough_latency", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--lang", default="en")
    args = p.parse_args(argv)
    os.environ.setdefault("GM_PRETRAINED_DIR", str(REPO / "checkpoints" / "pretrained"))

    from gm import export, load_model
    from gm import walkthrough as wt
    from gm.data import load_dataset

    models = functools.cache(lambda path: load_model(path, "cpu"))
    datasets = functools.cache(lambda name: load_dataset(name))
    cache: dict = {}

    def build() -> list:
        ctx = wt.Context(args.lang, wt.default_runs(), lambda run: models(str(run.path)), datasets, cache=cache)
        return [(s, wt.build(s, ctx)) for s in wt.steps_in_order()]

    start = time.perf_counter()
    built = build()
    cold = time.perf_counter() - start
    rows: dict[str, list[float]] = {"build every step (warm caches)": [], "HTML report, interactive": [],
                                    "HTML report, static PNG charts": [], "ZIP of figures and numbers": []}
    sizes = {}
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        built = build()
        t1 = time.perf_counter()
        html = export.walkthrough_html(built, args.lang)
        t2 = time.perf_counter()
        static = export.walkthrough_html(built, args.lang, interactive=False)
        t3 = time.perf_counter()
        bundle = export.walkthrough_zip(built, args.lang)
        t4 = time.perf_counter()
        for name, seconds in zip(rows, (t1 - t0, t2 - t1, t3 - t2, t4 - t3)):
            rows[name].append(seconds)
        sizes = {"HTML interactive": len(html.encode()), "HTML static": len(static.encode()), "ZIP": len(bundle)}

    page: dict[str, list[float]] = {}
    from streamlit.testing.v1 import AppTest
    for _ in range(args.repeats):
        at = AppTest.from_file(str(REPO / "app.py"), default_timeout=600)
        at.session_state["lang"] = args.lang
        at.run()
        at.switch_page("pages/walkthrough.py").run()
        for step in wt.steps_in_order():
            t0 = time.perf_counter()
            at.session_state["wt.step"] = step
            at.run()
            page.setdefault(step, []).append(time.perf_counter() - t0)
            assert not at.exception, [e.value for e in at.exception]

    print(f"language {args.lang}, {args.repeats} repeats, torch threads {os.environ.get('OMP_NUM_THREADS', 'default')}")
    print("| what | median |\n| --- | --- |")
    print(f"| build every step, cold (models, dSprites, coverage) | {cold:.1f} s |")
    for name, values in rows.items():
        print(f"| {name} | {statistics.median(values):.2f} s |")
    for step, values in page.items():
        again = statistics.median(values[1:]) if len(values) > 1 else float("nan")
        print(f"| Walkthrough page, step `{step}`: first visit / again (AppTest) | {values[0]:.2f} s / {again:.2f} s |")
    for name, size in sizes.items():
        print(f"| size, {name} | {size / 1e6:.1f} MB |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

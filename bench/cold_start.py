"""Cold start of the app on a fresh clone: only the shipped pretrained weights, no runs, no network.

    python -m bench.cold_start [--repeats 3]

Each repeat is a fresh Python process (empty runs dir, HF_HUB_OFFLINE=1) that imports Streamlit's
AppTest and renders Home, which shows a sample grid of every pretrained model. Reported: the
process's wall time from start to the rendered page (imports included), and the render alone.
The reference is a bare `python -c "import streamlit, torch"` in a fresh process: what any
Streamlit + torch app pays before its first line.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

CHILD = r"""
import json, sys, time
t0 = time.perf_counter()
from streamlit.testing.v1 import AppTest
t1 = time.perf_counter()
at = AppTest.from_file(sys.argv[1], default_timeout=120)
at.run()
t2 = time.perf_counter()
assert not at.exception, [e.value for e in at.exception]
grids = sum(1 for el in at.get("image") for img in el.proto.imgs if img.caption.startswith("pretrained"))
print(json.dumps({"import_s": t1 - t0, "render_s": t2 - t1, "grids": grids}))
"""


def fresh(args: list[str], env: dict[str, str]) -> tuple[float, str]:
    start = time.perf_counter()
    out = subprocess.run([sys.executable, *args], env=env, cwd=REPO, capture_output=True, text=True,
                         check=True).stdout
    return time.perf_counter() - start, out


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "GM_RUNS_DIR": str(Path(tmp) / "runs"), "GM_CACHE_DIR": str(Path(tmp) / "cache"),
               "HF_HUB_OFFLINE": "1"}
        env.pop("GM_PRETRAINED_DIR", None)
        ref, total, render, grids = [], [], [], 0
        for _ in range(args.repeats):
            ref.append(fresh(["-c", "import streamlit, torch"], env)[0])
            wall, out = fresh(["-c", CHILD, str(REPO / "app.py")], env)
            row = json.loads(out.strip().splitlines()[-1])
            total.append(wall)
            render.append(row["render_s"])
            grids = row["grids"]
    med = statistics.median
    print(f"fresh process -> Home rendered with {grids} pretrained grids: {med(total):.2f} s "
          f"(render alone {med(render):.2f} s)")
    print(f"reference, fresh `import streamlit, torch`: {med(ref):.2f} s; ratio {med(total) / med(ref):.2f}x")


if __name__ == "__main__":
    main()

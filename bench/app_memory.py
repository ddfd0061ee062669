"""Peak memory of the app's server process while it trains: is the lab well inside a 16 GB box?

    GM_DATA_DIR=/work/shared/data python -m bench.app_memory [--models vae,ssgan] [--seconds 90]

Method: for each model, a fresh ``streamlit run app.py`` (headless, a free port, an empty runs
folder, as tests/test_browser.py starts it) is driven by headless Chromium through Playwright the
way a user drives it: Home (the shipped pretrained grids), Train (pick the model, defaults, 1000
steps, *Start training*: the app's own JobManager trains it in a thread of the server process),
Monitor while it trains (live charts polling every 1.5 s) for ``--seconds``, Home, then Stop
(a checkpoint) and Explore and Evaluate on the stopped run (its model loaded for sampling). A sampler thread reads the server's ``/proc/<pid>/status`` every 0.25 s: VmRSS
per phase and, at the end, VmHWM (the kernel's peak resident set of the process). Everything the
app does (Streamlit, torch, the dataset, the model and optimizer, the charts) is in that process;
the browser is not counted.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from bench.harness import serve

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def proc_status_kb(pid: int, key: str) -> int:
    """A kB field of /proc/<pid>/status (VmRSS, VmHWM); 0 once the process is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        pass
    return 0


class Sampler(threading.Thread):
    """Reads the server's VmRSS every `period` seconds and keeps the peak per phase."""

    def __init__(self, pid: int, period: float = 0.25) -> None:
        super().__init__(daemon=True)
        self.pid, self.period = pid, period
        self.phase = "start-up"
        self.peaks: dict[str, int] = {}
        self.hwm = 0
        self._done = threading.Event()

    def run(self) -> None:
        while not self._done.is_set():
            rss = proc_status_kb(self.pid, "VmRSS")
            self.hwm = max(self.hwm, proc_status_kb(self.pid, "VmHWM"))
            self.peaks[self.phase] = max(self.peaks.get(self.phase, 0), rss)
            self._done.wait(self.period)

    def stop(self) -> None:
        self._done.set()
        self.join()


def start_server(runs: Path) -> tuple[subprocess.Popen, str]:
    return serve("app.py", {**os.environ, "GM_RUNS_DIR": str(runs), "STREAMLIT_BROWSER_GATHER_USAGE_STATS": "false"},
                 timeout=180)


def _settle(page) -> None:
    page.wait_for_selector("[data-testid='stApp'][data-test-script-state='notRunning']", timeout=300_000)


def _goto(page, url: str, path: str) -> None:
    page.goto(f"{url}/{path}")
    page.wait_for_selector("[data-testid='stApp']")
    _settle(page)


def drive(page, url: str, model: str, seconds: float, sampler: Sampler) -> None:
    sampler.phase = "home"
    _goto(page, url, "")
    sampler.phase = "train page"
    _goto(page, url, "train")
    if model != "vae":  # the form opens on the first model
        page.get_by_role("combobox", name="Model").click()
        page.get_by_role("option", name=re.compile(rf"^{re.escape(model)} —")).click()
        _settle(page)
    page.get_by_label("Run name (optional)", exact=True).and_(page.locator("input")).fill(f"mem-{model}")
    sampler.phase = "training: start (dataset, trainer)"
    page.get_by_role("button", name="Start training").click()
    page.wait_for_selector(f"text=mem-{model}", timeout=300_000)
    _settle(page)
    sampler.phase = "training: Monitor page polling"
    _goto(page, url, "monitor")
    page.wait_for_timeout(seconds * 1000)
    sampler.phase = "training: Home page"
    _goto(page, url, "")
    page.wait_for_timeout(3000)
    sampler.phase = "stop (checkpoint)"
    _goto(page, url, "train")
    page.get_by_role("button", name="Stop").first.click()
    page.wait_for_timeout(5000)
    _settle(page)
    for name in ("explore", "evaluate"):   # the stopped run's checkpoint, loaded for sampling
        sampler.phase = f"after: {name.capitalize()} page"
        _goto(page, url, name)
        page.wait_for_timeout(5000)


def measure(model: str, seconds: float) -> tuple[Sampler, float, dict]:
    from playwright.sync_api import sync_playwright
    with tempfile.TemporaryDirectory(prefix="gm-app-memory-") as tmp:
        state: dict = {}
        proc, url = start_server(Path(tmp))
        sampler = Sampler(proc.pid)
        sampler.start()
        start = time.monotonic()
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
                page = browser.new_page(viewport={"width": 1400, "height": 1000})
                page.set_default_timeout(300_000)
                drive(page, url, model, seconds, sampler)
                browser.close()
            sampler.hwm = max(sampler.hwm, proc_status_kb(proc.pid, "VmHWM"))
            state = json.loads((Path(tmp) / f"mem-{model}" / "state.json").read_text())
        finally:
            sampler.stop()
            proc.terminate()
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
        return sampler, time.monotonic() - start, state


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.app_memory", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", default="vae,ssgan", help="one fresh server per model")
    p.add_argument("--seconds", type=float, default=90, help="time on the Monitor page while training")
    args = p.parse_args(argv)
    if not Path(CHROMIUM).exists():
        raise SystemExit("Chromium is needed to drive the app (apt-get install chromium).")
    rows = []
    for model in [m.strip() for m in args.models.split(",") if m.strip()]:
        sampler, wall, state = measure(model, args.seconds)
        print(f"{model}: peak RSS (VmHWM) {sampler.hwm / 1024:.0f} MiB over {wall:.0f} s; the run trained "
              f"{state.get('step')} steps and is {state.get('status')}", flush=True)
        for phase, kb in sampler.peaks.items():
            print(f"    {phase:<40} {kb / 1024:7.0f} MiB", flush=True)
        rows.append((model, sampler))
    print("\n| model trained | peak RSS of the app (VmHWM) | " +
          " | ".join(f"{ph}" for ph in rows[0][1].peaks) + " |")
    print("| --- | --- |" + " --- |" * len(rows[0][1].peaks))
    for model, s in rows:
        print(f"| `{model}` | {s.hwm / 1024:.0f} MiB | " +
              " | ".join(f"{s.peaks.get(ph, 0) / 1024:.0f}" for ph in rows[0][1].peaks) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""What a visitor waits for in a real browser, beside the floor: a bare Streamlit page (issue 20).

    GM_DATA_DIR=/work/shared/data OMP_NUM_THREADS=1 python -m bench.browser_latency [--moves 40]

Starts three servers on this machine: the app (shipped pretrained runs, an empty runs folder) and
bench/floor_app.py (one slider, one st.image, nothing else) twice, with the app's
.streamlit/config.toml and with Streamlit's default post-run garbage collection, and drives Debian's chromium through
Playwright:

- slider -> new image: a latent slider on Explore (the beta-VAE's decoder, the DCGAN's generator)
  and the floor's slider, each moved by one key press `--moves` times; the time runs in the page,
  from the keydown to the moment the new image has loaded and decoded (a MutationObserver);
- page switch: a click on a sidebar link until the new page's script run has finished;
- Home's first load: a fresh browser context, from navigation start until Home's script run has
  finished and every image on it (the model cards' grids) has loaded; the floor's the same way;
- Start -> first chart point: the Train form's Start (the default model and settings), then the
  Monitor link of the new job, until Monitor's first chart has a point.

Prints a table (p50 / p95 / max in ms) and the JSON of every figure. Measure on an idle machine:
every figure is a round trip through a Python server sharing these 2 cores with the browser.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from bench.harness import REPO, serve

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"]
DONE = "[data-testid='stApp'][data-test-script-state='notRunning']"

# In the page: remember each keydown; arm(i) waits for image i's src to change and the new picture to
# decode, then stores the time. Both clocks are the page's performance.now().
PROBE = """
() => {
  if (window.__probe) return;
  window.__probe = {key: 0, done: null};
  document.addEventListener('keydown', () => { window.__probe.key = performance.now(); }, true);
  window.__arm = (selector, index) => {
    const image = () => document.querySelectorAll(selector)[index];
    const before = image() ? image().src : null;
    window.__probe.done = null;
    const check = () => {
      const img = image();
      if (!img || img.src === before || window.__probe.done !== null) return false;
      observer.disconnect();
      img.decode().catch(() => {}).then(() => { window.__probe.done = performance.now(); });
      return true;
    };
    const observer = new MutationObserver(check);
    observer.observe(document.body, {subtree: true, childList: true, attributes: true, attributeFilter: ['src']});
  };
}
"""


def summary(ms: list[float]) -> dict[str, float]:
    ordered = sorted(ms)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return {"n": len(ms), "p50": round(statistics.median(ms), 1), "p95": round(p95, 1), "max": round(ordered[-1], 1)}


def settle(page) -> None:
    page.wait_for_selector(DONE, timeout=180_000)


def slider_moves(page, image_selector: str, image_index: int, moves: int, slider_index: int = 0) -> list[float]:
    """Latency of `moves` one-step key presses on a slider, each until its image changed."""
    page.evaluate(PROBE)
    thumb = page.locator("[data-testid='stSlider'] input[type='range'], [data-testid='stSlider'] [role='slider']").nth(slider_index)
    thumb.focus()
    times = []
    for i in range(moves):
        page.evaluate("([s, i]) => window.__arm(s, i)", [image_selector, image_index])
        thumb.press("ArrowRight" if (i // 10) % 2 == 0 else "ArrowLeft")   # back and forth, inside the range
        page.wait_for_function("window.__probe.done !== null", timeout=30_000)
        times.append(page.evaluate("window.__probe.done - window.__probe.key"))
        settle(page)
        page.wait_for_timeout(150)
    return times


def pick_run(page, name: str) -> None:
    box = page.locator("[data-testid='stSidebar'] [data-testid='stSelectbox']").first
    box.click()
    page.keyboard.type(name)
    page.keyboard.press("Enter")
    page.wait_for_timeout(300)
    settle(page)


def first_load(browser, url: str, ready: str) -> float:
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.goto(url)
    page.wait_for_selector(ready, timeout=120_000)
    settle(page)
    page.wait_for_function("[...document.images].every(i => i.complete)", timeout=60_000)
    ms = page.evaluate("performance.now()")
    context.close()
    return ms


def page_switches(page, url: str, rounds: int) -> dict[str, list[float]]:
    """Time of each sidebar link click until the new page's script run has finished, per page."""
    times: dict[str, list[float]] = {}
    for _ in range(rounds):
        for name, title in (("Monitor", "Monitor"), ("Explore", "Explore"), ("Compare", "Compare runs"),
                            ("Train", "Train"), ("Home", None)):
            link = page.locator("[data-testid='stSidebar'] a", has_text=name).first
            start = time.perf_counter()
            link.click()
            if title:
                page.wait_for_selector(f"h1:has-text('{title}')", timeout=60_000)
            page.wait_for_timeout(30)
            settle(page)
            times.setdefault(name, []).append((time.perf_counter() - start) * 1000)
    return times


def start_to_first_point(page, url: str) -> float:
    page.goto(f"{url}/train")
    settle(page)
    page.get_by_role("textbox", name="Run name").fill("latency-run")
    start = time.perf_counter()
    page.get_by_role("button", name="Start training").click()
    page.get_by_role("button", name="Monitor").first.click(timeout=60_000)
    page.wait_for_function(
        "() => { const p = document.querySelector('.js-plotly-plot');"
        " return p && p._fullData && p._fullData.some(t => (t._length || 0) > 0); }", timeout=120_000)
    took = (time.perf_counter() - start) * 1000
    page.get_by_role("button", name="Stop").first.click()
    return took


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.browser_latency", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--moves", type=int, default=40, help="slider key presses per slider")
    p.add_argument("--switch-rounds", type=int, default=3, help="rounds of four page switches")
    p.add_argument("--loads", type=int, default=6, help="first loads of Home and of the floor, in turns")
    p.add_argument("--json", type=Path, help="also write the figures here")
    args = p.parse_args(argv)
    from playwright.sync_api import sync_playwright

    runs = Path(tempfile.mkdtemp(prefix="gm-latency-"))
    env = {**os.environ, "GM_RUNS_DIR": str(runs), "STREAMLIT_BROWSER_GATHER_USAGE_STATS": "false",
           "GM_PRETRAINED_DIR": str(REPO / "checkpoints" / "pretrained")}
    app, app_url = serve("app.py", env)
    floor, floor_url = serve("bench/floor_app.py", env)   # with the app's .streamlit/config.toml
    # and with Streamlit's defaults: a gc.collect(2) after every script run (gm turns it off)
    bare, bare_url = serve("bench/floor_app.py", env, "--runner.postScriptGC", "true")
    figures: dict[str, dict[str, float]] = {}
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
            # warm both servers (imports, caches): a visitor after the first one sees these
            first_load(browser, app_url, "h1")
            first_load(browser, floor_url, "[data-testid='stImage'] img")
            floor_loads, home_loads = [], []
            for _ in range(args.loads):   # taken in turns, so both see the same machine
                floor_loads.append(first_load(browser, floor_url, "[data-testid='stImage'] img"))
                home_loads.append(first_load(browser, app_url, ".gm-card img"))
            figures["first load: floor"] = summary(floor_loads)
            figures["first load: Home"] = summary(home_loads)
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(floor_url)
            settle(page)
            figures["slider -> image: floor"] = summary(slider_moves(page, "[data-testid='stImage'] img", 0, args.moves))
            page.goto(bare_url)
            settle(page)
            figures["slider -> image: floor, Streamlit defaults"] = summary(
                slider_moves(page, "[data-testid='stImage'] img", 0, args.moves))
            page.goto(f"{app_url}/explore")
            settle(page)
            pick_run(page, "betavae")
            page.wait_for_selector("[data-testid='stSlider']")
            figures["slider -> image: VAE (beta-VAE, 64x64)"] = summary(
                slider_moves(page, "[data-testid='stImage'] img", 1, args.moves))
            pick_run(page, "dcgan")
            page.wait_for_selector("[data-testid='stSlider']")
            figures["slider -> image: GAN (DCGAN, 28x28)"] = summary(
                slider_moves(page, "[data-testid='stImage'] img", 0, args.moves))
            switches = page_switches(page, app_url, args.switch_rounds)
            figures["page switch (all)"] = summary([ms for each in switches.values() for ms in each])
            for name, each in switches.items():
                figures[f"page switch: {name}"] = summary(each)
            figures["Start -> first chart point"] = summary([start_to_first_point(page, app_url)])
            browser.close()
    finally:
        for proc in (app, floor, bare):
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
        shutil.rmtree(runs, ignore_errors=True)
    print(f"{'what':42s} {'n':>3s} {'p50 ms':>8s} {'p95 ms':>8s} {'max ms':>8s}")
    for what, f in figures.items():
        print(f"{what:42s} {f['n']:3d} {f['p50']:8.1f} {f['p95']:8.1f} {f['max']:8.1f}")
    print(json.dumps(figures))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

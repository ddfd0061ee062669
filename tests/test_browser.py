"""End to end in a real headless browser: start the app, train from the Train page, watch the
Monitor chart gain points, move a latent slider on Explore and see the image change.

Runs when Debian's chromium and Playwright are installed (.ci/run installs chromium); skipped with
the reason otherwise. Screenshots of every page land in test-artifacts/.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.browser

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = REPO / "test-artifacts"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_server(runs: Path) -> tuple[subprocess.Popen, str]:
    """`streamlit run app.py` on a free port with `runs` as the runs folder, once healthy."""
    port = _free_port()
    env = {**os.environ, "GM_RUNS_DIR": str(runs), "STREAMLIT_BROWSER_GATHER_USAGE_STATS": "false",
           "GM_PRETRAINED_DIR": str(REPO / "checkpoints" / "pretrained")}
    proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true",
                             "--server.port", str(port), "--server.address", "127.0.0.1"],
                            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).read() == b"ok":
                return proc, url
        except OSError:
            time.sleep(0.5)
    proc.kill()
    pytest.fail("streamlit did not report healthy within 120 s")


def _stop_server(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()


def _need_browser() -> None:
    if not Path(CHROMIUM).exists():
        pytest.skip("browser test: Debian's chromium is not installed (apt-get install chromium)")
    pytest.importorskip("playwright.sync_api", reason="browser test: playwright is not installed")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    _need_browser()
    proc, url = _start_server(tmp_path_factory.mktemp("browser-runs"))
    yield url
    _stop_server(proc)


@pytest.fixture(scope="module")
def page(server):
    from playwright.sync_api import sync_playwright
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        pg = browser.new_page(viewport={"width": 1400, "height": 1000})
        pg.set_default_timeout(120_000)
        yield pg
        browser.close()


def _settle(page) -> None:
    page.wait_for_selector("[data-testid='stApp'][data-test-script-state='notRunning']", timeout=180_000)


def _goto(page, server: str, path: str) -> None:
    page.goto(f"{server}/{path}")
    page.wait_for_selector("[data-testid='stApp']")
    _settle(page)


def _points(page) -> int:
    # Plotly ships numpy arrays base64-packed; _fullData holds the decoded traces and their length.
    return page.evaluate("() => { const p = document.querySelector('.js-plotly-plot');"
                         " if (!p || !p._fullData) return 0;"
                         " return Math.max(0, ...p._fullData.map(t => t._length || 0)); }")


def test_train_monitor_explore(server, page):
    _goto(page, server, "")
    page.screenshot(path=str(ARTIFACTS / "home.png"), full_page=True)

    _goto(page, server, "train")
    def field(label: str):
        return page.get_by_label(label, exact=True).and_(page.locator("input"))

    def setting(name: str):   # a config field, by its widget key: its label is in words
        return page.locator(f".st-key-cfg-vae-{name} input")

    field("Run name (optional)").fill("browser-run")
    setting("width").fill("0.25")  # small and quick: the point is the plumbing, not the model
    page.get_by_text("Batching, logging and checkpoints").click()
    setting("log_every").fill("2")
    setting("batch_size").fill("16")
    setting("checkpoint_every").fill("20")  # Explore samples from the latest checkpoint
    page.get_by_role("button", name="Start training").click()
    page.wait_for_selector("text=browser-run")
    _settle(page)
    page.screenshot(path=str(ARTIFACTS / "train.png"), full_page=True)

    _goto(page, server, "monitor")
    page.wait_for_selector(".js-plotly-plot", timeout=180_000)
    first = _points(page)
    deadline = time.monotonic() + 120
    while _points(page) <= first and time.monotonic() < deadline:
        page.wait_for_timeout(1000)  # the fragment polls every 1.5 s while the run trains
    assert _points(page) > first, "the Monitor chart gained no points while training"
    page.screenshot(path=str(ARTIFACTS / "monitor.png"), full_page=True)

    _goto(page, server, "explore")
    src = lambda: page.locator("[data-testid='stImage'] img").nth(1).get_attribute("src")  # noqa: E731
    page.wait_for_selector("[data-testid='stImage'] img", state="attached")
    before = src()
    thumb = page.locator("[data-testid='stSlider'] input[type='range']").first
    thumb.focus()
    for _ in range(20):
        thumb.press("ArrowRight")
    deadline = time.monotonic() + 60
    while src() == before and time.monotonic() < deadline:
        page.wait_for_timeout(500)
    assert src() != before, "moving a latent slider did not change the decoded image"
    page.screenshot(path=str(ARTIFACTS / "explore.png"), full_page=True)

    for name in ("evaluate", "compare"):
        _goto(page, server, name)
        page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)

    # Streamlit follows the system theme: the same page in dark mode.
    page.emulate_media(color_scheme="dark")
    _goto(page, server, "monitor")
    page.wait_for_selector(".js-plotly-plot")
    page.screenshot(path=str(ARTIFACTS / "monitor-dark.png"), full_page=True)
    page.emulate_media(color_scheme="light")

    _goto(page, server, "train")
    stop = page.get_by_role("button", name="Stop")
    if stop.count():
        stop.first.click()
        _settle(page)


def _tall(page, height: int = 5000) -> None:
    # Streamlit scrolls inside its main container, so a full-page screenshot needs a tall viewport.
    page.set_viewport_size({"width": 1400, "height": height})


def test_monitor_redraws_the_sidebar_when_the_job_it_shows_ends(server, page):
    """Monitor's charts poll in a fragment; the sidebar's run label (with its status) is drawn by
    the page. When the job ends the page reruns once, so the label does not keep saying "running"."""
    _goto(page, server, "train")
    page.get_by_label("Run name (optional)", exact=True).and_(page.locator("input")).fill("short-job")
    page.locator(".st-key-cfg-vae-width input").fill("0.25")
    page.get_by_text("Batching, logging and checkpoints").click()
    page.locator(".st-key-cfg-vae-batch_size input").fill("16")
    page.locator(".st-key-train-length-steps input").fill("400")
    page.get_by_role("button", name="Start training").click()
    page.wait_for_selector("text=short-job")
    _settle(page)
    page.locator("[data-testid='stSidebar'] a", has_text="Monitor").click()
    _settle(page)
    picker = page.locator("[data-testid='stSidebar'] [data-testid='stSelectbox'] input").first
    assert picker.input_value() == "short-job · vae · running"
    deadline = time.monotonic() + 300
    while "running" in picker.input_value() and time.monotonic() < deadline:
        page.wait_for_timeout(500)
    assert picker.input_value() == "short-job · vae · finished"
    assert page.get_by_text("finished · step 400/400").count() == 1


def test_walkthrough_in_both_languages_and_its_offline_report(server, page, tmp_path):
    if not (REPO / "checkpoints" / "pretrained" / "controlvae-kl14" / "config.json").is_file():
        pytest.skip("the walkthrough screenshots need the shipped pretrained runs")
    _tall(page)
    _goto(page, server, "walkthrough?step=controlvae&lang=en")
    page.wait_for_selector(".js-plotly-plot", timeout=180_000)
    assert page.locator(".js-plotly-plot").count() >= 3
    page.screenshot(path=str(ARTIFACTS / "walkthrough-en.png"))

    page.get_by_role("radio", name="فارسی").click()   # the sidebar's language switch
    _settle(page)
    page.wait_for_selector("text=نقطه‌های تنظیم", timeout=180_000)
    heading = page.locator("[data-testid='stMain'] h2").first
    assert heading.evaluate("h => getComputedStyle(h.closest('[data-testid=\"stHeading\"]')).direction") == "rtl"
    latex = page.locator("[data-testid='stMain'] .katex").first
    assert latex.evaluate("k => getComputedStyle(k).direction") == "ltr"   # maths stays left to right
    page.wait_for_timeout(1000)
    page.screenshot(path=str(ARTIFACTS / "walkthrough-fa.png"))

    _goto(page, server, "walkthrough?step=gan&lang=fa")
    page.wait_for_selector(".js-plotly-plot", timeout=180_000)
    page.wait_for_timeout(1000)
    page.screenshot(path=str(ARTIFACTS / "walkthrough-fa-gan.png"))

    page.get_by_role("button", name="آماده‌سازی خروجی").click()
    page.wait_for_selector("text=دریافت گزارش HTML", timeout=300_000)
    with page.expect_download() as download:
        page.get_by_role("button", name="دریافت گزارش HTML").click()
    report = tmp_path / "walkthrough-fa.html"
    download.value.save_as(report)

    offline = page.context.browser.new_page(viewport={"width": 1200, "height": 3000})
    fetched = []

    def block(route):   # the report must not need the network
        fetched.append(route.request.url)
        route.abort()
    offline.route("http*://**", block)
    offline.goto(report.as_uri())
    offline.wait_for_selector(".js-plotly-plot svg.main-svg", timeout=60_000)
    assert offline.locator(".js-plotly-plot").count() >= 15
    assert offline.locator("html").get_attribute("dir") == "rtl"
    assert offline.locator("figure img").count() >= 8 and offline.locator(".eq svg").count() >= 15
    assert not fetched, fetched[:3]
    offline.evaluate("document.getElementById('controlvae').scrollIntoView()")
    offline.screenshot(path=str(ARTIFACTS / "report-fa.png"))
    offline.close()
    page.set_viewport_size({"width": 1400, "height": 1000})


def test_translation_run_in_explore_monitor_and_evaluate(server, page):
    """The shipped StarGAN picked in the sidebar: Explore translates a sprite (with its cycle and true
    counterpart), Monitor charts its losses by kind, Evaluate measures it per domain pair."""
    if not (REPO / "checkpoints" / "pretrained" / "stargan" / "config.json").is_file():
        pytest.skip("the shipped StarGAN is not in this checkout")
    _tall(page, 3000)
    _goto(page, server, "explore")
    page.locator("[data-testid='stSidebar'] [data-testid='stSelectbox']").first.click()
    page.get_by_role("option", name="pretrained · stargan").click()
    _settle(page)
    page.wait_for_selector("text=Explore the translations")
    page.wait_for_selector("text=true ellipse", timeout=120_000)
    captions = page.locator("[data-testid='stImageCaption']").all_inner_texts()
    assert any(c.startswith("back → square") for c in captions), captions
    page.screenshot(path=str(ARTIFACTS / "explore-translate.png"))

    # Through the sidebar's links: a fresh page load would start a new session with the default run.
    page.locator("[data-testid='stSidebar'] a", has_text="Monitor").click()
    _settle(page)
    page.wait_for_selector("text=Domain classification", timeout=120_000)
    page.wait_for_selector(".js-plotly-plot", timeout=120_000)
    deadline = time.monotonic() + 60
    while page.locator(".js-plotly-plot").count() < 4 and time.monotonic() < deadline:
        page.wait_for_timeout(500)   # plotly draws its charts after the page script has finished
    assert page.locator(".js-plotly-plot").count() >= 4
    page.screenshot(path=str(ARTIFACTS / "monitor-translate.png"))

    page.locator("[data-testid='stSidebar'] a", has_text="Evaluate").click()
    _settle(page)
    page.wait_for_selector("text=Source images per pair", timeout=120_000)
    page.get_by_role("slider").first.focus()
    for _ in range(8):   # fewer images per pair: a quick measurement
        page.keyboard.press("ArrowLeft")
    _settle(page)
    page.get_by_role("button", name="Evaluate").click()
    page.wait_for_selector("text=Latest evaluation", timeout=300_000)   # this session's, not a record
    assert page.get_by_text("100 images per pair").count() >= 1
    assert page.get_by_text("Per domain pair").count() == 1 and page.get_by_text("heart → square").count() >= 1
    page.screenshot(path=str(ARTIFACTS / "evaluate-translate.png"))


@pytest.mark.parametrize("lang, width", [pytest.param("en", 1400, marks=pytest.mark.slow), ("fa", 1400), ("en", 420)])
def test_home_gallery_draws_every_models_card_and_grid(server, page, lang, width):
    """Home's gallery is one HTML block (pages/_cards.py): every registered model has a card, every
    shipped grid decodes, no card runs out of the page at a desktop or a phone's width, and in
    Persian the cards read right to left."""
    from gm.registry import MODELS
    tab = page.context.browser.new_page(viewport={"width": width, "height": 900})
    try:
        _goto(tab, server, f"?lang={lang}")
        tab.wait_for_selector(".gm-card img")
        tab.wait_for_function("[...document.querySelectorAll('.gm-card img')].every(i => i.complete)")
        cards = tab.evaluate("""() => [...document.querySelectorAll('.gm-card')].map(c => {
            const r = c.getBoundingClientRect(), img = c.querySelector('img');
            return {model: c.dataset.model, left: r.left, right: r.right,
                    decoded: img ? img.naturalWidth > 0 : null, drawn: img ? img.getBoundingClientRect().width : 0}; })""")
        gallery = tab.evaluate("""() => { const g = document.querySelector('.gm-cards'), r = g.getBoundingClientRect();
            return {left: r.left, right: r.right, direction: getComputedStyle(g).direction,
                    page: document.documentElement.clientWidth}; }""")
        tab.locator(".gm-cards").scroll_into_view_if_needed()
        tab.screenshot(path=str(ARTIFACTS / f"home-gallery-{lang}-{width}.png"))
    finally:
        tab.close()
    assert [c["model"] for c in cards] == list(MODELS)
    assert all(c["decoded"] in (True, None) for c in cards), cards
    assert sum(c["decoded"] is True for c in cards) >= 9   # the shipped runs' grids
    assert all(gallery["left"] - 1 <= c["left"] and c["right"] <= gallery["right"] + 1 for c in cards), (gallery, cards)
    assert gallery["right"] <= gallery["page"] and all(c["drawn"] > 100 for c in cards if c["decoded"])
    assert gallery["direction"] == ("rtl" if lang == "fa" else "ltr")


def test_first_load_of_a_fresh_server_never_lists_the_page_files(page, tmp_path):
    """Before the first st.navigation call of a server, Streamlit's own menu listed pages/ as files
    (_forms, _ui, compare, ...) for about a second; the app draws its own menu instead."""
    menu = ("Home", "Walkthrough", "Train", "Monitor", "Explore", "Evaluate", "Compare", "Playground")
    proc, url = _start_server(tmp_path)   # a server no session has visited yet
    fresh = page.context.browser.new_page(viewport={"width": 1200, "height": 800})
    try:
        fresh.goto(url)
        seen: set[tuple[str, ...]] = set()
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:   # until the menu is drawn and the first run has ended
            settled = fresh.locator("[data-testid='stApp'][data-test-script-state='notRunning']").count()
            links = fresh.locator("[data-testid='stSidebar'] a").all_inner_texts()
            seen.add(tuple(" ".join(text.split()[-1:]) for text in links))
            if settled and menu in seen:
                break
            fresh.wait_for_timeout(20)
        fresh.screenshot(path=str(ARTIFACTS / "first-load.png"))
    finally:
        fresh.close()
        _stop_server(proc)
    assert seen - {(), menu} == set(), f"the sidebar showed other links on the first load: {seen}"
    assert menu in seen


def test_playground_trains_live_pauses_and_steps(server, page):
    """The 2-D playground: Train makes the step count and the picture move while the page polls,
    Pause holds it, Step adds exactly one step."""
    _goto(page, server, "playground")
    page.get_by_role("button", name="Train").click()
    metric = page.locator("[data-testid='stMetric']").filter(has_text="Step").locator("[data-testid='stMetricValue']")

    def step() -> int:
        return int(metric.inner_text().replace(",", "") or 0)

    picture = page.locator("[data-testid='stImage'] img").first
    before = picture.get_attribute("src")
    deadline = time.monotonic() + 90
    while step() < 30 and time.monotonic() < deadline:
        page.wait_for_timeout(300)
    assert step() >= 30, "the playground did not train"
    assert picture.get_attribute("src") != before, "the picture did not move while training"
    page.get_by_role("button", name="Pause").click()
    _settle(page)
    page.wait_for_timeout(800)
    held = step()
    page.wait_for_timeout(1500)
    assert step() == held, "the playground kept training after Pause"
    page.get_by_role("button", name="Step").click()
    _settle(page)
    deadline = time.monotonic() + 30
    while step() != held + 1 and time.monotonic() < deadline:
        page.wait_for_timeout(200)
    assert step() == held + 1
    page.screenshot(path=str(ARTIFACTS / "playground.png"), full_page=True)


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, all its threads (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_a_playground_nobody_looks_at_stops_training(page, tmp_path):
    """A visitor who opens another page, or closes the tab, while the playground trains leaves no
    CPU busy on the server: the runner sees its page gone and pauses within a few seconds; coming
    back shows it paused where it stopped."""
    if not Path("/proc/self/stat").exists():
        pytest.skip("reads the server's CPU time from /proc")
    proc, url = _start_server(tmp_path)
    tab = page.context.browser.new_page(viewport={"width": 1200, "height": 900})

    def cpu_over(seconds: float) -> float:
        start = _cpu_seconds(proc.pid)
        time.sleep(seconds)
        return _cpu_seconds(proc.pid) - start

    def quiet_within(seconds: float) -> float:
        """CPU seconds of the server over 2 s, once a 1 s window was idle (or `seconds` passed)."""
        deadline = time.monotonic() + seconds
        while cpu_over(1.0) > 0.15 and time.monotonic() < deadline:
            pass
        return cpu_over(2.0)

    try:
        _goto(tab, url, "playground")
        tab.get_by_role("button", name="Train").click()
        tab.get_by_role("button", name="Pause").wait_for()
        tab.wait_for_timeout(1000)
        training = cpu_over(2)
        tab.locator("[data-testid='stSidebar'] a", has_text="Home").click()   # another page, same tab
        _settle(tab)
        elsewhere = quiet_within(10)   # unseen for 3 s, then the runner's next check
        tab.locator("[data-testid='stSidebar'] a", has_text="Playground").click()
        _settle(tab)
        tab.get_by_role("button", name="Train").wait_for()   # paused, not reset
        assert tab.get_by_role("button", name="Pause").count() == 0
        tab.get_by_role("button", name="Train").click()
        tab.get_by_role("button", name="Pause").wait_for()
        tab.wait_for_timeout(1000)
        tab.close()
        closed = quiet_within(10)   # the runner checks once a second; the server notices the closed socket
    finally:
        if not tab.is_closed():
            tab.close()
        _stop_server(proc)
    assert training > 0.8, f"the playground did not keep a core busy while shown ({training:.2f} s in 2 s)"
    assert elsewhere < 0.4, f"the server kept training while another page was open ({elsewhere:.2f} s of CPU in 2 s)"
    assert closed < 0.4, f"the server kept training after the tab closed ({closed:.2f} s of CPU in 2 s)"

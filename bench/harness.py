"""Side-by-side timing: run a reference and gm in the same process, interleaved, and report ratios.

These machines are noisy (shared cores, other jobs), so absolute times are context only; what a
benchmark claims is a ratio of medians, with both sides measured under the same load. Each repeat
runs every variant once, in an order that rotates between repeats, so a drift in load hits every
variant alike.

    from bench.harness import Variant, compare
    result = compare([Variant("reference", run_ref), Variant("gm", run_gm)], repeats=5)
    print(result.table(unit="img/s"))
    result.ratio("gm", "reference")

A variant's function returns the figure to compare (images/s, higher is better, by default) or a
dict with "value" plus anything to report beside it.
"""

from __future__ import annotations

import json
import os
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


@dataclass
class Variant:
    name: str
    run: Callable[[], float | dict[str, Any]]
    warmup: int = 1          # untimed calls before the first repeat (allocator, oneDNN, caches)
    warmup_run: Callable[[], Any] | None = None   # what a warm-up call runs instead of `run` (a shorter job)


@dataclass
class Comparison:
    values: dict[str, list[float]] = field(default_factory=dict)
    extras: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    higher_is_better: bool = True

    def median(self, name: str) -> float:
        return statistics.median(self.values[name])

    def ratio(self, name: str, reference: str) -> float:
        """median(name) / median(reference), oriented so that > 1 means `name` is better."""
        a, b = self.median(name), self.median(reference)
        return a / b if self.higher_is_better else b / a

    def table(self, unit: str = "", reference: str | None = None) -> str:
        names = list(self.values)
        reference = reference or names[0]
        lines = [f"| variant | median {unit} | min - max | ratio vs {reference} |", "| --- | --- | --- | --- |"]
        for name in names:
            vals = self.values[name]
            lines.append(f"| {name} | {self.median(name):.4g} | {min(vals):.4g} - {max(vals):.4g} | "
                         f"{self.ratio(name, reference):.3f} |")
        return "\n".join(lines)

    def to_json(self) -> str:
        return json.dumps({"values": self.values, "extras": self.extras,
                           "medians": {k: self.median(k) for k in self.values}})


def compare(variants: list[Variant], repeats: int = 5, *, higher_is_better: bool = True,
            log: Callable[[str], None] | None = None) -> Comparison:
    """Run every variant `repeats` times, interleaved with a rotating order; collect their figures."""
    log = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
    result = Comparison(higher_is_better=higher_is_better)
    for v in variants:
        result.values[v.name], result.extras[v.name] = [], []
        for _ in range(v.warmup):
            (v.warmup_run or v.run)()
    for r in range(repeats):
        k = r % len(variants)
        for v in variants[k:] + variants[:k]:
            start = time.perf_counter()
            out = v.run()
            seconds = time.perf_counter() - start
            extra = dict(out) if isinstance(out, dict) else {"value": out}
            extra.setdefault("seconds", seconds)
            result.values[v.name].append(float(extra["value"]))
            result.extras[v.name].append(extra)
            log(f"repeat {r}  {v.name:<24} {extra['value']:.4g}  ({seconds:.2f} s)")
    return result


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(script: str, env: dict[str, str] | None = None, *options: str,
          timeout: float = 120) -> tuple[subprocess.Popen, str]:
    """`streamlit run <script>` from the repository on a free local port, once it reports healthy:
    (the process, its URL). Extra `options` go to streamlit (e.g. "--runner.postScriptGC", "true")."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", script, "--server.headless", "true",
                             "--server.port", str(port), "--server.address", "127.0.0.1",
                             "--browser.gatherUsageStats", "false", *options],
                            cwd=REPO, env=env if env is not None else dict(os.environ),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).read() == b"ok":
                return proc, url
        except OSError:
            time.sleep(0.3)
    proc.kill()
    raise SystemExit(f"{script} did not start within {timeout:.0f} s")

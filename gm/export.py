"""Exports: a run or the whole walkthrough as one HTML report, or as PNG figures + CSV/JSON numbers.

    python -m gm export RUN_DIR --out report.html          # one run: curves, grids, numbers, settings
    python -m gm export RUN_DIR --out run.zip              # the same as PNG files, CSV and JSON
    python -m gm export --walkthrough --out walkthrough.html --lang fa

The app's download buttons call the same functions (pages/monitor.py, pages/walkthrough.py).
A ZIP holds ``report.html`` (the same report), ``figures/*.png`` (charts drawn with matplotlib, see
gm.figures), ``grids/*.png`` (sample grids and other images), ``numbers.json`` and ``numbers.csv``
(every measured number shown), ``tables/*.csv`` (every table) and, for a run, its ``metrics.csv``.
"""

from __future__ import annotations

import csv
import datetime as _dt
import functools
import io
import json
import zipfile
from pathlib import Path
from typing import Any

from gm import __version__, i18n, plots, report
from gm.errors import GMError
from gm.runs.folder import RunFolder
from gm.walkthrough import blocks as b
from gm.walkthrough.blocks import Block

Built = list[tuple[str, list[Block]]]   # (section id, blocks) in order


# ---- walkthrough ------------------------------------------------------------------------------------
def build_walkthrough(lang: str, runs: dict[str, RunFolder | None] | None = None, *,
                      runs_dir: str | Path | None = None, device: str = "cpu") -> Built:
    """Every step's blocks for the given (default: pretrained / newest local) runs, outside the app."""
    from gm import walkthrough as wt
    from gm.data import load_dataset
    from gm.models.loading import load_model

    runs = runs if runs is not None else wt.default_runs(runs_dir)

    @functools.cache
    def model(path: str):
        return load_model(path, device)

    ctx = wt.Context(lang, runs, lambda run: model(str(run.path)), functools.cache(lambda name: load_dataset(name)))
    return [(step, wt.build(step, ctx)) for step in wt.steps_in_order()]


def walkthrough_html(built: Built, lang: str, *, interactive: bool = True) -> str:
    from gm.walkthrough import step_title
    sections = [(step, step_title(step, lang), blocks) for step, blocks in built]
    return report.document(i18n.t("walkthrough.page.title", lang), sections, lang,
                           subtitle=i18n.t("report.walkthrough_subtitle", lang), interactive=interactive)


def walkthrough_zip(built: Built, lang: str) -> bytes:
    return _zip(built, lang, walkthrough_html(built, lang))


# ---- one run ------------------------------------------------------------------------------------------
def run_blocks(run: RunFolder, lang: str) -> Built:
    """A run's report: its curves (as on Monitor), sample grids, evaluations and settings."""
    from gm.walkthrough import facts

    def t(key: str, **values: Any) -> str:
        return i18n.t(key, lang, **values)

    cfg = run.read_config()
    records = run.read_metrics()
    curves: list[Block] = []
    for title, keys, ref in plots.charts_for(records, lang):
        fig = plots.line_figure(records, keys, title=title, smoothing=0.6, reference=ref,
                                names=[t(f"metric.{k}") for k in keys], reference_name=t("metric.set_point"),
                                x_title=t("monitor.axis_step"))
        curves.append(b.chart(f"curve_{keys[0]}", fig))
    dims = next((r["kl_dims"] for r in reversed(records) if isinstance(r.get("kl_dims"), list)), None)
    if dims:
        curves.append(b.chart("kl_dims", plots.kl_dims_figure(dims, lang=lang)))
    if not curves:
        curves.append(b.note(t("report.no_metrics")))
    grids = [b.image(f"grid_step_{step}", path, t("report.grid_caption", step=step))
             for step, path in facts.stage_grids(run, k=3)] or [b.note(t("report.no_grids"))]
    measured = facts.evaluations(run)
    numbers = [b.Metric(name, i18n.measure(name, m.value, lang), t("walkthrough.common.fid_help", n=m.n or 0,
                                                                       step=m.step or 0), m.value)
               for name, m in sorted(measured.items())]
    numbers_blocks = [b.metrics("evaluations", numbers)] if numbers else [b.note(t("report.no_evaluations"))]
    values = cfg.get("config", {})
    setting, name, value = (t(f"walkthrough.common.col_{k}") for k in ("setting", "name", "value"))

    def label(key: str) -> str:   # the setting in words ([field]), or its name for one the catalog lacks
        text = t(f"field.{key}")
        return key if text == f"field.{key}" else text
    # In words beside the config name that `--set` and config.json use, as the walkthrough shows them.
    settings = [b.table("settings", [{setting: label(k), name: k, value: str(v)} for k, v in values.items()])]
    state = run.read_state()
    head = [b.markdown(t("report.run_summary", model=cfg.get("model", "?"), dataset=cfg.get("dataset", "?"),
                         step=int(state.get("step") or 0), status=t("status." + str(state.get("status"))),
                         created=str(cfg.get("created", "?"))))]
    return [("summary", head), ("curves", curves), ("samples", grids), ("numbers", numbers_blocks),
            ("settings", settings)]


def run_html(run: RunFolder, lang: str, *, interactive: bool = True, built: Built | None = None) -> str:
    built = built if built is not None else run_blocks(run, lang)
    sections = [(sid, i18n.t(f"report.section_{sid}", lang), blocks) for sid, blocks in built]
    # Not the run's path: a report is handed out, and the server's folders are nobody's business there.
    cfg = run.read_config()
    subtitle = i18n.t("report.run_subtitle", lang, model=cfg.get("model", "?"), dataset=cfg.get("dataset", "?"))
    return report.document(i18n.t("report.run_title", lang, name=run.name), sections, lang,
                           subtitle=subtitle, interactive=interactive)


def run_zip(run: RunFolder, lang: str, *, built: Built | None = None, html_text: str | None = None) -> bytes:
    built = built if built is not None else run_blocks(run, lang)
    html_text = html_text if html_text is not None else run_html(run, lang, built=built)
    return _zip(built, lang, html_text,
                extra={"metrics.csv": plots.records_to_csv(run.read_metrics()).encode(),
                       "eval.json": json.dumps(run.read_eval(), indent=1).encode()})


# ---- the bundle ------------------------------------------------------------------------------------------
def numbers_of(built: Built) -> list[dict[str, Any]]:
    """Every measured number shown (metric panels), one row each."""
    return [{"section": section, "key": block.key, "label": m.label, "value": m.raw, "text": m.value}
            for section, blocks in built for block in blocks if block.kind == "metrics" for m in block.metrics]


def _zip(built: Built, lang: str, html_text: str, extra: dict[str, bytes] | None = None) -> bytes:
    from gm.figures import figure_png
    buf = io.BytesIO()
    tables: dict[str, list[dict[str, Any]]] = {}
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("report.html", html_text)
        for section, blocks in built:
            for block in blocks:
                name = f"{section}--{block.key}".replace("/", "_").replace(".", "_")
                if block.kind in ("chart", "demo") and block.figure is not None:
                    zf.writestr(f"figures/{name}.png", figure_png(block.figure))
                elif block.kind == "image":
                    zf.writestr(f"grids/{name}.png", report.image_bytes(block.image))
                elif block.kind == "table" and block.rows:
                    tables[name] = block.rows
                    zf.writestr(f"tables/{name}.csv", _csv(block.rows))
        numbers = numbers_of(built)
        zf.writestr("numbers.csv", _csv(numbers) if numbers else "section,key,label,value,text\n")
        zf.writestr("numbers.json", json.dumps({
            "language": lang, "gm_version": __version__,
            "generated": _dt.datetime.now().isoformat(timespec="seconds"),
            "numbers": numbers, "tables": tables}, ensure_ascii=False, indent=1))
        for name, data in (extra or {}).items():
            zf.writestr(name, data)
    return buf.getvalue()


def _csv(rows: list[dict[str, Any]]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]), extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


# ---- command line -------------------------------------------------------------------------------------
def write(out: str | Path, *, run: str | Path | None = None, walkthrough: bool = False, lang: str = "en",
          static: bool = False, runs_dir: str | Path | None = None) -> Path:
    """Write a report (.html), a bundle (.zip) or both into a folder (any other path), and return it."""
    if (run is None) == (not walkthrough):
        raise GMError("Export either a run folder (RUN) or --walkthrough, not both or neither.")
    if lang not in i18n.LANGUAGES:
        raise GMError(f"Unknown language '{lang}'; choose one of {', '.join(i18n.LANGUAGES)}.")
    out = Path(out)
    if walkthrough:
        built = build_walkthrough(lang, runs_dir=runs_dir)
        html_text = walkthrough_html(built, lang, interactive=not static)
        stem = f"gm-walkthrough-{lang}"

        def bundle() -> bytes:
            return _zip(built, lang, html_text)
    else:
        folder = RunFolder.open(run)
        built = run_blocks(folder, lang)
        html_text = run_html(folder, lang, interactive=not static, built=built)
        stem = f"{folder.name}-{lang}"

        def bundle() -> bytes:
            return run_zip(folder, lang, built=built, html_text=html_text)
    try:
        if out.suffix.lower() == ".html":
            _write_atomic(out, html_text.encode())
        elif out.suffix.lower() == ".zip":
            _write_atomic(out, bundle())
        else:
            out.mkdir(parents=True, exist_ok=True)
            _write_atomic(out / f"{stem}.html", html_text.encode())
            _write_atomic(out / f"{stem}.zip", bundle())
    except OSError as exc:
        raise GMError(f"Cannot write the export to {out} ({exc.strerror or exc}); choose a writable --out.") from None
    return out


def _write_atomic(path: Path, data: bytes) -> None:
    from gm.runs.atomic import write_bytes_atomic
    path.parent.mkdir(parents=True, exist_ok=True)
    write_bytes_atomic(path, data)

"""The classroom walkthrough of the assignment (SPEC.md), in English and Persian.

Seven steps follow the assignment — (1) dSprites and the VAE, (2) the VAE's losses, grid and FID,
(3) ControlVAE at KL 8 and 14, (4) the PixelShuffle GAN, (5) WGAN, (6) SSGAN, (7) every model
compared — then short sections on DCGAN tricks, ACGAN, failure modes, CAM and image-to-image
translation (CycleGAN against StarGAN, the documents' table reproduced on dSprites shapes).

Each step shows *runs in roles* ("the GAN", "the ControlVAE at KL 14"): by default the shipped
pretrained run of the role (checkpoints/pretrained), else the newest local run that matches it;
a user can pick any matching run instead, e.g. the one they just trained with the assignment's
settings. ``build(step, context)`` returns the step's blocks; the app (pages/walkthrough.py) draws
them and ``gm.report`` writes them into a self-contained HTML file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gm import i18n
from gm.runs.folder import RunFolder, list_runs
from gm.walkthrough.blocks import Block, Metric
from gm.walkthrough.steps import ROLES, STEP_BY_KEY, STEPS, Context, Role, StepDef

__all__ = ["Block", "Context", "Metric", "ROLES", "Role", "STEP_BY_KEY", "STEPS", "StepDef", "build", "candidates",
           "default_runs", "step_title", "steps_in_order"]


def step_title(key: str, lang: str) -> str:
    """"3 · ControlVAE…" for the assignment's steps, "+ CAM…" for the extra sections (the catalogs
    choose the pattern: a middle dot next to a Persian digit reads as a zero)."""
    numbered = [s.key for s in STEPS if not s.extra]
    title = i18n.t(f"walkthrough.{key}.title", lang)
    if key in numbered:
        return i18n.t("walkthrough.page.numbered", lang, n=numbered.index(key) + 1, title=title)
    return i18n.t("walkthrough.page.extra", lang, title=title)


def steps_in_order() -> list[str]:
    return [s.key for s in STEPS]


def _config(run: RunFolder) -> dict[str, Any]:
    try:
        return run.read_config()
    except Exception:
        return {}


def candidates(role: str, runs_dir: str | Path | None = None, pretrained_dir: str | Path | None = None
               ) -> list[RunFolder]:
    """Runs that can play `role`: its shipped pretrained run first, then matching local runs
    (oldest first) that have a checkpoint to sample from."""
    from gm.pretrained import find_pretrained
    from gm.runs.checkpoint import latest_checkpoint
    r = ROLES[role]
    out = []
    if r.pretrained:
        shipped = find_pretrained(r.pretrained, pretrained_dir)
        if shipped is not None:
            out.append(shipped)
    for run in list_runs(runs_dir):  # a damaged run (gm.runs.schema) plays no role
        if run.damage() is None and r.matches(_config(run)) and latest_checkpoint(run.checkpoints_dir) is not None:
            out.append(run)
    return out


def default_runs(runs_dir: str | Path | None = None, pretrained_dir: str | Path | None = None
                 ) -> dict[str, RunFolder | None]:
    """Role -> the run shown when the user has not chosen: the pretrained one, else the newest
    matching local run, else None (the step then offers to train it)."""
    out: dict[str, RunFolder | None] = {}
    for role in ROLES:
        found = candidates(role, runs_dir, pretrained_dir)
        out[role] = found[0] if found else None
    return out


def build(step: str, ctx: Context) -> list[Block]:
    """The blocks of one step for the runs in `ctx`."""
    if step not in STEP_BY_KEY:
        from gm.errors import GMError
        raise GMError(f"Unknown walkthrough step '{step}'; choose one of {', '.join(STEP_BY_KEY)}.")
    return STEP_BY_KEY[step].build(ctx)

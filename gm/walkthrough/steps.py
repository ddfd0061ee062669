"""The assignment, step by step: what each step shows, built from the runs it is given.

Every builder takes a :class:`Context` (language, the run chosen for each role, loaders) and returns
blocks (gm.walkthrough.blocks). Texts come from the language catalogs (gm/i18n/*.toml, tables
``walkthrough.*``); numbers in them come from the run on screen (gm.walkthrough.facts).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from gm import i18n, plots
from gm.runs.folder import RunFolder
from gm.walkthrough import blocks as b
from gm.walkthrough import facts
from gm.walkthrough.blocks import Block, Metric


@dataclass(frozen=True)
class Role:
    """A part a run plays in the walkthrough (e.g. "the ControlVAE at KL 14")."""

    key: str
    model: str
    pretrained: str | None          # gm.pretrained.ENTRIES name shown by default
    overrides: tuple[tuple[str, Any], ...] = ()   # the assignment's settings beyond the defaults
    steps: int = 3000               # "train it yourself" length

    def matches(self, config: dict[str, Any]) -> bool:
        """Is a run with this config.json one of this role's runs?"""
        values = config.get("config") or {}
        return config.get("model") == self.model and all(values.get(k) == v for k, v in self.overrides)


def _shipped_steps(name: str, default: int) -> int:
    """The length a shipped pretrained run was trained for (gm.pretrained.ENTRIES), else `default`."""
    from gm.pretrained import ENTRIES
    entry = ENTRIES.get(name)
    return int(entry.steps) if entry is not None else default


ROLES: dict[str, Role] = {r.key: r for r in (
    Role("vae", "vae", "vae", steps=4000),
    Role("betavae", "betavae", "betavae", steps=4000),
    Role("controlvae_kl8", "controlvae", "controlvae", (("kl_target", 8.0),), steps=8000),
    Role("controlvae_kl14", "controlvae", "controlvae-kl14", (("kl_target", 14.0),), steps=4000),
    Role("gan", "gan", "gan", steps=4000),
    Role("wgan", "wgan", "wgan", steps=3000),
    Role("wgan_gp", "wgan-gp", "wgan-gp", steps=3000),
    Role("ssgan", "ssgan", "ssgan", steps=3000),
    Role("dcgan", "dcgan", "dcgan", (("label_smoothing", False), ("instance_noise", 0.0)), steps=3000),
    Role("dcgan_tricks", "dcgan", None, (("label_smoothing", True), ("instance_noise", 0.2)), steps=3000),
    Role("acgan", "acgan", "acgan", (("conditioning", "batchnorm"),), steps=3000),
    # Deliberate failures for the failures step (gm.pretrained's failure entries), never a model's card.
    Role("collapse", "acgan", "failure-mode-collapse", (("conditioning", "input"), ("fake_class_loss", True)),
         steps=3000),
    Role("convergence", "lsgan", "failure-convergence", (("lr_d", 2e-4),), steps=1500),
    # Image-to-image translation on dSprites shapes: one CycleGAN per pair of shapes (the papers'
    # "one model per domain pair") against one StarGAN for all three.
    Role("cyclegan_square_ellipse", "cyclegan", "cyclegan-square-ellipse",
         (("source", "square"), ("target", "ellipse"), ("decay_start", 500), ("decay_end", 1000)),
         steps=_shipped_steps("cyclegan-square-ellipse", 1000)),
    Role("cyclegan_square_heart", "cyclegan", "cyclegan-square-heart",
         (("source", "square"), ("target", "heart"), ("decay_start", 500), ("decay_end", 1000)),
         steps=_shipped_steps("cyclegan-square-heart", 1000)),
    Role("cyclegan_ellipse_heart", "cyclegan", "cyclegan-ellipse-heart",
         (("source", "ellipse"), ("target", "heart"), ("decay_start", 500), ("decay_end", 1000)),
         steps=_shipped_steps("cyclegan-ellipse-heart", 1000)),
    Role("stargan", "stargan", "stargan", (("domains", "shape"), ("decay_start", 10000), ("decay_end", 14000)),
         steps=_shipped_steps("stargan", 14000)),
)}
GAN_ROLES = ("gan", "dcgan", "wgan", "wgan_gp", "ssgan", "acgan")
FAILURE_ROLES = ("collapse", "convergence")
CYCLEGAN_ROLES = ("cyclegan_square_ellipse", "cyclegan_square_heart", "cyclegan_ellipse_heart")
TRANSLATION_ROLES = CYCLEGAN_ROLES + ("stargan",)


@dataclass
class Context:
    lang: str
    runs: dict[str, RunFolder | None]
    model: Callable[[RunFolder], Any]         # the run's model (gm.load_model), latest checkpoint
    dataset: Callable[[str], Any]             # gm.data.load_dataset, memoised by the caller
    cache: dict[str, Any] = field(default_factory=dict)

    def t(self, key: str, **values: Any) -> str:
        return i18n.t(key, self.lang, **values)

    def n(self, value: float | int, spec: str = "") -> str:
        return i18n.number(value, self.lang, spec)

    def run(self, role: str) -> RunFolder | None:
        return self.runs.get(role)

    def label(self, role: str) -> str:
        return self.t(f"walkthrough.role.{role}")


@dataclass(frozen=True)
class StepDef:
    key: str
    roles: tuple[str, ...]
    build: Callable[[Context], list[Block]]
    extra: bool = False      # the short sections after the seven steps of the assignment


# ---- shared pieces -----------------------------------------------------------------------------
def _missing(ctx: Context, role: str) -> list[Block]:
    return [b.note(ctx.t("walkthrough.common.missing", model=ROLES[role].model, label=ctx.label(role)),
                   "warning")]


# A run shorter than this share of the assignment's length has not learned what the step's text
# describes ("expect clean sprites" over a 20-step VAE's grey noise): the text is replaced by a note.
SHORT_RUN_SHARE = 0.25


def _short_run(ctx: Context, role: str, run: RunFolder) -> Block | None:
    """A note when `run` trained too few steps for the step's reading of a trained model, else None."""
    steps, target = facts.trained_steps(run), ROLES[role].steps
    if steps >= SHORT_RUN_SHARE * target:
        return None
    return b.note(ctx.t("walkthrough.common.short_run", name=run.name, steps=steps, target=target,
                        label=ctx.label(role)), "warning")


def _short_runs(ctx: Context, roles: list[str]) -> list[Block]:
    """The short-run notes of a step that shows several runs; its reading of them is left out when
    any one is short (it compares trained models)."""
    return [note for role in roles if (note := _short_run(ctx, role, ctx.run(role))) is not None]


def _train(ctx: Context, role: str) -> Block:
    r = ROLES[role]
    sets = "".join(f" --set {k}={str(v).lower() if isinstance(v, bool) else v}" for k, v in r.overrides)
    command = f"python -m gm train {r.model}{sets} --steps {r.steps}"
    key = "walkthrough.failures.reproduce" if role in FAILURE_ROLES else "walkthrough.common.train"
    return b.train(role, ctx.t(key, label=ctx.label(role), command=command))


def _metric_names(ctx: Context, keys: tuple[str, ...]) -> list[str]:
    return [ctx.t(f"metric.{k}") for k in keys]


def _line(ctx: Context, key: str, run: RunFolder, keys: tuple[str, ...], title: str, *,
          reference: str | None = None, log_y: bool = False) -> Block:
    fig = plots.line_figure(run.read_metrics(), keys, title=title, smoothing=0.6, log_y=log_y,
                            reference=reference, names=_metric_names(ctx, keys),
                            reference_name=ctx.t("metric.set_point"), x_title=ctx.t("monitor.axis_step"))
    return b.chart(key, fig)


def _overlay(ctx: Context, key: str, roles: tuple[str, ...], metric: str, title: str, *,
             reference: str | None = None) -> Block:
    runs = [(ctx.label(r), ctx.run(r).read_metrics()) for r in roles if ctx.run(r) is not None]
    refs = []
    if reference:
        for _name, records in runs:
            value = next((r[reference] for r in reversed(records) if isinstance(r.get(reference), (int, float))), None)
            if value is not None:
                refs.append((f"{ctx.t('metric.set_point')} {ctx.n(value, 'g')}", float(value)))
    return b.chart(key, plots.overlay_figure(runs, metric, title=title, smoothing=0.6, references=refs,
                                             x_title=ctx.t("monitor.axis_step")))


def fid_text(ctx: Context, value: float) -> str:
    return i18n.measure("fid", value, ctx.lang)


def fid_metrics(ctx: Context, role: str) -> list[Metric]:
    """Classifier FID (always measured for shipped runs) and Inception FID (when measured)."""
    run = ctx.run(role)
    measured = facts.evaluations(run) if run is not None else {}
    out = []
    for name in ("fid_classifier", "fid_inception"):
        label = ctx.t(f"walkthrough.common.{name}", label=ctx.label(role))
        m = measured.get(name)
        if m is None:
            out.append(Metric(label, "—", ctx.t(f"walkthrough.common.{name}_missing")))
        else:
            out.append(Metric(label, fid_text(ctx, m.value),
                              ctx.t("walkthrough.common.fid_help", n=m.n or 0, step=m.step or 0), m.value))
    return out


def _fid(ctx: Context, key: str, roles: tuple[str, ...]) -> list[Block]:
    items = [m for role in roles if ctx.run(role) is not None for m in fid_metrics(ctx, role)]
    if not items:
        return []
    return [b.metrics(key, items, role=",".join(r for r in roles if ctx.run(r) is not None)),
            b.markdown(ctx.t("walkthrough.common.fid_explain"))]


def _stage_grids(ctx: Context, key: str, role: str, *, final_only: bool = False) -> list[Block]:
    run = ctx.run(role)
    grids = facts.stage_grids(run)
    if final_only:
        grids = grids[-1:]
        return [b.image(f"{key}_final", path, ctx.t("walkthrough.common.grid_final", label=ctx.label(role), step=step))
                for step, path in grids]
    names = {3: ("early", "middle", "final"), 2: ("early", "final"), 1: ("final",)}.get(len(grids), ())
    out = [b.image(f"{key}_{stage}", path, ctx.t(f"walkthrough.common.grid_{stage}", label=ctx.label(role),
                                                  step=step))
           for stage, (step, path) in zip(names, grids)]
    if len(grids) < 3:
        out.append(b.note(ctx.t("walkthrough.common.few_grids", count=len(grids))))
    return out


def _hparams(ctx: Context, key: str, role: str, fields: tuple[str, ...]) -> Block:
    cfg = facts.config_of(ctx.run(role))
    values = cfg.get("config", {})
    setting, name, value = (ctx.t(f"walkthrough.common.col_{k}") for k in ("setting", "name", "value"))
    # The setting in words ([field]) beside its config name, which `--set` and config.json use.
    rows = [{setting: ctx.t(f"field.{f}"), name: f, value: str(values[f])} for f in fields if f in values]
    rows.append({setting: ctx.t("walkthrough.page.steps"), name: "steps",
                 value: str(facts.trained_steps(ctx.run(role)))})
    return b.table(key, rows, ctx.t("walkthrough.common.hparams", label=ctx.label(role)))


def _shapes(ctx: Context, key: str, module: torch.nn.Module, x: torch.Tensor, caption: str) -> Block:
    from gm.walkthrough.demos import layer_shapes
    cols = {k: ctx.t(f"walkthrough.common.col_{k}") for k in ("layer", "input", "output", "then")}
    rows = [{cols[k]: v for k, v in row.items()} for row in layer_shapes(module, x)]
    return b.table(key, rows, caption)


# ---- 1. dSprites and the VAE --------------------------------------------------------------------
def step_data(ctx: Context) -> list[Block]:
    from gm.images import make_grid
    out = [b.markdown(ctx.t("walkthrough.data.intro"))]
    data = ctx.dataset("dsprites")
    gen = torch.Generator().manual_seed(0)
    index = torch.randperm(len(data), generator=gen)[:50]
    out.append(b.image("data.samples", make_grid(data.take(index).float() / data.max_value, 10),
                       ctx.t("walkthrough.data.samples_caption", n=len(data))))
    factor_rows = [("shape", "square, ellipse, heart", 3), ("scale", "0.5 … 1", 6),
                   ("orientation", "0 … 2π", 40), ("posX", "0 … 1", 32), ("posY", "0 … 1", 32)]
    cols = [ctx.t(f"walkthrough.data.col_{c}") for c in ("factor", "values", "count")]
    out.append(b.table("data.factors", [dict(zip(cols, (f, v, ctx.n(c)))) for f, v, c in factor_rows],
                       ctx.t("walkthrough.data.factors_caption")))
    out.append(b.markdown(ctx.t("walkthrough.data.vae")))
    from gm.models.vae import VAE
    vae = VAE()
    out.append(_shapes(ctx, "data.encoder", vae.encoder, torch.zeros(2, 1, 64, 64),
                       ctx.t("walkthrough.data.encoder_caption")))
    out.append(_shapes(ctx, "data.decoder", vae.decoder, torch.zeros(2, vae.latent_dim),
                       ctx.t("walkthrough.data.decoder_caption")))
    out.append(b.markdown(ctx.t("walkthrough.data.heads")))
    out.append(b.equation(r"z = \mu + \sigma \odot \epsilon,\quad \epsilon \sim \mathcal{N}(0, I),\quad "
                          r"\sigma = \exp(\frac{1}{2}\log\sigma^2)"))
    out.append(b.markdown(ctx.t("walkthrough.data.loss")))
    out.append(b.equation(r"\mathrm{recon} = -\sum_{p=1}^{4096} [x_p \log \hat{x}_p + (1 - x_p) \log(1 - \hat{x}_p)]"))
    out.append(b.equation(r"\mathrm{KL} = \frac{1}{2} \sum_{j=1}^{10} (\mu_j^2 + \sigma_j^2 - \log \sigma_j^2 - 1),"
                          r"\quad \mathcal{L} = \mathrm{recon} + \beta \cdot \mathrm{KL}"))
    out.append(_train(ctx, "vae"))
    return out


# ---- 2. VAE results -----------------------------------------------------------------------------
def step_vae(ctx: Context) -> list[Block]:
    run = ctx.run("vae")
    if run is None:
        return _missing(ctx, "vae") + [_train(ctx, "vae")]
    from gm import vae_views
    out = [b.markdown(ctx.t("walkthrough.vae.intro"))]
    out.append(_line(ctx, "vae.losses", run, ("recon", "kl", "loss"), ctx.t("walkthrough.vae.losses_title"),
                     log_y=True))
    c = facts.curves(run, ("recon", "kl", "loss"))
    short = _short_run(ctx, "vae", run)
    if short is not None:
        out.append(short)
    elif {"recon", "kl", "loss"} <= set(c):
        out.append(b.markdown(ctx.t(
            "walkthrough.vae.losses_explain", steps=c["kl"].steps, recon_first=c["recon"].first,
            recon_last=c["recon"].last, kl_first=c["kl"].first, kl_peak=c["kl"].peak,
            kl_peak_step=c["kl"].peak_step, kl_last=c["kl"].last, loss_last=c["loss"].last)))
    out.append(b.image("vae.grid", vae_views.prior_grid(ctx.model(run), 5, 10, seed=0),
                       ctx.t("walkthrough.vae.grid_caption", step=facts.trained_steps(run))))
    if short is None:
        out.append(b.markdown(ctx.t("walkthrough.vae.grid_explain")))
    out += _fid(ctx, "vae.fid", ("vae",))
    out.append(_train(ctx, "vae"))
    return out


# ---- 3. ControlVAE --------------------------------------------------------------------------------
def step_controlvae(ctx: Context) -> list[Block]:
    roles = ("controlvae_kl8", "controlvae_kl14")
    out = [b.markdown(ctx.t("walkthrough.controlvae.intro"))]
    out.append(b.equation(r"e(t) = v_{KL} - \hat{v}_{KL}(t)"))
    out.append(b.equation(r"P(t) = \frac{K_p}{1 + \exp(e(t))},\quad I(t) = I(t-1) - K_i\, e(t)"))
    out.append(b.equation(r"\beta(t) = \min(\max(P(t) + I(t) + \beta_{min},\ \beta_{min}),\ \beta_{max})"))
    present = [r for r in roles if ctx.run(r) is not None]
    cfg = facts.config_of(ctx.run(present[0])).get("config", {}) if present else {}
    out.append(b.markdown(ctx.t("walkthrough.controlvae.terms", kp=cfg.get("kp", 0.01), ki=cfg.get("ki", 0.001),
                                beta_min=cfg.get("beta_min", 1.0), beta_max=cfg.get("beta_max", 100.0))))
    for role in roles:
        if ctx.run(role) is None:
            out += _missing(ctx, role)
    if present:
        out.append(_overlay(ctx, "controlvae.kl", roles, "kl", ctx.t("walkthrough.controlvae.kl_title"),
                            reference="kl_target"))
        out.append(_overlay(ctx, "controlvae.recon", roles, "recon", ctx.t("walkthrough.controlvae.recon_title")))
        out.append(_overlay(ctx, "controlvae.beta", roles, "beta", ctx.t("walkthrough.controlvae.beta_title")))
    shorts = _short_runs(ctx, present)
    out += shorts
    if len(present) == 2 and not shorts:
        c8, c14 = (facts.curves(ctx.run(r), ("kl", "recon", "beta")) for r in roles)
        if all({"kl", "recon", "beta"} <= set(c) for c in (c8, c14)):
            out.append(b.markdown(ctx.t(
                "walkthrough.controlvae.explain", kl8=c8["kl"].last, kl14=c14["kl"].last,
                beta8=c8["beta"].last, beta14=c14["beta"].last, recon8=c8["recon"].last,
                recon14=c14["recon"].last, steps8=c8["kl"].steps, steps14=c14["kl"].steps)))
    from gm import vae_views
    for role in present:
        run = ctx.run(role)
        out.append(b.image(f"controlvae.grid_{role.split('_')[-1]}", vae_views.prior_grid(ctx.model(run), 5, 10),
                           ctx.t("walkthrough.controlvae.grid_caption", label=ctx.label(role),
                                 step=facts.trained_steps(run))))
    out += _fid(ctx, "controlvae.fid", roles)
    if present:
        out.append(b.markdown(ctx.t("walkthrough.controlvae.fid_explain")))
    out += [_train(ctx, r) for r in roles]
    return out


# ---- 4. The GAN ---------------------------------------------------------------------------------------
def step_gan(ctx: Context) -> list[Block]:
    from gm.models.gan import ConvDiscriminator, PixelShuffleGenerator
    from gm.walkthrough.demos import pixel_shuffle_figure
    out = [b.markdown(ctx.t("walkthrough.gan.pixelshuffle"))]
    out.append(b.equation(r"y_{c,\ rh+i,\ rw+j} = x_{c r^2 + i r + j,\ h,\ w},\quad 0 \leq i, j < r"))
    out.append(Block("demo", key="gan.pixelshuffle_demo",
                     figure=pixel_shuffle_figure(2, 1, 2, input_title=ctx.t("walkthrough.gan.demo_input"),
                                                 output_title=ctx.t("walkthrough.gan.demo_output"), number=ctx.n),
                     caption=ctx.t("walkthrough.gan.demo_caption")))
    out.append(_shapes(ctx, "gan.generator", PixelShuffleGenerator(), torch.zeros(2, 64),
                       ctx.t("walkthrough.gan.generator_caption")))
    out.append(_shapes(ctx, "gan.discriminator", ConvDiscriminator(), torch.zeros(2, 1, 28, 28),
                       ctx.t("walkthrough.gan.discriminator_caption")))
    out.append(b.markdown(ctx.t("walkthrough.gan.blanks")))
    out.append(b.markdown(ctx.t("walkthrough.gan.loss")))
    out.append(b.equation(r"L_D = -\frac{1}{m}\sum_{i=1}^{m} \log D(x_i) - \frac{1}{m}\sum_{i=1}^{m} \log(1 - D(G(z_i)))"))
    out.append(b.equation(r"L_G = -\frac{1}{m}\sum_{i=1}^{m} \log D(G(z_i))"))
    run = ctx.run("gan")
    if run is None:
        return out + _missing(ctx, "gan") + [_train(ctx, "gan")]
    out.append(_line(ctx, "gan.losses", run, ("d_loss", "g_loss"), ctx.t("walkthrough.gan.losses_title")))
    out.append(_line(ctx, "gan.outputs", run, ("d_real", "d_fake"), ctx.t("walkthrough.gan.outputs_title")))
    c = facts.curves(run, ("d_loss", "g_loss", "d_real", "d_fake"))
    short = _short_run(ctx, "gan", run)
    if short is not None:
        out.append(short)
    elif len(c) == 4:
        out.append(b.markdown(ctx.t("walkthrough.gan.losses_explain", d_loss=c["d_loss"].last,
                                    g_loss=c["g_loss"].last, d_real=c["d_real"].last, d_fake=c["d_fake"].last,
                                    d_low=c["d_loss"].low, d_low_step=c["d_loss"].low_step)))
    out += _stage_grids(ctx, "gan.grid", "gan")
    if short is None:
        out.append(b.markdown(ctx.t("walkthrough.gan.grids_explain")))
    out.append(_hparams(ctx, "gan.hparams", "gan", ("latent_dim", "batch_size", "lr_g", "lr_d", "beta1", "beta2")))
    out.append(b.markdown(ctx.t("walkthrough.gan.hparams_explain")))
    out += _fid(ctx, "gan.fid", ("gan",))
    out.append(_train(ctx, "gan"))
    return out


# ---- 5. WGAN --------------------------------------------------------------------------------------
def step_wgan(ctx: Context) -> list[Block]:
    roles = ("wgan", "wgan_gp")
    out = [b.markdown(ctx.t("walkthrough.wgan.intro"))]
    out.append(b.equation(r"W(P_r, P_g) = \sup_{\Vert f \Vert_L \leq 1}\ E_{x \sim P_r}[f(x)] - E_{z}[f(G(z))]"))
    out.append(b.equation(r"L_{critic} = -\frac{1}{m}\sum f(x_i) + \frac{1}{m}\sum f(G(z_i)),\quad "
                          r"L_G = -\frac{1}{m}\sum f(G(z_i))"))
    out.append(b.markdown(ctx.t("walkthrough.wgan.lipschitz")))
    out.append(b.equation(r"L_{critic}^{GP} = L_{critic} + \lambda\, E_{\hat{x}}[(\Vert \nabla_{\hat{x}} f(\hat{x}) \Vert_2 - 1)^2]"))
    present = [r for r in roles if ctx.run(r) is not None]
    for role in roles:
        if ctx.run(role) is None:
            out += _missing(ctx, role)
    for role in present:
        out.append(_line(ctx, f"{role}.losses", ctx.run(role), ("d_loss", "g_loss"),
                         ctx.t("walkthrough.wgan.losses_title", label=ctx.label(role))))
    if present:
        out.append(_overlay(ctx, "wgan.w_dist", roles, "w_dist", ctx.t("walkthrough.wgan.w_dist_title")))
        facts_by = {r: facts.curves(ctx.run(r), ("w_dist",)).get("w_dist") for r in present}
        lines = [ctx.t("walkthrough.wgan.w_dist_line", label=ctx.label(r), peak=c.peak, peak_step=c.peak_step,
                       last=c.last) for r, c in facts_by.items() if c is not None]
        out.append(b.markdown(ctx.t("walkthrough.wgan.w_dist_explain") + "\n\n" + "\n".join(lines)))
    for role in present:
        out += _stage_grids(ctx, f"{role}.grid", role)
    out += _fid(ctx, "wgan.fid", roles)
    shorts = _short_runs(ctx, present)
    out += shorts
    if present and not shorts:
        out.append(b.markdown(ctx.t("walkthrough.wgan.compare_explain")))
        covered = {r: facts.evaluations(ctx.run(r)).get("classes_covered") for r in present}
        lines = [ctx.t("walkthrough.wgan.covered_line", label=ctx.label(r), covered=int(m.value), n=m.n or 0,
                       steps=facts.trained_steps(ctx.run(r))) for r, m in covered.items() if m is not None]
        if lines:
            out.append(b.markdown("\n".join(lines)))
    out += [_train(ctx, r) for r in roles]
    return out


# ---- 6. SSGAN -------------------------------------------------------------------------------------
def step_ssgan(ctx: Context) -> list[Block]:
    out = [b.markdown(ctx.t("walkthrough.ssgan.intro"))]
    out.append(b.equation(r"L_D = E[\max(0, 1 - D(x))] + E[\max(0, 1 + D(G(z)))] + 1.0 \cdot "
                          r"E_{r}[-\log Q_D(r \mid \mathrm{rot}_r(x))]"))
    out.append(b.equation(r"L_G = -E[D(G(z))] + 0.2 \cdot E_{r}[-\log Q_D(r \mid \mathrm{rot}_r(G(z)))]"))
    out.append(b.markdown(ctx.t("walkthrough.ssgan.architecture")))
    run = ctx.run("ssgan")
    if run is None:
        return out + _missing(ctx, "ssgan") + [_train(ctx, "ssgan")]
    out.append(_line(ctx, "ssgan.losses", run, ("d_loss", "g_loss"), ctx.t("walkthrough.ssgan.losses_title")))
    out.append(_line(ctx, "ssgan.rotation", run, ("rot_acc",), ctx.t("walkthrough.ssgan.rotation_title")))
    c = facts.curves(run, ("rot_acc", "d_rot", "g_rot"))
    short = _short_run(ctx, "ssgan", run)
    if short is not None:
        out.append(short)
    elif "rot_acc" in c:
        out.append(b.markdown(ctx.t("walkthrough.ssgan.rotation_explain", first=c["rot_acc"].first,
                                    last=c["rot_acc"].last, steps=c["rot_acc"].steps)))
    out += _stage_grids(ctx, "ssgan.grid", "ssgan")
    width = facts.config_of(run).get("config", {}).get("width", 1.0)
    out.append(b.markdown(ctx.t("walkthrough.ssgan.width_note", width=width)))
    out += _fid(ctx, "ssgan.fid", ("ssgan",))
    out.append(_train(ctx, "ssgan"))
    return out


# ---- 7. Comparison ----------------------------------------------------------------------------------
COMPARED = ("vae", "betavae", "controlvae_kl8", "controlvae_kl14", "gan", "dcgan", "wgan", "wgan_gp",
            "ssgan", "acgan")


def comparison_rows(ctx: Context) -> list[dict[str, str]]:
    cols = {k: ctx.t(f"walkthrough.compare.col_{k}") for k in
            ("model", "dataset", "steps", "fid_classifier", "fid_inception", "n", "precision", "recall",
             "coverage", "extra")}
    rows = []
    for role in COMPARED:
        run = ctx.run(role)
        if run is None:
            continue
        m = facts.evaluations(run)
        cfg = facts.config_of(run)
        num_classes = 3 if cfg.get("dataset") == "dsprites" else 10

        def val(name: str, spec: str = ".3f", m=m) -> str:
            return ctx.n(m[name].value, spec) if name in m else "—"

        extra = []
        if "mig" in m:
            extra.append(f"MIG {ctx.n(m['mig'].value, '.3f')}")
        if "acgan_accuracy" in m:
            extra.append(ctx.t("walkthrough.compare.acgan_accuracy", value=100 * m["acgan_accuracy"].value))
        rows.append({
            cols["model"]: ctx.label(role), cols["dataset"]: cfg.get("dataset", "?"),
            cols["steps"]: ctx.n(facts.trained_steps(run)),
            cols["fid_classifier"]: fid_text(ctx, m["fid_classifier"].value) if "fid_classifier" in m else "—",
            cols["fid_inception"]: fid_text(ctx, m["fid_inception"].value) if "fid_inception" in m else "—",
            cols["n"]: ctx.n(m["fid_classifier"].n) if "fid_classifier" in m and m["fid_classifier"].n else "—",
            cols["precision"]: val("precision"), cols["recall"]: val("recall"),
            cols["coverage"]: (f"{ctx.n(int(m['classes_covered'].value))} / {ctx.n(num_classes)}"
                               if "classes_covered" in m else "—"),
            cols["extra"]: i18n.join(extra, ctx.lang),
        })
    return rows


def step_compare(ctx: Context) -> list[Block]:
    out = [b.markdown(ctx.t("walkthrough.compare.intro"))]
    rows = comparison_rows(ctx)
    if not rows:
        return out + [b.note(ctx.t("walkthrough.compare.empty"), "warning")]
    out.append(b.table("compare.table", rows, ctx.t("walkthrough.compare.table_caption")))
    mnist = [(ctx.label(r), facts.evaluations(ctx.run(r)).get("fid_classifier")) for r in GAN_ROLES
             if ctx.run(r) is not None]
    mnist = [(name, m.value) for name, m in mnist if m is not None]
    if mnist:
        out.append(b.chart("compare.fid_mnist", plots.bar_figure([n for n, _ in mnist], [v for _, v in mnist],
                                                                ctx.t("walkthrough.compare.fid_title"))))
    out.append(b.markdown(ctx.t("walkthrough.compare.explain")))
    return out


# ---- extras: DCGAN tricks, ACGAN, failure modes, CAM --------------------------------------------
def step_dcgan(ctx: Context) -> list[Block]:
    out = [b.markdown(ctx.t("walkthrough.dcgan.intro"))]
    run = ctx.run("dcgan")
    if run is None:
        out += _missing(ctx, "dcgan")
    else:
        out.append(_line(ctx, "dcgan.losses", run, ("d_loss", "g_loss"), ctx.t("walkthrough.dcgan.losses_title")))
        out += _stage_grids(ctx, "dcgan.grid", "dcgan", final_only=True)
    if ctx.run("dcgan_tricks") is not None and run is not None:
        out.append(_overlay(ctx, "dcgan.d_acc", ("dcgan", "dcgan_tricks"), "d_acc",
                            ctx.t("walkthrough.dcgan.d_acc_title")))
    elif run is not None:
        out.append(_line(ctx, "dcgan.d_acc", run, ("d_acc",), ctx.t("walkthrough.dcgan.d_acc_title")))
        out.append(b.note(ctx.t("walkthrough.dcgan.compare_hint")))
    out.append(b.markdown(ctx.t("walkthrough.dcgan.tricks")))
    out += [_train(ctx, "dcgan"), _train(ctx, "dcgan_tricks")]
    return out


def step_acgan(ctx: Context) -> list[Block]:
    out = [b.markdown(ctx.t("walkthrough.acgan.intro"))]
    out.append(b.equation(r"L_S = E[\log P(S = real \mid x_{real})] + E[\log P(S = fake \mid x_{fake})]"))
    out.append(b.equation(r"L_C = E[\log P(C = c \mid x_{real})] + E[\log P(C = c \mid x_{fake})]"))
    out.append(b.markdown(ctx.t("walkthrough.acgan.objectives")))
    run = ctx.run("acgan")
    if run is None:
        return out + _missing(ctx, "acgan") + [_train(ctx, "acgan")]
    out.append(_line(ctx, "acgan.class", run, ("cls_acc", "fake_cls_acc"), ctx.t("walkthrough.acgan.class_title")))
    out += _stage_grids(ctx, "acgan.grid", "acgan", final_only=True)
    m = facts.evaluations(run)
    if "acgan_accuracy" in m:
        acc = m["acgan_accuracy"]
        out.append(b.metrics("acgan.accuracy", [Metric(ctx.t("walkthrough.acgan.accuracy"),
                                                       ctx.n(100 * acc.value, ".1f") + ("٪" if ctx.lang == "fa" else "%"),
                                                       ctx.t("walkthrough.common.fid_help", n=acc.n or 0,
                                                             step=acc.step or 0), acc.value)]))
    out.append(b.markdown(ctx.t("walkthrough.acgan.explain")))
    out.append(_train(ctx, "acgan"))
    return out


COVERAGE_N = 500


def coverage_of(ctx: Context, role: str) -> dict[str, Any]:
    """Class histogram of COVERAGE_N samples of a GAN run under the MNIST evaluator (memoised in ctx)."""
    run = ctx.run(role)
    key = f"coverage:{run.path}:{facts.trained_steps(run)}"
    if key not in ctx.cache:
        from gm.metrics.classifiers import load_classifier, predict
        from gm.metrics.coverage import coverage
        images = ctx.model(run).sample(COVERAGE_N, seed=0)
        ctx.cache[key] = coverage(predict(load_classifier("mnist"), images)["class"], 10)
    return ctx.cache[key]


def _collapse_rows(ctx: Context, roles: tuple[str, ...]) -> list[dict[str, Any]]:
    """Classes covered next to the figures that see inside a class (measured by `gm eval`)."""
    cols = {k: ctx.t(f"walkthrough.failures.col_{k}") for k in ("model", "covered", "diversity", "recall")}
    rows = []
    for role in roles:
        if ctx.run(role) is None:
            continue
        ev = facts.evaluations(ctx.run(role))

        def shown(key: str, spec: str, ev: dict = ev) -> str:
            return ctx.n(ev[key].value, spec) if key in ev else "—"
        rows.append({cols["model"]: ctx.label(role), cols["covered"]: shown("classes_covered", ".0f"),
                     cols["diversity"]: shown("within_class_diversity", ".2f"), cols["recall"]: shown("recall", ".2f")})
    return rows


# The 2-D playground's mode-collapse demo (gm.playground's defaults): the ring of 8 Gaussians, the
# same networks, optimizer, seed and 500 steps, only the loss differs (tests/test_playground.py
# measures it over seeds 0-7).
PLAYGROUND_STEPS = 500
PLAYGROUND_LOSSES_SHOWN = ("ns", "wgan_gp")


def _playground_pair(ctx: Context) -> dict[str, tuple[Any, Any]]:
    """loss -> (picture, Coverage) after PLAYGROUND_STEPS on the ring; trained once per context cache
    (about 10 s on a CPU), the same in every language."""
    if "playground_pair" not in ctx.cache:
        from gm.playground import Playground, PlaygroundConfig
        from gm.playground.picture import render
        pair = {}
        for loss in PLAYGROUND_LOSSES_SHOWN:
            pg = Playground(PlaygroundConfig.for_loss(loss, distribution="ring8", seed=0))
            pg.step(PLAYGROUND_STEPS)
            pair[loss] = (render(pg.snapshot(), 360), pg.evaluate())
        ctx.cache["playground_pair"] = pair
    return ctx.cache["playground_pair"]


def _playground_collapse(ctx: Context) -> list[Block]:
    """Mode collapse and its cure side by side on 2-D data, where every mode can be seen and counted."""
    pair = _playground_pair(ctx)
    out = [b.markdown(ctx.t("walkthrough.failures.playground_intro", steps=PLAYGROUND_STEPS))]
    for loss in PLAYGROUND_LOSSES_SHOWN:
        picture, cov = pair[loss]
        out.append(b.image(f"failures.playground_{loss}", picture, ctx.t(
            "walkthrough.failures.playground_caption", loss=ctx.t(f"playground.loss_{loss}"),
            covered=ctx.n(cov.modes_covered), modes=ctx.n(cov.n_modes), quality=ctx.n(cov.high_quality, ".0%"))))
    ns, gp = pair["ns"][1], pair["wgan_gp"][1]
    out.append(b.markdown(ctx.t("walkthrough.failures.playground_explain", ns_covered=ns.modes_covered,
                                ns_share=max(ns.mode_share), gp_covered=gp.modes_covered,
                                gp_low=min(gp.mode_share), gp_high=max(gp.mode_share), modes=gp.n_modes)))
    return out


def step_failures(ctx: Context) -> list[Block]:
    out = [b.markdown(ctx.t("walkthrough.failures.intro"))]
    # Mode collapse, from a run trained to show it: every class is there, each drawn one way.
    if ctx.run("collapse") is None:
        out += _missing(ctx, "collapse")
    else:
        out += _stage_grids(ctx, "failures.collapse_grid", "collapse", final_only=True)
        out.append(b.markdown(ctx.t("walkthrough.failures.collapse_explain")))
        out.append(b.table("failures.collapse_table", _collapse_rows(ctx, ("collapse", "acgan")),
                           ctx.t("walkthrough.failures.collapse_caption")))
    out.append(_train(ctx, "collapse"))
    out += _playground_collapse(ctx)
    # Mode coverage of every GAN the walkthrough shows: the signal across classes.
    present = [r for r in GAN_ROLES if ctx.run(r) is not None]
    if present:
        cov = {r: coverage_of(ctx, r) for r in present}
        worst = max(present, key=lambda r: cov[r]["kl_to_uniform"])
        best = min(present, key=lambda r: cov[r]["kl_to_uniform"])
        for role, key in ((worst, "failures.histogram_worst"), (best, "failures.histogram_best")):
            c = cov[role]
            out.append(b.chart(key, plots.bar_figure(
                [ctx.n(d) for d in range(10)], c["class_histogram"],
                ctx.t("walkthrough.failures.histogram_title", label=ctx.label(role), covered=c["classes_covered"],
                      kl=c["kl_to_uniform"]))))
        cols = {k: ctx.t(f"walkthrough.failures.col_{k}") for k in ("model", "covered", "kl")}
        out.append(b.table("failures.coverage", [
            {cols["model"]: ctx.label(r), cols["covered"]: f"{ctx.n(cov[r]['classes_covered'])} / {ctx.n(10)}",
             cols["kl"]: ctx.n(cov[r]["kl_to_uniform"], ".3f")} for r in present],
            ctx.t("walkthrough.failures.table_caption", n=COVERAGE_N)))
        out.append(b.markdown(ctx.t("walkthrough.failures.explain", worst=ctx.label(worst),
                                    covered=cov[worst]["classes_covered"], kl=cov[worst]["kl_to_uniform"],
                                    best=ctx.label(best), best_kl=cov[best]["kl_to_uniform"])))
    # Convergence failure, from a run trained to show it: D wins and G stops learning.
    run = ctx.run("convergence")
    if run is None:
        out += _missing(ctx, "convergence")
    else:
        out.append(_line(ctx, "failures.convergence_losses", run, ("d_loss", "g_loss"),
                         ctx.t("walkthrough.failures.convergence_losses_title")))
        out.append(_line(ctx, "failures.convergence_outputs", run, ("d_real", "d_fake"),
                         ctx.t("walkthrough.failures.convergence_outputs_title")))
        out += _stage_grids(ctx, "failures.convergence_grid", "convergence", final_only=True)
        c = facts.curves(run, ("d_loss", "g_loss", "d_real", "d_fake"))
        if len(c) == 4:
            out.append(b.markdown(ctx.t("walkthrough.failures.convergence_explain", d_loss=c["d_loss"].last,
                                        g_loss=c["g_loss"].last, d_real=c["d_real"].last, d_fake=c["d_fake"].last)))
    out.append(_train(ctx, "convergence"))
    out.append(b.markdown(ctx.t("walkthrough.failures.convergence")))
    return out


def step_cam(ctx: Context) -> list[Block]:
    out = [b.markdown(ctx.t("walkthrough.cam.intro"))]
    out.append(b.equation(r"M_c(x, y) = \sum_k w_k^c\, f_k(x, y),\quad S_c = \frac{1}{HW}\sum_{x,y} M_c(x, y) + b_c"))
    run = ctx.run("gan")
    if run is None:
        return out + _missing(ctx, "gan")
    from gm.images import make_grid
    from gm.metrics.cam import class_activation_maps, overlay
    from gm.metrics.classifiers import load_classifier
    images = ctx.model(run).sample(10, seed=0)
    cam = class_activation_maps(load_classifier("mnist"), images)
    tiles = torch.from_numpy(overlay(images, cam.heatmaps)).permute(0, 3, 1, 2).float() / 255
    grid = np.concatenate([make_grid(images.repeat(1, 3, 1, 1), 10), make_grid(tiles, 10)], axis=0)
    out.append(b.image("cam.heatmaps", grid, ctx.t("walkthrough.cam.caption",
                                                  predicted=" ".join(ctx.n(int(p)) for p in cam.predicted))))
    out.append(b.markdown(ctx.t("walkthrough.cam.explain")))
    return out


# ---- image-to-image translation: CycleGAN and StarGAN ----------------------------------------------
# The documents' comparison (StarGAN paper, RaFD facial expressions): classification error of the
# translated attribute, and parameters x models (CycleGAN needs one model per pair of domains).
PAPER_TABLE = (("cyclegan", 5.99, 52.6e6, 14), ("stargan", 2.12, 53.2e6, 1))


def _percent(ctx: Context, value: float, spec: str = ".2f") -> str:
    return ctx.n(value, spec) + ("٪" if ctx.lang == "fa" else " %")


def _keys_logged(run: RunFolder, keys: tuple[str, ...]) -> tuple[str, ...]:
    records = run.read_metrics()[-50:]
    return tuple(k for k in keys if any(isinstance(r.get(k), (int, float)) for r in records))


def _not_shipped(ctx: Context, role: str) -> Block:
    r = ROLES[role]
    return b.note(ctx.t("walkthrough.translation.not_shipped", label=ctx.label(role), name=r.pretrained or r.model,
                        model=r.model), "warning")


def _translation_scores(ctx: Context, role: str) -> tuple[Any, int | None]:
    """(gm.translate_views.Scores, parameters needed to translate) of the run playing `role`."""
    from gm import translate_views as tv
    run = ctx.run(role)
    if run is None:
        return tv.Scores(), None
    scores = tv.scores_of(run)
    params = scores.value("parameters")
    if params is None:   # not measured yet: count them on the model itself
        key = f"parameters:{run.path}"
        if key not in ctx.cache:
            try:
                ctx.cache[key] = tv.parameters_of(ctx.model(run))
            except Exception:   # a run that cannot be loaded counts as unmeasured, never breaks the step
                ctx.cache[key] = None
        params = ctx.cache[key]
    return scores, None if params is None else int(params)


def translation_rows(ctx: Context) -> tuple[list[dict[str, str]], dict[str, Any]]:
    """The documents' table with gm's dSprites rows under it, and the figures the explanation uses."""
    from gm.translate_views import short_count
    cols = {k: ctx.t(f"walkthrough.translation.col_{k}") for k in
            ("model", "data", "error", "params", "total", "iou", "position")}
    rows = []
    for model, error, params, models in PAPER_TABLE:
        rows.append({cols["model"]: ctx.t(f"walkthrough.translation.paper_{model}"),
                     cols["data"]: ctx.t("walkthrough.translation.data_rafd"),
                     cols["error"]: _percent(ctx, error),
                     cols["params"]: f"{short_count(params, ctx.lang)} × {ctx.n(models)}",
                     cols["total"]: short_count(params * models, ctx.lang), cols["iou"]: "—", cols["position"]: "—"})
    figures: dict[str, Any] = {}
    groups = (("cyclegan", CYCLEGAN_ROLES, len(CYCLEGAN_ROLES)), ("stargan", ("stargan",), 1))
    for model, roles, models in groups:
        measured = [_translation_scores(ctx, r) for r in roles if ctx.run(r) is not None]
        accuracy = [s.value("target_accuracy") for s, _ in measured if s.value("target_accuracy") is not None]
        ious = [s.value("gt_iou") for s, _ in measured if s.value("gt_iou") is not None]
        position = [s.value("position_error_px") for s, _ in measured if s.value("position_error_px") is not None]
        params = [p for _, p in measured if p is not None]
        error = 100 * (1 - float(np.mean(accuracy))) if accuracy else None
        each = float(np.mean(params)) if params else None
        name = ctx.t(f"walkthrough.translation.gm_{model}", models=models)
        if measured and len(measured) < len(roles):
            name += " " + ctx.t("walkthrough.translation.partial", have=len(measured), of=len(roles))
        rows.append({cols["model"]: name, cols["data"]: ctx.t("walkthrough.translation.data_dsprites"),
                     cols["error"]: "—" if error is None else _percent(ctx, error),
                     cols["params"]: "—" if each is None else f"{short_count(each, ctx.lang)} × {ctx.n(models)}",
                     cols["total"]: "—" if each is None else short_count(each * models, ctx.lang),
                     cols["iou"]: ctx.n(float(np.mean(ious)), ".3f") if ious else "—",
                     cols["position"]: ctx.n(float(np.mean(position)), ".2f") if position else "—"})
        figures[model] = {"error": error, "each": each, "total": None if each is None else each * models,
                          "runs": len(measured)}
    return rows, figures


def translation_pair_rows(ctx: Context) -> list[dict[str, str]]:
    """Per ordered pair of shapes: each pair's CycleGAN next to the StarGAN on the same pair."""
    from gm import translate_views as tv
    cols = {k: ctx.t(f"walkthrough.translation.col_{k}") for k in
            ("pair", "cyclegan_error", "stargan_error", "cyclegan_iou", "stargan_iou")}
    cyclegan: dict[str, dict[str, float]] = {}
    for role in CYCLEGAN_ROLES:
        if ctx.run(role) is not None:
            cyclegan.update(_translation_scores(ctx, role)[0].pairs)
    stargan = _translation_scores(ctx, "stargan")[0].pairs if ctx.run("stargan") is not None else {}
    names = sorted(set(cyclegan) | set(stargan))

    def err(table: dict[str, dict[str, float]], pair: str) -> str:
        value = table.get(pair, {}).get("target_accuracy")
        return "—" if value is None else _percent(ctx, 100 * (1 - value))

    def iou(table: dict[str, dict[str, float]], pair: str) -> str:
        value = table.get(pair, {}).get("gt_iou")
        return "—" if value is None else ctx.n(value, ".3f")

    rows = []
    for pair in names:
        source, _, target = pair.partition("->")
        rows.append({cols["pair"]: f"{tv.domain_name(source, ctx.lang)} → {tv.domain_name(target, ctx.lang)}",
                     cols["cyclegan_error"]: err(cyclegan, pair), cols["stargan_error"]: err(stargan, pair),
                     cols["cyclegan_iou"]: iou(cyclegan, pair), cols["stargan_iou"]: iou(stargan, pair)})
    return rows


def step_translation(ctx: Context) -> list[Block]:
    from gm.translate_views import short_count
    out = [b.markdown(ctx.t("walkthrough.translation.intro"))]
    out.append(b.equation(r"\mathcal{L}(G, F, D_X, D_Y) = \mathcal{L}_{GAN}(G, D_Y, X, Y) + "
                          r"\mathcal{L}_{GAN}(F, D_X, Y, X) + \lambda\, \mathcal{L}_{cyc}(G, F)"))
    out.append(b.equation(r"\mathcal{L}_{cyc}(G, F) = E_{x \sim p(x)}[\Vert F(G(x)) - x \Vert_1] + "
                          r"E_{y \sim p(y)}[\Vert G(F(y)) - y \Vert_1]"))
    shown = [r for r in CYCLEGAN_ROLES if ctx.run(r) is not None]
    cfg = facts.config_of(ctx.run(shown[0])).get("config", {}) if shown else {}
    out.append(b.markdown(ctx.t("walkthrough.translation.cyclegan", lambda_cyc=cfg.get("lambda_cyc", 10.0),
                                lambda_idt=cfg.get("lambda_idt", 0.5), pool=cfg.get("pool_size", 50))))
    out.append(b.equation(r"\mathcal{L}_{GAN}(G, D_Y) = E_y[(D_Y(y) - 1)^2] + E_x[D_Y(G(x))^2],\quad "
                          r"\mathcal{L}_{idt} = E_y[\Vert G(y) - y \Vert_1] + E_x[\Vert F(x) - x \Vert_1]"))
    for role in CYCLEGAN_ROLES:
        if ctx.run(role) is None:
            out.append(_not_shipped(ctx, role))
    if shown:
        run = ctx.run(shown[0])
        keys = _keys_logged(run, ("cycle", "idt", "g_adv", "d_x", "d_y"))
        if keys:
            out.append(_line(ctx, "translation.cyclegan_losses", run, keys,
                             ctx.t("walkthrough.translation.cyclegan_losses_title", label=ctx.label(shown[0]))))
    for role in shown:
        out += _stage_grids(ctx, f"translation.{role}.grid", role, final_only=True)
    if shown:
        out.append(b.markdown(ctx.t("walkthrough.translation.cyclegan_grid")))

    out.append(b.markdown(ctx.t("walkthrough.translation.stargan")))
    out.append(b.equation(r"\mathcal{L}_D = -\mathcal{L}_{adv} + \lambda_{cls}\, \mathcal{L}_{cls}^{r},\quad "
                          r"\mathcal{L}_G = \mathcal{L}_{adv} + \lambda_{cls}\, \mathcal{L}_{cls}^{f} + "
                          r"\lambda_{rec}\, \mathcal{L}_{rec}"))
    out.append(b.equation(r"\mathcal{L}_{rec} = E_{x, c, c'}[\Vert x - G(G(x, c), c') \Vert_1],\quad "
                          r"\mathcal{L}_{cls}^{f} = E_{x, c}[-\log D_{cls}(c \mid G(x, c))]"))
    out.append(b.markdown(ctx.t("walkthrough.translation.mask")))
    out.append(b.equation(r"\tilde{c} = [c_1, \ldots, c_n, m]"))
    star = ctx.run("stargan")
    if star is None:
        out.append(_not_shipped(ctx, "stargan"))
    else:
        keys = _keys_logged(star, ("rec", "g_cls", "d_cls"))
        if keys:
            out.append(_line(ctx, "translation.stargan_losses", star, keys,
                             ctx.t("walkthrough.translation.stargan_losses_title")))
        if _keys_logged(star, ("cls_acc",)):
            out.append(_line(ctx, "translation.stargan_cls_acc", star, ("cls_acc",),
                             ctx.t("walkthrough.translation.stargan_cls_title")))
        out += _stage_grids(ctx, "translation.stargan.grid", "stargan", final_only=True)

    out.append(b.markdown(ctx.t("walkthrough.translation.table_intro")))
    rows, figures = translation_rows(ctx)
    out.append(b.table("translation.table", rows, ctx.t("walkthrough.translation.table_caption")))
    cyc, sg = figures["cyclegan"], figures["stargan"]
    if cyc["error"] is not None and sg["error"] is not None and cyc["total"] and sg["total"]:
        out.append(b.markdown(ctx.t("walkthrough.translation.table_explain", cyc_error=cyc["error"],
                                    star_error=sg["error"], cyc_total=short_count(cyc["total"], ctx.lang),
                                    star_total=short_count(sg["total"], ctx.lang), ratio=cyc["total"] / sg["total"])))
    elif cyc["runs"] + sg["runs"] == 0:
        out.append(b.note(ctx.t("walkthrough.translation.table_empty")))
    pairs = translation_pair_rows(ctx)
    if pairs:
        out.append(b.table("translation.pairs", pairs, ctx.t("walkthrough.translation.pairs_caption")))
    out.append(b.markdown(ctx.t("walkthrough.translation.explain")))
    out += [_train(ctx, r) for r in TRANSLATION_ROLES]
    return out


STEPS: list[StepDef] = [
    StepDef("data", ("vae",), step_data),
    StepDef("vae", ("vae",), step_vae),
    StepDef("controlvae", ("controlvae_kl8", "controlvae_kl14"), step_controlvae),
    StepDef("gan", ("gan",), step_gan),
    StepDef("wgan", ("wgan", "wgan_gp"), step_wgan),
    StepDef("ssgan", ("ssgan",), step_ssgan),
    StepDef("compare", COMPARED, step_compare),
    StepDef("dcgan", ("dcgan", "dcgan_tricks"), step_dcgan, extra=True),
    StepDef("acgan", ("acgan",), step_acgan, extra=True),
    StepDef("failures", GAN_ROLES + FAILURE_ROLES, step_failures, extra=True),
    StepDef("cam", ("gan",), step_cam, extra=True),
    StepDef("translation", TRANSLATION_ROLES, step_translation, extra=True),
]
STEP_BY_KEY = {s.key: s for s in STEPS}

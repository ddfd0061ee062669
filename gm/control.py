"""The PI controller of ControlVAE (Shao et al., ICML 2020, Algorithm 1): sets β from the observed KL.

Each training step the controller reads the batch KL v̂(t) (a plain number, no gradient) and returns
the β of ``loss = recon + β·KL``::

    e(t) = v_kl - v̂(t)                           # positive: KL below the set point
    P(t) = Kp / (1 + exp(e(t)))                   # in (0, Kp): large when KL is too high
    I(t) = I(t-1) - Ki·e(t)   if β_min <= β(t-1) <= β_max, else I(t-1)   (anti-windup, see below)
    β(t) = clip(P(t) + I(t) + β_min, β_min, β_max)
    init: I(0) = 0, β(0) = 0

KL above the set point (e < 0) raises β, which pushes KL down; KL below it lowers β. The P term adds
at most Kp = 0.01, so the I term does almost all the work: with KL 10 nats too high, β rises by about
Ki·10 = 0.01 per step.

**Anti-windup reads the unclipped β(t-1), and lets I come back.** Read literally, the condition
tests β(t-1) after clipping, which always lies inside [β_min, β_max], so I would never be held (the
official CelebA code has exactly that bug). Like the official dSprites code, we test the value before
clipping, P + I + β_min. That code then freezes I for as long as this value stays outside the range,
which can lock the controller for good: one step with KL more than Kp/Ki = 10 nats under the set
point (routine early in training with a set point of 14) drives I below -Kp, after which
P + I + β_min < β_min whatever the KL does, I is never updated again and β stays at β_min for the
rest of the run. So I is held only while the error would push β further out (e > 0 below the floor,
e < 0 above the ceiling); when the error turns around, I integrates again and β leaves the bound.
The two rules differ only when the error already points back into the range, where the official
one keeps β parked at the bound. With the paper's init β(0) = 0 < β_min, the first update holds I
when KL starts below the set point.

**Defaults β_min = 1, β_max = 100.** β_min = 1 is the official dSprites value: the controller never
weights KL less than the plain VAE does. Both set points are still reachable, because on dSprites
the β = 1 VAE's KL climbs past 20 nats within the first few hundred steps: the set points 8 and 14
are approached from above, where the controller raises β (to about 4 for KL 14 and 10-12 for KL 8
over 8,000 steps; BENCHMARKS.md). A set point above what the β = 1 VAE reaches would need a lower
floor (``beta_min`` is a config value). The official code has no ceiling; β_max = 100 is far above
any β these set points need and only bounds a runaway integrator (say a network that cannot reach a
tiny set point).

**Tracking lag.** While the network still learns, the β that holds a given KL keeps rising
(a better decoder makes information in the latent cheaper). An integrator follows such a ramp with
a constant error e ≈ (dβ/dt) / Ki, so KL sits slightly above the set point until training slows
down: on dSprites about 0.3 nats at KL 8 after 8,000 steps, 0.7 after 4,000.

The controller is pure Python (no torch) and its whole state is a JSON-able dict, so a resumed run
continues the same β trajectory.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from gm.errors import GMError

DEFAULT_KP = 0.01
DEFAULT_KI = 0.001
DEFAULT_BETA_MIN = 1.0
DEFAULT_BETA_MAX = 100.0


def p_term(error: float, kp: float) -> float:
    """The non-linear P term Kp / (1 + exp(e)), computed without overflow for any finite e."""
    if error >= 0:
        q = math.exp(-error)      # e large and positive: exp(e) would overflow
        return kp * q / (1.0 + q)
    return kp / (1.0 + math.exp(error))


@dataclass
class PIController:
    """ControlVAE's PI controller (Algorithm 1); call :meth:`update` once per step with the batch KL."""

    kl_target: float
    kp: float = DEFAULT_KP
    ki: float = DEFAULT_KI
    beta_min: float = DEFAULT_BETA_MIN
    beta_max: float = DEFAULT_BETA_MAX
    # ---- state (everything :meth:`state_dict` saves) ----
    i_term: float = 0.0         # I(t)
    beta_raw: float = 0.0       # P(t) + I(t) + β_min before clipping: what anti-windup tests
    beta: float = 0.0           # β(t) after clipping: what the loss uses
    p: float = 0.0              # P(t), kept for logging
    error: float = 0.0          # e(t), kept for logging
    step: int = 0               # t: number of updates so far
    held: bool = False          # whether anti-windup held I at the last update (for logging/tests)

    def __post_init__(self) -> None:
        for name in ("kl_target", "kp", "ki", "beta_min", "beta_max"):
            if not math.isfinite(float(getattr(self, name))):
                raise GMError(f"Controller setting '{name}' must be a finite number.")
        if self.beta_min > self.beta_max:
            raise GMError(f"beta_min ({self.beta_min}) must not exceed beta_max ({self.beta_max}).")

    def update(self, kl: float) -> float:
        """Feed the KL observed at this step; returns β(t).

        A non-finite KL leaves the state untouched and returns the previous β: the training loop
        reports the divergence from the logged KL, and the controller stays resumable.
        """
        kl = float(kl)
        if not math.isfinite(kl):
            return self.beta
        error = self.kl_target - kl
        p = p_term(error, self.kp)
        # Anti-windup: I(t) = I(t-1) while β(t-1) lies outside [β_min, β_max] and this error would
        # push it further out; integrating is allowed again as soon as the error turns around.
        pushing_out = ((self.beta_raw < self.beta_min and error > 0)
                       or (self.beta_raw > self.beta_max and error < 0))
        self.held = pushing_out
        if not pushing_out:
            self.i_term -= self.ki * error
        self.beta_raw = p + self.i_term + self.beta_min
        self.beta = min(max(self.beta_raw, self.beta_min), self.beta_max)
        self.p, self.error = p, error
        self.step += 1
        return self.beta

    def state_dict(self) -> dict[str, Any]:
        """The controller's whole state as plain JSON values."""
        return {"i_term": self.i_term, "beta_raw": self.beta_raw, "beta": self.beta, "p": self.p,
                "error": self.error, "step": self.step, "held": self.held}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        try:
            self.i_term = float(state["i_term"])
            self.beta_raw = float(state["beta_raw"])
            self.beta = float(state["beta"])
            self.p = float(state.get("p", 0.0))
            self.error = float(state.get("error", 0.0))
            self.step = int(state["step"])
            self.held = bool(state.get("held", False))
        except (KeyError, TypeError, ValueError) as exc:
            raise GMError(f"The checkpoint's controller state is damaged ({exc!r}); resume from an "
                          f"earlier checkpoint.") from None

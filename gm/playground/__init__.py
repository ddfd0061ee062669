"""A 2-D GAN playground: the image GANs' losses on toy distributions, drawn live.

What a page needs:

* ``DISTRIBUTIONS`` / ``get_distribution(name)``: ring8, grid25, two_moons, spiral, each a
  ``ToyDistribution`` with ``sample(n, generator)``, ``modes``, ``std``, ``extent``, ``about``;
* ``PLAYGROUND_LOSSES``: ns, wgan_clip, wgan_gp, hinge, ls (rows of ``gm.losses``'s table plus
  clipping or a gradient penalty), each with its reference optimizer recipe;
* ``PlaygroundConfig`` (``PlaygroundConfig.for_loss("wgan_gp", seed=1)`` applies the recipe);
* ``Playground(config)``: ``step(n)``, ``snapshot()`` -> ``Snapshot`` (samples, decision surface,
  gradient field, loss and coverage history), ``evaluate()``, ``update(**live)``, ``reset(config)``;
* ``Runner(playground, steps_per_second)``: a background thread with pause, resume, step mode and
  speed;
* ``evaluate`` / ``mode_coverage`` / ``Coverage``: modes covered and high-quality share, counted as
  VEEGAN counts them on Unrolled GAN's mixtures (``gm.playground.metrics`` has the exact rule),
  and, for the curves, quality and the share of the curve covered.

Nothing here imports Streamlit.
"""

from gm.playground.distributions import DISTRIBUTIONS, ToyDistribution, get_distribution
from gm.playground.metrics import (
    EVAL_SAMPLES,
    Coverage,
    evaluate,
    manifold_quality,
    mode_coverage,
    support_coverage,
)
from gm.playground.runner import Runner
from gm.playground.session import (
    LIVE_FIELDS,
    PLAYGROUND_LOSSES,
    Playground,
    PlaygroundConfig,
    PlaygroundLoss,
    Snapshot,
)

__all__ = [
    "DISTRIBUTIONS", "EVAL_SAMPLES", "LIVE_FIELDS", "PLAYGROUND_LOSSES", "Coverage", "Playground",
    "PlaygroundConfig", "PlaygroundLoss", "Runner", "Snapshot", "ToyDistribution", "evaluate",
    "get_distribution", "manifold_quality", "mode_coverage", "support_coverage",
]

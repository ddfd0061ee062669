"""Pure loss functions. Each takes tensors and returns a scalar tensor (or a per-item tensor)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F


# ---- VAE family ---------------------------------------------------------------------------
def bernoulli_recon(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Bernoulli negative log-likelihood, summed over pixels, averaged over the batch."""
    return F.binary_cross_entropy_with_logits(logits, target, reduction="sum") / target.shape[0]


def gaussian_kl_per_dim(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(q(z|x) || N(0, I)) per latent dimension, averaged over the batch (shape: latent_dim)."""
    return (-0.5 * (1 + logvar - mu.pow(2) - logvar.exp())).mean(dim=0)


def gaussian_kl(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """Closed-form Gaussian KL summed over latent dimensions, averaged over the batch."""
    return gaussian_kl_per_dim(mu, logvar).sum()


# ---- GAN family ---------------------------------------------------------------------------
# Discriminator outputs are logits (BCE models) or unbounded scores (Wasserstein, hinge); every
# function averages over the batch.
def ns_d_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor, real_target: float = 1.0) -> torch.Tensor:
    """L_D = -mean log D(x) - mean log(1 - D(G(z))) with D = sigmoid(logit), from logits for stability.

    real_target < 1 is one-sided label smoothing (Salimans et al. 2016: 0.9); fakes keep target 0.
    """
    real = F.binary_cross_entropy_with_logits(real_logits, torch.full_like(real_logits, real_target))
    fake = F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits))
    return real + fake


def ns_g_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """Non-saturating generator loss L_G = -mean log D(G(z))."""
    return F.binary_cross_entropy_with_logits(fake_logits, torch.ones_like(fake_logits))


def wasserstein_d_loss(real_scores: torch.Tensor, fake_scores: torch.Tensor) -> torch.Tensor:
    """Critic loss mean f(G(z)) - mean f(x): its negative estimates the Wasserstein-1 distance."""
    return fake_scores.mean() - real_scores.mean()


def wasserstein_g_loss(fake_scores: torch.Tensor) -> torch.Tensor:
    return -fake_scores.mean()


def gradient_penalty(critic, real: torch.Tensor, fake: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """WGAN-GP penalty mean (||grad_x f(x_hat)||_2 - 1)^2 at x_hat = eps * real + (1 - eps) * fake.

    `eps` holds one uniform number per image (shape N, broadcast over the rest); the graph is kept
    so the penalty can be back-propagated into the critic.
    """
    eps = eps.view(-1, *([1] * (real.dim() - 1)))
    x_hat = (eps * real.detach() + (1 - eps) * fake.detach()).requires_grad_(True)
    scores = critic(x_hat)
    (grad,) = torch.autograd.grad(scores.sum(), x_hat, create_graph=True)
    return (grad.flatten(1).norm(2, dim=1) - 1).pow(2).mean()


def hinge_d_loss(real_scores: torch.Tensor, fake_scores: torch.Tensor) -> torch.Tensor:
    """Hinge loss of SN-GAN / SSGAN (Mimicry): mean relu(1 - D(x)) + mean relu(1 + D(G(z)))."""
    return F.relu(1 - real_scores).mean() + F.relu(1 + fake_scores).mean()


def hinge_g_loss(fake_scores: torch.Tensor) -> torch.Tensor:
    return -fake_scores.mean()


def rotation_loss(rot_logits: torch.Tensor, rot_labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of the 4-way rotation head (logits in, no softmax before)."""
    return F.cross_entropy(rot_logits, rot_labels)


def class_loss(class_logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """-mean log P(C = c | x) from class logits: cross_entropy applies the only softmax."""
    return F.cross_entropy(class_logits, labels)


def acgan_d_loss(real_src: torch.Tensor, fake_src: torch.Tensor, real_cls: torch.Tensor,
                 fake_cls: torch.Tensor, real_labels: torch.Tensor, fake_labels: torch.Tensor,
                 real_target: float = 1.0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """D maximises L_S + L_C, i.e. minimises (total, source part, class part) below.

    L_S = E log P(S=real | x_real) + E log P(S=fake | x_fake);
    L_C = E log P(C=c | x_real) + E log P(C=c | x_fake).
    """
    source = ns_d_loss(real_src, fake_src, real_target)
    cls = class_loss(real_cls, real_labels) + class_loss(fake_cls, fake_labels)
    return source + cls, source, cls


def acgan_g_loss(fake_src: torch.Tensor, fake_cls: torch.Tensor,
                 fake_labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """G maximises L_C - L_S; its source part in the non-saturating form -E log P(S=real | G(z, c)).

    Returns (total, source part, class part).
    """
    source = ns_g_loss(fake_src)
    cls = class_loss(fake_cls, fake_labels)
    return source + cls, source, cls


def ls_d_loss(real_out: torch.Tensor, fake_out: torch.Tensor, real_target: float = 1.0) -> torch.Tensor:
    """LSGAN (Mao et al. 2017) with a = 0, b = c = 1: 1/2 E(D(x) - b)^2 + 1/2 E(D(G(z)) - a)^2.

    D's output is a plain number regressed to 1 for reals and 0 for fakes; real_target < 1 smooths
    b the way one-sided label smoothing does for the BCE loss.
    """
    return 0.5 * (real_out - real_target).pow(2).mean() + 0.5 * fake_out.pow(2).mean()


def ls_g_loss(fake_out: torch.Tensor) -> torch.Tensor:
    """LSGAN generator loss 1/2 E(D(G(z)) - c)^2 with c = 1."""
    return 0.5 * (fake_out - 1).pow(2).mean()


# ---- the adversarial loss table ------------------------------------------------------------------
@dataclass(frozen=True)
class AdversarialLoss:
    """One row of the table every GAN's `loss` option picks from.

    ``d(real_out, fake_out, real_target)`` and ``g(fake_out)`` take D's raw outputs. How the logged
    ``d_real``/``d_fake`` read: ``report="prob"`` logs mean sigmoid(D) (a probability for BCE
    logits; kept for hinge, whose runs have always logged it), ``"raw"`` the mean raw output (a
    critic score for Wasserstein, the regression output for least squares). ``threshold``: D's
    decision boundary for ``d_acc`` (reals above, fakes below); None when there is none.
    """

    name: str
    d: Callable[[torch.Tensor, torch.Tensor, float], torch.Tensor]
    g: Callable[[torch.Tensor], torch.Tensor]
    report: str
    threshold: float | None
    about: str
    estimates_distance: bool = False   # -D's loss estimates a distance between the distributions (w_dist)


ADVERSARIAL_LOSSES: dict[str, AdversarialLoss] = {loss.name: loss for loss in (
    AdversarialLoss("ns", ns_d_loss, ns_g_loss, "prob", 0.0,
                    "non-saturating BCE (Goodfellow et al. 2014): D outputs a logit"),
    AdversarialLoss("hinge", lambda r, f, t=1.0: hinge_d_loss(r, f), hinge_g_loss, "prob", 0.0,
                    "hinge (SN-GAN, SSGAN): relu(1 - D(x)) + relu(1 + D(G(z)))"),
    AdversarialLoss("wasserstein", lambda r, f, t=1.0: wasserstein_d_loss(r, f), wasserstein_g_loss,
                    "raw", None, "Wasserstein (Arjovsky et al. 2017): D is a critic; pair it with "
                                 "weight clipping or a gradient penalty", estimates_distance=True),
    AdversarialLoss("ls", ls_d_loss, ls_g_loss, "raw", 0.5,
                    "least squares (Mao et al. 2017): a = 0, b = c = 1"),
)}

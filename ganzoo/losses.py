"""Adversarial losses chosen by name in any plugin's config, the gradient penalties (WGAN-GP, R1, R2) and
StyleGAN2's path lengths (`path_lengths`), and the losses on a network's features: feature matching on the
discriminator's (`feature_matching`) and the semantic consistency of a frozen classifier's predictions
(`semantic_consistency`).

Each loss takes discriminator logits and returns a scalar computed in float32, so that bf16/fp16 autocast never
rounds the loss itself. `discriminator_loss(name, real, fake)` and `generator_loss(name, fake, real)` dispatch by
name; the relativistic losses (`RELATIVISTIC_LOSSES`) compare real and fake logits, so their generator loss needs
the real logits too (`needs_real_logits(name)`).

The penalties differentiate the discriminator with respect to its input inside the loss. Under fp16 with a
GradScaler they follow PyTorch's AMP recipe: the inner gradient is taken of the *scaled* output (small fp16
gradients would otherwise flush to zero) and unscaled before the norm; if it overflowed, the penalty is inf
and the engine's GradScaler skips the step and lowers the scale, as for any overflow. The norm is always taken
in float32, so bf16 rounding of the gradient entries does not swamp (||g|| - 1)^2.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F

from ganzoo.plugin import ADVERSARIAL_LOSSES, RELATIVISTIC_LOSSES

PENALTIES = ("r1", "r2", "wgan-gp")


def _f32(*tensors: torch.Tensor) -> list[torch.Tensor]:
    return [t.float() for t in tensors]


def d_non_saturating(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """-log D(x) - log(1 - D(G(z))) with D = sigmoid(logits) (Goodfellow et al. 2014)."""
    real, fake = _f32(real, fake)
    return F.softplus(-real).mean() + F.softplus(fake).mean()


def g_non_saturating(fake: torch.Tensor) -> torch.Tensor:
    """-log D(G(z)): the generator loss that does not saturate when D is confident."""
    return F.softplus(-fake.float()).mean()


def g_minimax(fake: torch.Tensor) -> torch.Tensor:
    """log(1 - D(G(z))): the original minimax generator loss (saturates early in training)."""
    return -F.softplus(fake.float()).mean()


def d_hinge(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """max(0, 1 - D(x)) + max(0, 1 + D(G(z))) (Lim & Ye 2017; Miyato et al. 2018)."""
    real, fake = _f32(real, fake)
    return F.relu(1.0 - real).mean() + F.relu(1.0 + fake).mean()


def g_hinge(fake: torch.Tensor) -> torch.Tensor:
    """-D(G(z)) for the hinge loss."""
    return -fake.float().mean()


def d_least_squares(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """0.5 (D(x) - 1)^2 + 0.5 D(G(z))^2 (LSGAN, Mao et al. 2017, with a = 0, b = c = 1)."""
    real, fake = _f32(real, fake)
    return 0.5 * ((real - 1.0) ** 2).mean() + 0.5 * (fake**2).mean()


def g_least_squares(fake: torch.Tensor) -> torch.Tensor:
    """0.5 (D(G(z)) - 1)^2 for LSGAN."""
    return 0.5 * ((fake.float() - 1.0) ** 2).mean()


def d_wasserstein(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """D(G(z)) - D(x): the critic loss of WGAN (Arjovsky et al. 2017); pair it with a penalty."""
    real, fake = _f32(real, fake)
    return fake.mean() - real.mean()


def g_wasserstein(fake: torch.Tensor) -> torch.Tensor:
    """-D(G(z)) for WGAN."""
    return -fake.float().mean()


def d_relativistic(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """Relativistic pairing (RpGAN; Jolicoeur-Martineau 2019, the loss of R3GAN, Huang et al. 2024):
    softplus(D(G(z)) - D(x)) over pairs (real i, fake i): D learns that each real sample is more real than its
    fake partner. Pair it with R1 and R2 (`gradient_penalty`)."""
    real, fake = _f32(real, fake)
    return F.softplus(fake - real).mean()


def g_relativistic(fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """softplus(D(x) - D(G(z))): the generator's side of relativistic pairing."""
    real, fake = _f32(real, fake)
    return F.softplus(real - fake).mean()


def d_relativistic_average(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """Relativistic average (RaGAN; Jolicoeur-Martineau 2019): each real sample against the mean fake logit and
    each fake one against the mean real logit: softplus(-(D(x) - E D(G(z)))) + softplus(D(G(z)) - E D(x))."""
    real, fake = _f32(real, fake)
    return F.softplus(fake.mean() - real).mean() + F.softplus(fake - real.mean()).mean()


def g_relativistic_average(fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """The generator's side of RaGAN: the discriminator's loss with real and fake exchanged."""
    return d_relativistic_average(fake, real)


_D = {
    "non-saturating": d_non_saturating,
    "minimax": d_non_saturating,
    "hinge": d_hinge,
    "least-squares": d_least_squares,
    "wasserstein": d_wasserstein,
    "relativistic": d_relativistic,
    "relativistic-average": d_relativistic_average,
}
_G = {
    "non-saturating": g_non_saturating,
    "minimax": g_minimax,
    "hinge": g_hinge,
    "least-squares": g_least_squares,
    "wasserstein": g_wasserstein,
}
_G_RELATIVISTIC = {"relativistic": g_relativistic, "relativistic-average": g_relativistic_average}


def _check(name: str) -> None:
    if name not in ADVERSARIAL_LOSSES + RELATIVISTIC_LOSSES:
        accepted = ", ".join(ADVERSARIAL_LOSSES + RELATIVISTIC_LOSSES)
        raise ValueError(f"unknown adversarial loss {name!r}; accepted: {accepted}")


def needs_real_logits(name: str) -> bool:
    """Whether the named loss's generator side compares with the real logits (the relativistic losses)."""
    _check(name)
    return name in RELATIVISTIC_LOSSES


def discriminator_loss(name: str, real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """The discriminator's loss of the named adversarial loss."""
    _check(name)
    return _D[name](real_logits, fake_logits)


def generator_loss(name: str, fake_logits: torch.Tensor, real_logits: torch.Tensor | None = None) -> torch.Tensor:
    """The generator's loss of the named adversarial loss; the relativistic ones need `real_logits` (D's scores of
    a real batch, which the generator's update draws with `needs_data=True`)."""
    _check(name)
    if name in RELATIVISTIC_LOSSES:
        if real_logits is None:
            raise ValueError(f"the {name} generator loss compares with the real logits; pass real_logits")
        return _G_RELATIVISTIC[name](fake_logits, real_logits.detach())
    return _G[name](fake_logits)


def input_gradients(outputs: torch.Tensor, inputs: torch.Tensor, scaler: Any = None) -> torch.Tensor:
    """Per-sample d(output_i)/d(input_i) in float32, with a graph for double backprop.

    Taken as N * d(mean of outputs)/d(inputs): under an fp16 scaler the upstream gradient of each sample is then
    scale / N (the default scale 2^16 alone would overflow fp16), and the result is unscaled before returning.
    """
    mean = outputs.float().mean()
    scale = scaler.get_scale() if scaler is not None and scaler.is_enabled() else 1.0
    (grad,) = torch.autograd.grad(mean * scale if scale != 1.0 else mean, inputs, create_graph=True)
    return grad.float() * (len(outputs) / scale)


def gradient_penalty(
    discriminator: Callable[..., torch.Tensor],
    inputs: torch.Tensor,
    kind: str = "r1",
    *,
    outputs: torch.Tensor | None = None,
    extra: Sequence[Any] = (),
    fake: torch.Tensor | None = None,
    scaler: Any = None,
    target: float = 1.0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """A gradient penalty on the discriminator's input, unweighted (multiply by its weight):

    - `r1` (Mescheder et al. 2018): E ||grad D(x)||^2 on real `inputs`; the usual weight is gamma / 2.
    - `r2`: the same on generated `inputs` (R3GAN, Huang et al. 2024, pairs R1 and R2 with relativistic pairing).
    - `wgan-gp` (Gulrajani et al. 2017): E (||grad D(x_hat)||_2 - target)^2 on x_hat = e x + (1 - e) G(z),
      e ~ U[0, 1] per sample (drawn from `generator`), with real `inputs` and `fake`; the paper's weight is 10.

    `discriminator(x, *extra)` scores inputs (`extra`: e.g. the labels of a conditional D, no closure needed).
    For r1/r2, `outputs` reuses the caller's forward pass: pass the scores D already gave `inputs`, which must
    then have been made with `requires_grad_(True)` (float32) before that forward; otherwise D is run again on a
    detached float32 copy. `scaler` is `ctx.scaler` (fp16: see the module docstring).
    """
    if kind not in PENALTIES:
        raise ValueError(f"unknown gradient penalty {kind!r}; accepted: {', '.join(PENALTIES)}")
    if kind == "wgan-gp":
        if fake is None or outputs is not None:
            raise ValueError("the wgan-gp penalty takes real inputs and fake=..., and scores the mixes itself")
        shape = (len(inputs),) + (1,) * (inputs.ndim - 1)
        mix = torch.rand(shape, device=inputs.device, generator=generator)
        mixed = (mix * inputs.detach().float() + (1 - mix) * fake.detach().float()).requires_grad_(True)
        grad = input_gradients(discriminator(mixed, *extra), mixed, scaler)
        return (grad.flatten(1).square().sum(dim=1).sqrt() - target).square().mean()
    if outputs is None:
        inputs = inputs.detach().float().requires_grad_(True)
        outputs = discriminator(inputs, *extra)
    elif not inputs.requires_grad:
        raise ValueError(f"{kind} with outputs=... needs the inputs made with requires_grad_(True) before D saw them")
    grad = input_gradients(outputs, inputs, scaler)
    return grad.flatten(1).square().sum(dim=1).mean()


def path_lengths(images: torch.Tensor, ws: torch.Tensor, scaler: Any = None) -> torch.Tensor:
    """Per-sample path lengths of a style-based generator (Karras et al. 2020, section 3.2): ||J_w^T y||_2 with
    y ~ N(0, I) / sqrt(H W) drawn from torch's global generator, i.e. how far a random image-space direction
    pulls the styles. `ws` (N, num_ws, w_dim) must be in the graph that made `images`; the squared lengths are
    summed over w_dim and averaged over the layers. Float32, with a graph for backprop; `scaler` as in
    `input_gradients` (the inner gradient is taken scaled under fp16, then unscaled)."""
    height, width = images.shape[-2:]
    direction = torch.randn(images.shape, device=images.device) / (height * width) ** 0.5
    scale = scaler.get_scale() if scaler is not None and scaler.is_enabled() else 1.0
    projected = (images.float() * direction).sum()
    (grad,) = torch.autograd.grad(projected * scale if scale != 1.0 else projected, ws, create_graph=True)
    return (grad.float() / scale).square().sum(dim=2).mean(dim=1).sqrt()


def feature_matching(real: list[torch.Tensor], fake: list[torch.Tensor]) -> torch.Tensor:
    """Feature matching (pix2pixHD's, Wang et al. 2018) on the discriminator's stage outputs: per stage, the mean
    absolute difference of the features of generated and real images divided by the mean magnitude of the real
    ones (the discriminator has no normalisation, so its features may grow as it trains: relative to their scale
    the term keeps its weight), averaged over the stages; in float32, the real features being constants. Zero
    exactly when the features agree."""
    terms = []
    for r, f in zip(real, fake, strict=True):
        r = r.detach().float()
        terms.append((f.float() - r).abs().mean() / r.abs().mean().clamp_min(1e-6))
    return torch.stack(terms).mean()


def semantic_consistency(source_logits: torch.Tensor, translated_logits: torch.Tensor) -> torch.Tensor:
    """CyCADA's semantic consistency (Hoffman et al. 2018) as a divergence: the cross-entropy between a frozen
    classifier's predicted distribution on the source images (the target, a constant) and its prediction on their
    translations, minus the target's own entropy, i.e. KL(p(x) || p(G(x))) averaged over the batch. Zero exactly
    when the predictions agree (a mapping the classifier cannot tell from the identity), positive when the class
    changes; float32."""
    target = torch.log_softmax(source_logits.detach().float(), dim=1)
    predicted = torch.log_softmax(translated_logits.float(), dim=1)
    return F.kl_div(predicted, target, reduction="batchmean", log_target=True)

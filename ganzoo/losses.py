"""Adversarial losses chosen by name in any plugin's config, and the gradient penalties (WGAN-GP, R1).

Each loss takes discriminator logits and returns a scalar computed in float32, so that bf16/fp16 autocast never
rounds the loss itself. `discriminator_loss(name, real, fake)` and `generator_loss(name, fake)` dispatch by name.

The penalties differentiate the discriminator with respect to its input inside the loss. Under fp16 with a
GradScaler they follow PyTorch's AMP recipe: the inner gradient is taken of the *scaled* output (small fp16
gradients would otherwise flush to zero) and unscaled before the norm; if it overflowed, the penalty is inf
and the engine's GradScaler skips the step and lowers the scale, as for any overflow. The norm is always taken
in float32, so bf16 rounding of the gradient entries does not swamp (||g|| - 1)^2.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

from ganzoo.plugin import ADVERSARIAL_LOSSES


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


_D = {
    "non-saturating": d_non_saturating,
    "minimax": d_non_saturating,
    "hinge": d_hinge,
    "least-squares": d_least_squares,
    "wasserstein": d_wasserstein,
}
_G = {
    "non-saturating": g_non_saturating,
    "minimax": g_minimax,
    "hinge": g_hinge,
    "least-squares": g_least_squares,
    "wasserstein": g_wasserstein,
}


def _check(name: str) -> None:
    if name not in ADVERSARIAL_LOSSES:
        raise ValueError(f"unknown adversarial loss {name!r}; accepted: {', '.join(ADVERSARIAL_LOSSES)}")


def discriminator_loss(name: str, real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """The discriminator's loss of the named adversarial loss."""
    _check(name)
    return _D[name](real_logits, fake_logits)


def generator_loss(name: str, fake_logits: torch.Tensor) -> torch.Tensor:
    """The generator's loss of the named adversarial loss."""
    _check(name)
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
    critic: Callable[[torch.Tensor], torch.Tensor],
    real: torch.Tensor,
    fake: torch.Tensor,
    scaler: Any = None,
    target: float = 1.0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """WGAN-GP (Gulrajani et al. 2017): E[(||grad D(x_hat)||_2 - target)^2], x_hat = e x + (1 - e) G(z), e ~ U[0, 1]
    per sample. Unweighted: multiply by lambda (10 in the paper). `critic` maps images to scores (close over
    labels for a conditional critic); `scaler` is `ctx.scaler`."""
    shape = (len(real),) + (1,) * (real.ndim - 1)
    mix = torch.rand(shape, device=real.device, generator=generator)
    mixed = (mix * real.detach().float() + (1 - mix) * fake.detach().float()).requires_grad_(True)
    grad = input_gradients(critic(mixed), mixed, scaler)
    norms = grad.flatten(1).square().sum(dim=1).sqrt()
    return (norms - target).square().mean()


def r1_penalty(
    discriminator: Callable[[torch.Tensor], torch.Tensor], real: torch.Tensor, scaler: Any = None
) -> torch.Tensor:
    """R1 (Mescheder et al. 2018): E[||grad D(x)||_2^2] on real samples. Unweighted: multiply by gamma / 2."""
    real = real.detach().float().requires_grad_(True)
    grad = input_gradients(discriminator(real), real, scaler)
    return grad.flatten(1).square().sum(dim=1).mean()

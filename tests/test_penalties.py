"""Gradient penalties (WGAN-GP, R1, R2): hand-computed values, and agreement with fp32 under bf16 autocast and under
fp16 autocast with a GradScaler (PyTorch's AMP recipe: inner gradient of the scaled output, unscaled before the
norm). torch.amp runs both on the CPU; on a CUDA machine the same checks run there too."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from ganzoo import losses

DEVICES = ["cpu", *(["cuda"] if torch.cuda.is_available() else [])]


class Linear(nn.Module):
    """D(x) = sum(w * x): its input gradient is w everywhere."""

    def __init__(self, weight: torch.Tensor) -> None:
        super().__init__()
        self.weight = nn.Parameter(weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x * self.weight).flatten(1).sum(1)


def test_gradient_penalty_of_a_linear_critic_by_hand():
    weight = torch.tensor([[[[3.0, 4.0]]]])  # ||w|| = 5 for every interpolate: (5 - 1)^2 = 16
    real, fake = torch.randn(6, 1, 1, 2), torch.randn(6, 1, 1, 2)
    penalty = losses.gradient_penalty(Linear(weight), real, "wgan-gp", fake=fake)
    assert penalty.dtype == torch.float32
    assert penalty.item() == pytest.approx(16.0)
    assert losses.gradient_penalty(Linear(weight / 5), real, "wgan-gp", fake=fake).item() == pytest.approx(
        0.0, abs=1e-12
    )


def test_gradient_penalty_gradient_by_hand():
    critic = Linear(torch.tensor([[[[3.0, 4.0]]]]))
    losses.gradient_penalty(critic, torch.randn(4, 1, 1, 2), "wgan-gp", fake=torch.randn(4, 1, 1, 2)).backward()
    # d/dw (||w|| - 1)^2 = 2 (||w|| - 1) w / ||w|| = 2 * 4 * (3, 4) / 5
    assert critic.weight.grad.flatten().tolist() == pytest.approx([4.8, 6.4])


def test_penalty_interpolates_between_real_and_fake():
    seen = []

    def critic(x: torch.Tensor) -> torch.Tensor:
        seen.append(x.detach())
        return x.flatten(1).sum(1)

    real, fake = torch.zeros(500, 1, 1, 1), torch.ones(500, 1, 1, 1)
    losses.gradient_penalty(critic, real, "wgan-gp", fake=fake, generator=torch.Generator().manual_seed(0))
    mixed = seen[0].flatten()
    assert mixed.min() >= 0 and mixed.max() <= 1 and abs(mixed.mean() - 0.5) < 0.05  # e ~ U[0, 1] per sample
    assert len(mixed.unique()) == 500


def test_r1_penalty_by_hand():
    real = torch.tensor([[1.0, 2.0], [0.0, 3.0]])
    # D(x) = 0.5 ||x||^2 has gradient x: E ||x||^2 = (5 + 9) / 2 = 7
    assert losses.gradient_penalty(lambda x: 0.5 * x.square().sum(1), real, "r1").item() == pytest.approx(7.0)
    weight = torch.tensor([[3.0, 4.0]])
    assert losses.gradient_penalty(Linear(weight), real, "r1").item() == pytest.approx(25.0)


def small_critic(scale: float = 1.0) -> nn.Module:
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1),
        nn.LeakyReLU(0.2),
        nn.Conv2d(16, 16, 4, stride=2, padding=1),
        nn.LeakyReLU(0.2),
        nn.Flatten(),
        nn.Linear(16 * 8 * 8, 1),
    )

    class Scaled(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = net

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.net(x).flatten() * scale

    return Scaled()


def penalty_and_grads(kind: str, precision: str, device: str, scale: float = 1.0) -> tuple[float, torch.Tensor]:
    """The penalty on fixed inputs and the critic's parameter gradients (unscaled), at one precision."""
    critic = small_critic(scale).to(device)
    generator = torch.Generator().manual_seed(1)
    real = torch.rand(16, 1, 16, 16, generator=generator).to(device) * 2 - 1
    fake = torch.rand(16, 1, 16, 16, generator=generator).to(device) * 2 - 1
    mix_generator = torch.Generator(device=device).manual_seed(2)
    scaler = torch.amp.GradScaler(device, enabled=precision == "fp16")
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
    with torch.autocast(device, dtype=dtype or torch.float32, enabled=dtype is not None):
        if kind == "gp":
            penalty = losses.gradient_penalty(
                critic, real, "wgan-gp", fake=fake, scaler=scaler, generator=mix_generator
            )
        else:
            penalty = losses.gradient_penalty(critic, real, "r1", scaler=scaler)
    scaler.scale(penalty).backward()
    # (parameters the input gradient does not depend on, like the last bias, get no gradient: count them as 0)
    grads = torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).flatten() for p in critic.parameters()])
    grads = grads.float().cpu()
    return penalty.item(), grads / scaler.get_scale() if scaler.is_enabled() else grads


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("kind", ["gp", "r1"])
@pytest.mark.parametrize(("precision", "tolerance"), [("bf16", 3e-2), ("fp16", 5e-3)])
def test_penalties_under_autocast_match_fp32(device, kind, precision, tolerance):
    """Stated tolerance: relative error of the penalty and of the gradient vector's norm within 3% (bf16, 8-bit
    mantissa) or 0.5% (fp16, 11-bit), and the gradient direction within cos > 0.999."""
    reference, reference_grads = penalty_and_grads(kind, "fp32", device)
    value, grads = penalty_and_grads(kind, precision, device)
    assert math.isfinite(value) and torch.isfinite(grads).all()
    assert value == pytest.approx(reference, rel=tolerance)
    assert float(grads.norm()) == pytest.approx(float(reference_grads.norm()), rel=tolerance)
    assert torch.nn.functional.cosine_similarity(grads, reference_grads, dim=0) > 0.999


@pytest.mark.parametrize("device", DEVICES)
def test_fp16_scaling_keeps_tiny_input_gradients(device):
    """A critic whose input gradients are ~1e-9 (below fp16's smallest subnormal, 6e-8): unscaled they flush to
    zero in fp16 and the penalty reads (0 - 1)^2 = 1; the scaled recipe keeps them."""
    reference, _ = penalty_and_grads("r1", "fp32", device, scale=1e-6)
    recipe, _ = penalty_and_grads("r1", "fp16", device, scale=1e-6)
    assert recipe == pytest.approx(reference, rel=5e-3)
    critic = small_critic(1e-6).to(device)
    real = torch.rand(16, 1, 16, 16, device=device)
    with torch.autocast(device, dtype=torch.float16):
        naive = losses.gradient_penalty(critic, real, "r1")  # no scaler: the fp16 backward underflows
    assert naive.item() < 0.5 * reference


def test_r2_is_r1_on_generated_inputs_and_takes_extra_d_inputs():
    """R2 is the same squared input-gradient norm on fakes; `extra` reaches a conditional D without a closure."""

    def conditional(x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return (x.flatten(1) * (labels.float() + 1).unsqueeze(1)).sum(1)  # gradient (label + 1) everywhere

    fake, labels = torch.randn(3, 1, 1, 2), torch.tensor([0, 1, 2])
    r2 = losses.gradient_penalty(conditional, fake, "r2", extra=(labels,))
    assert r2.item() == pytest.approx((2 * 1 + 2 * 4 + 2 * 9) / 3)  # E ||(l + 1, l + 1)||^2


def test_the_penalty_reuses_the_callers_forward_pass():
    calls = []

    def d(x: torch.Tensor) -> torch.Tensor:
        calls.append(1)
        return 0.5 * x.flatten(1).square().sum(1)

    real = torch.tensor([[1.0, 2.0], [0.0, 3.0]]).requires_grad_(True)
    logits = d(real)  # the caller's own forward pass, e.g. for the adversarial loss
    penalty = losses.gradient_penalty(d, real, "r1", outputs=logits)
    assert len(calls) == 1 and penalty.item() == pytest.approx(7.0)
    (penalty + logits.mean()).backward()  # one graph serves the loss and the penalty
    with pytest.raises(ValueError, match="needs the inputs made with requires_grad_"):
        losses.gradient_penalty(d, real.detach(), "r1", outputs=d(real.detach()))


def test_unknown_penalties_and_a_wgan_gp_without_fakes_are_refused():
    with pytest.raises(ValueError, match=r"unknown gradient penalty 'r3'; accepted: r1, r2, wgan-gp"):
        losses.gradient_penalty(lambda x: x.sum(1), torch.randn(2, 2), "r3")
    with pytest.raises(ValueError, match="takes real inputs and fake="):
        losses.gradient_penalty(lambda x: x.sum(1), torch.randn(2, 2), "wgan-gp")


class _FixedScale:
    """A GradScaler stand-in with a large fixed scale (what fp16 training hands a loss as ctx.scaler)."""

    def is_enabled(self) -> bool:
        return True

    def get_scale(self) -> float:
        return 2.0**16


def test_path_lengths_of_a_linear_generator_by_hand():
    """images = w A per sample: J^T y = A y, so the path length is ||A y|| for the drawn direction y; the same
    under a scaler (scaled, then unscaled), averaged over the layers, and differentiable in A."""
    height = width = 4
    a = torch.randn(3, height * width, requires_grad=True)
    w = torch.randn(5, 3)
    ws = w[:, None, :].expand(-1, 2, -1).clone().requires_grad_(True)  # two layers of the same style

    def generate(ws: torch.Tensor) -> torch.Tensor:
        return (ws.mean(dim=1) @ a).view(5, 1, height, width)

    torch.manual_seed(0)
    lengths = losses.path_lengths(generate(ws), ws)
    torch.manual_seed(0)
    direction = torch.randn(5, 1, height, width).flatten(1) / math.sqrt(height * width)
    # d(sum image * y)/d ws[:, layer] = (A y) / 2 for each of the two layers; summed over w_dim, meaned over layers
    expected = ((direction @ a.detach().T) / 2).square().sum(dim=1).sqrt()
    assert torch.allclose(lengths, expected, atol=1e-6)
    torch.manual_seed(0)
    scaled = losses.path_lengths(generate(ws), ws, _FixedScale())
    assert torch.allclose(scaled, lengths, rtol=1e-6)
    lengths.sum().backward()
    assert a.grad is not None and a.grad.abs().sum() > 0

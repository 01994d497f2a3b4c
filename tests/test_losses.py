"""Adversarial losses against values worked out by hand.

Logits used throughout: real = [2, -1], fake = [-2, 0.5]. softplus(x) = log(1 + e^x):
    softplus(-2)  = 0.12692801104297250
    softplus(0.5) = 0.97407698418010670
    softplus(1)   = 1.31326168751822280
    softplus(2)   = 2.12692801104297270
    softplus(-0.5) = softplus(0.5) - 0.5 = 0.47407698418010670
"""

from __future__ import annotations

import math

import pytest
import torch

from ganzoo import losses
from ganzoo.plugin import ADVERSARIAL_LOSSES, RELATIVISTIC_LOSSES

REAL = torch.tensor([2.0, -1.0])
FAKE = torch.tensor([-2.0, 0.5])

SP_M2, SP_05, SP_1, SP_2, SP_M05 = (
    0.1269280110429725,
    0.9740769841801067,
    1.3132616875182228,
    2.1269280110429727,
    (0.4740769841801067),
)

# D: mean softplus(-real) + mean softplus(fake) = (sp(-2) + sp(1)) / 2 + (sp(-2) + sp(0.5)) / 2
D_NON_SATURATING = (SP_M2 + SP_1) / 2 + (SP_M2 + SP_05) / 2
EXPECTED_D = {
    "non-saturating": D_NON_SATURATING,  # 1.2705973468921372
    "minimax": D_NON_SATURATING,  # the minimax game has the same discriminator loss
    # mean relu(1 - [2, -1]) + mean relu(1 + [-2, 0.5]) = mean [0, 2] + mean [0, 1.5]
    "hinge": 1.0 + 0.75,
    # 0.5 mean ([2, -1] - 1)^2 + 0.5 mean [-2, 0.5]^2 = 0.5 * 2.5 + 0.5 * 2.125
    "least-squares": 1.25 + 1.0625,
    # mean fake - mean real = -0.75 - 0.5
    "wasserstein": -1.25,
}
EXPECTED_G = {
    # mean softplus(-fake) = (sp(2) + sp(-0.5)) / 2
    "non-saturating": (SP_2 + SP_M05) / 2,  # 1.3005024976115397
    # mean log(1 - sigmoid(fake)) = -mean softplus(fake) = -(sp(-2) + sp(0.5)) / 2
    "minimax": -(SP_M2 + SP_05) / 2,  # -0.5505024976115396
    # -mean fake
    "hinge": 0.75,
    # 0.5 mean ([-2, 0.5] - 1)^2 = 0.5 * (9 + 0.25) / 2
    "least-squares": 2.3125,
    "wasserstein": 0.75,
}


def test_expected_values_cover_every_loss():
    assert set(EXPECTED_D) == set(EXPECTED_G) == set(ADVERSARIAL_LOSSES)
    assert pytest.approx(1.2705973468921372) == EXPECTED_D["non-saturating"]
    assert pytest.approx(1.3005024976115397) == EXPECTED_G["non-saturating"]


@pytest.mark.parametrize("name", ADVERSARIAL_LOSSES)
def test_discriminator_loss_by_hand(name):
    value = losses.discriminator_loss(name, REAL, FAKE)
    assert value.dim() == 0
    assert value.dtype == torch.float32
    assert value.item() == pytest.approx(EXPECTED_D[name], rel=1e-6)


@pytest.mark.parametrize("name", ADVERSARIAL_LOSSES)
def test_generator_loss_by_hand(name):
    value = losses.generator_loss(name, FAKE)
    assert value.dim() == 0
    assert value.dtype == torch.float32
    assert value.item() == pytest.approx(EXPECTED_G[name], rel=1e-6)


def test_direct_functions_match_dispatch():
    assert losses.d_non_saturating(REAL, FAKE).item() == pytest.approx(EXPECTED_D["non-saturating"], rel=1e-6)
    assert losses.g_minimax(FAKE).item() == pytest.approx(EXPECTED_G["minimax"], rel=1e-6)
    assert losses.d_hinge(REAL, FAKE).item() == pytest.approx(1.75)
    assert losses.g_least_squares(FAKE).item() == pytest.approx(2.3125)
    assert losses.d_wasserstein(REAL, FAKE).item() == pytest.approx(-1.25)


def test_gradients_by_hand():
    """d/dx mean softplus(-x) = -sigmoid(-x) / n; d/dx of the hinge G loss is -1/n."""
    fake = FAKE.clone().requires_grad_(True)
    losses.generator_loss("non-saturating", fake).backward()
    torch.testing.assert_close(fake.grad, -torch.sigmoid(-FAKE) / 2)
    fake.grad = None
    losses.generator_loss("hinge", fake).backward()
    torch.testing.assert_close(fake.grad, torch.tensor([-0.5, -0.5]))


@pytest.mark.parametrize("name", ADVERSARIAL_LOSSES)
def test_bf16_inputs_give_float32_losses(name):
    real, fake = REAL.bfloat16(), FAKE.bfloat16()  # these values are exact in bf16
    d = losses.discriminator_loss(name, real, fake)
    g = losses.generator_loss(name, fake)
    assert d.dtype == torch.float32 and g.dtype == torch.float32
    assert d.item() == pytest.approx(EXPECTED_D[name], rel=1e-6)
    assert g.item() == pytest.approx(EXPECTED_G[name], rel=1e-6)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert losses.discriminator_loss(name, real, fake).dtype == torch.float32
        assert losses.generator_loss(name, fake).dtype == torch.float32


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_saturating_logits_stay_finite(dtype):
    big = torch.tensor([1e4, -1e4], dtype=dtype)
    for name in ADVERSARIAL_LOSSES:
        assert torch.isfinite(losses.discriminator_loss(name, big, -big))
        assert torch.isfinite(losses.generator_loss(name, big))
    # softplus(x) = x for large x, computed in float32 (1e4 rounds to 9984 in bf16)
    x = big[0].item()
    assert losses.d_non_saturating(-big[:1], big[:1]).item() == pytest.approx(2 * x)


def test_unknown_loss_name_lists_the_accepted_names():
    for call in (lambda: losses.discriminator_loss("bogus", REAL, FAKE), lambda: losses.generator_loss("bogus", FAKE)):
        with pytest.raises(ValueError, match="bogus") as caught:
            call()
        for name in ADVERSARIAL_LOSSES:
            assert name in str(caught.value)


def _sp(x: float) -> float:
    return math.log1p(math.exp(x))


# Relativistic losses on the same logits; mean real = 0.5, mean fake = -0.75.
EXPECTED_RELATIVISTIC = {
    # D: mean softplus(fake_i - real_i) over the pairs (2, -2) and (-1, 0.5); G: mean softplus(real_i - fake_i)
    "relativistic": ((_sp(-4) + _sp(1.5)) / 2, (_sp(4) + _sp(-1.5)) / 2),
    # D: mean softplus(mean fake - real) + mean softplus(fake - mean real); G: the same with real and fake exchanged
    "relativistic-average": (
        (_sp(-2.75) + _sp(0.25)) / 2 + (_sp(-2.5) + _sp(0.0)) / 2,
        (_sp(2.5) + _sp(0.0)) / 2 + (_sp(2.75) + _sp(-0.25)) / 2,
    ),
}


@pytest.mark.parametrize("name", RELATIVISTIC_LOSSES)
def test_relativistic_losses_by_hand(name):
    d_expected, g_expected = EXPECTED_RELATIVISTIC[name]
    assert losses.needs_real_logits(name) and not losses.needs_real_logits("hinge")
    assert losses.discriminator_loss(name, REAL, FAKE).item() == pytest.approx(d_expected)
    assert losses.generator_loss(name, FAKE, REAL).item() == pytest.approx(g_expected)
    with pytest.raises(ValueError, match=f"the {name} generator loss compares with the real logits"):
        losses.generator_loss(name, FAKE)


def test_relativistic_generator_loss_does_not_train_d_through_the_real_logits():
    real, fake = REAL.clone().requires_grad_(True), FAKE.clone().requires_grad_(True)
    losses.generator_loss("relativistic", fake, real).backward()
    assert real.grad is None and fake.grad.abs().sum() > 0

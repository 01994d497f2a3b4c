"""The metric statistics against closed forms, hand-built manifolds and the torchmetrics / torch-fidelity code."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.linalg
import torch
from torch import nn
from torch_fidelity.metric_prc import calculate_precision_recall_full
from torchmetrics.image.fid import FrechetInceptionDistance
from torchmetrics.image.kid import KernelInceptionDistance

from ganzoo.metrics import stats


def gaussian(n: int, mean: torch.Tensor, cov: torch.Tensor, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    root = torch.linalg.cholesky(cov)
    return mean + torch.randn(n, len(mean), generator=generator, dtype=torch.float64) @ root.T


def test_frechet_distance_of_diagonal_gaussians_is_the_closed_form():
    m1, m2 = torch.tensor([0.0, 1.0, 2.0], dtype=torch.float64), torch.tensor([1.0, 1.0, 0.0], dtype=torch.float64)
    v1, v2 = torch.tensor([1.0, 4.0, 9.0], dtype=torch.float64), torch.tensor([4.0, 1.0, 1.0], dtype=torch.float64)
    # ||m1 - m2||^2 + sum (sqrt(v1) - sqrt(v2))^2 = (1 + 0 + 4) + (1 + 1 + 4) = 11
    assert stats.frechet_distance(m1, torch.diag(v1), m2, torch.diag(v2)) == pytest.approx(11.0, abs=1e-10)


def test_frechet_distance_matches_scipy_sqrtm_for_general_covariances():
    generator = torch.Generator().manual_seed(0)
    a = torch.randn(6, 6, generator=generator, dtype=torch.float64)
    b = torch.randn(6, 6, generator=generator, dtype=torch.float64)
    c1, c2 = a @ a.T + 0.1 * torch.eye(6), b @ b.T + 0.1 * torch.eye(6)
    m1, m2 = torch.zeros(6, dtype=torch.float64), torch.ones(6, dtype=torch.float64)
    root = scipy.linalg.sqrtm(c1.numpy() @ c2.numpy()).real
    expected = 6.0 + np.trace(c1.numpy()) + np.trace(c2.numpy()) - 2 * np.trace(root)
    assert stats.frechet_distance(m1, c1, m2, c2) == pytest.approx(expected, rel=1e-9)


def test_frechet_distance_of_samples_approaches_the_population_value():
    mean1, mean2 = torch.zeros(4, dtype=torch.float64), torch.full((4,), 0.5, dtype=torch.float64)
    cov1, cov2 = torch.eye(4, dtype=torch.float64), 4 * torch.eye(4, dtype=torch.float64)
    population = stats.frechet_distance(mean1, cov1, mean2, cov2)  # 1 + 4 * (2 - 1)^2 = 5
    assert population == pytest.approx(5.0)
    sampled = stats.frechet_distance_of(gaussian(20000, mean1, cov1, 1), gaussian(20000, mean2, cov2, 2))
    assert sampled == pytest.approx(population, rel=0.02)


def test_identical_sets_score_zero_and_singular_covariances_stay_finite():
    features = torch.randn(50, 128, generator=torch.Generator().manual_seed(3))  # fewer samples than dims
    assert stats.frechet_distance_of(features, features) == pytest.approx(0.0, abs=1e-6)
    shifted = stats.frechet_distance_of(features, features + 1.0)
    assert shifted == pytest.approx(128.0, rel=1e-6)  # only the means differ: ||1||^2 = 128
    many = torch.randn(4000, 16, generator=torch.Generator().manual_seed(4))
    kid, _ = stats.kernel_distance(many, many, subsets=10, subset_size=2000)
    scale, _ = stats.kernel_distance(many, many + 0.5, subsets=10, subset_size=2000)
    assert abs(kid) < 1e-2 * scale


class PassThrough(nn.Module):
    """For torchmetrics' custom-feature path: features in, features out (its probe image gets zeros)."""

    def __init__(self, dims: int) -> None:
        super().__init__()
        self.dims = dims

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dtype == torch.uint8:
            return torch.zeros(len(x), self.dims)
        return x


def test_fid_and_kid_agree_with_torchmetrics():
    generator = torch.Generator().manual_seed(5)
    real = torch.randn(400, 16, generator=generator)
    fake = 0.8 * torch.randn(300, 16, generator=generator) + 0.2
    fid = FrechetInceptionDistance(feature=PassThrough(16))
    fid.update(real, real=True)
    fid.update(fake, real=False)
    ours = stats.frechet_distance_of(fake, real)
    assert ours == pytest.approx(float(fid.compute()), rel=1e-4)
    kid = KernelInceptionDistance(feature=PassThrough(16), subsets=1, subset_size=300)
    kid.update(real[:300], real=True)  # one subset of all samples: no randomness left to differ
    kid.update(fake, real=False)
    reference_mean, _ = kid.compute()
    our_mean, our_std = stats.kernel_distance(fake, real[:300], subsets=1, subset_size=300)
    assert our_mean == pytest.approx(float(reference_mean), rel=1e-4)
    assert our_std == 0.0


def test_kid_std_reflects_the_spread_over_subsets():
    generator = torch.Generator().manual_seed(6)
    real, fake = torch.randn(500, 8, generator=generator), torch.randn(500, 8, generator=generator) + 0.5
    mean, std = stats.kernel_distance(fake, real, subsets=50, subset_size=100)
    full, _ = stats.kernel_distance(fake, real, subsets=1, subset_size=500)
    assert std > 0
    assert mean == pytest.approx(full, abs=3 * std)


def grid(offset: float = 0.0) -> torch.Tensor:
    xs = torch.arange(20, dtype=torch.float32)
    return torch.cartesian_prod(xs, xs) + offset


def test_precision_recall_on_toy_manifolds():
    real = grid()
    assert stats.precision_recall(real, real) == (1.0, 1.0)
    far = grid(offset=100.0)
    assert stats.precision_recall(far, real) == (0.0, 0.0)
    left_half = real[real[:, 0] < 10]  # a generator that covers half of the real manifold
    precision, recall = stats.precision_recall(left_half, real)
    assert precision == 1.0
    # a generated point's 3rd nearest neighbour is 1 grid step away (sqrt(2) at the corners, which reach no
    # further column), so exactly the real columns x <= 10 are inside the generated manifold: 11 of 20
    assert recall == pytest.approx(11 / 20)


def test_precision_recall_matches_torch_fidelity():
    generator = torch.Generator().manual_seed(7)
    real = torch.randn(300, 5, generator=generator)
    fake = torch.randn(250, 5, generator=generator) * 1.5 + 0.3
    expected = calculate_precision_recall_full(fake, real, neighborhood=3)
    assert stats.precision_recall(fake, real, k=3) == pytest.approx(expected, abs=1e-6)  # theirs is a float32 mean


def test_precision_recall_needs_more_samples_than_neighbours():
    with pytest.raises(ValueError, match="more than 3 samples"):
        stats.precision_recall(torch.randn(3, 2), torch.randn(10, 2))


def test_inception_score_bounds():
    uniform = torch.zeros(100, 10)
    assert stats.inception_score(uniform, splits=5) == pytest.approx((1.0, 0.0))
    confident = torch.full((100, 10), -1e4)
    confident[torch.arange(100), torch.arange(100) % 10] = 0.0  # sure of one class each, all classes equally
    mean, std = stats.inception_score(confident, splits=5)
    assert mean == pytest.approx(10.0, rel=1e-6)
    assert std == pytest.approx(0.0, abs=1e-6)
    collapsed = torch.full((100, 10), -1e4)
    collapsed[:, 3] = 0.0  # sure, but always the same class: no diversity
    assert stats.inception_score(collapsed, splits=5)[0] == pytest.approx(1.0)


def test_inception_score_of_a_two_class_mixture_by_hand():
    # p(y|x) = (0.9, 0.1) for half, (0.1, 0.9) for the other half: p(y) = (0.5, 0.5)
    probs = torch.tensor([[0.9, 0.1]] * 50 + [[0.1, 0.9]] * 50, dtype=torch.float64)  # float32 rounds 0.9 by 1e-8
    kl = 0.9 * math.log(0.9 / 0.5) + 0.1 * math.log(0.1 / 0.5)
    assert stats.inception_score(probs.log(), splits=1)[0] == pytest.approx(math.exp(kl), rel=1e-9)


def test_bad_feature_shapes_are_rejected():
    with pytest.raises(ValueError, match="samples, dims"):
        stats.feature_statistics(torch.randn(10))

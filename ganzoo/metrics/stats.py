"""The statistics behind the image metrics, computed from feature matrices (rows = samples) in float64.

Fréchet distance (FID when the features are Inception's), kernel distance (KID: unbiased MMD^2 with the cubic
polynomial kernel, mean and std over random subsets), precision and recall (Kynkäänniemi et al. 2019, k-NN
manifolds) and the Inception Score (from classifier logits). The tests check them against closed forms and
against torchmetrics / torch-fidelity on the same features.
"""

from __future__ import annotations

import math

import torch


def _as_float64(features: torch.Tensor, what: str) -> torch.Tensor:
    if features.ndim != 2 or len(features) < 2:
        raise ValueError(f"{what}: expected a (samples, dims) matrix with at least 2 rows, got {tuple(features.shape)}")
    return features.detach().to("cpu", torch.float64)


def feature_statistics(features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and (unbiased) covariance of the rows, in float64."""
    x = _as_float64(features, "feature_statistics")
    mean = x.mean(0)
    centred = x - mean
    return mean, centred.T @ centred / (len(x) - 1)


def _psd_sqrt(matrix: torch.Tensor) -> torch.Tensor:
    """Square root of a symmetric positive semi-definite matrix (negative round-off eigenvalues clamped to 0)."""
    values, vectors = torch.linalg.eigh((matrix + matrix.T) / 2)
    return (vectors * values.clamp_min(0).sqrt()) @ vectors.T


def frechet_distance(mean1: torch.Tensor, cov1: torch.Tensor, mean2: torch.Tensor, cov2: torch.Tensor) -> float:
    """||m1 - m2||^2 + Tr(C1 + C2 - 2 (C1 C2)^(1/2)) for two Gaussians, in float64.

    Tr((C1 C2)^(1/2)) is taken as the sum of square roots of the eigenvalues of C1^(1/2) C2 C1^(1/2), which is
    symmetric positive semi-definite, so only symmetric eigendecompositions are needed: stable even when the
    covariances are singular (fewer samples than dimensions), where scipy's sqrtm needs an epsilon offset.
    """
    mean1, cov1, mean2, cov2 = (t.to(torch.float64) for t in (mean1, cov1, mean2, cov2))
    root1 = _psd_sqrt(cov1)
    middle = root1 @ cov2 @ root1
    trace_sqrt = torch.linalg.eigvalsh((middle + middle.T) / 2).clamp_min(0).sqrt().sum()
    value = (mean1 - mean2).square().sum() + cov1.trace() + cov2.trace() - 2 * trace_sqrt
    return float(value.clamp_min(0))


def frechet_distance_of(features1: torch.Tensor, features2: torch.Tensor) -> float:
    """Fréchet distance between the Gaussians fitted to two feature sets."""
    return frechet_distance(*feature_statistics(features1), *feature_statistics(features2))


def _mmd2_unbiased(x: torch.Tensor, y: torch.Tensor, degree: int, gamma: float, coef: float) -> torch.Tensor:
    k_xx = (x @ x.T * gamma + coef) ** degree
    k_yy = (y @ y.T * gamma + coef) ** degree
    k_xy = (x @ y.T * gamma + coef) ** degree
    m, n = len(x), len(y)
    within_x = (k_xx.sum() - k_xx.diagonal().sum()) / (m * (m - 1))
    within_y = (k_yy.sum() - k_yy.diagonal().sum()) / (n * (n - 1))
    return within_x + within_y - 2 * k_xy.mean()


def kernel_distance(
    features1: torch.Tensor,
    features2: torch.Tensor,
    subsets: int = 100,
    subset_size: int = 1000,
    degree: int = 3,
    gamma: float | None = None,
    coef: float = 1.0,
    seed: int = 0,
) -> tuple[float, float]:
    """KID: unbiased MMD^2 with the kernel (gamma x.y + coef)^degree (gamma = 1/dims), mean and std over subsets.

    Each subset draws `subset_size` rows (fewer if a set is smaller) from each set without replacement.
    """
    x = _as_float64(features1, "kernel_distance")
    y = _as_float64(features2, "kernel_distance")
    gamma = 1.0 / x.shape[1] if gamma is None else gamma
    size = min(subset_size, len(x), len(y))
    generator = torch.Generator().manual_seed(seed)
    values = torch.empty(subsets, dtype=torch.float64)
    for i in range(subsets):
        pick_x = torch.randperm(len(x), generator=generator)[:size]
        pick_y = torch.randperm(len(y), generator=generator)[:size]
        values[i] = _mmd2_unbiased(x[pick_x], y[pick_y], degree, gamma, coef)
    std = float(values.std(unbiased=False)) if subsets > 1 else 0.0
    return float(values.mean()), std


def _knn_radii(features: torch.Tensor, k: int, batch: int) -> torch.Tensor:
    """Distance from each row to its k-th nearest other row (the row itself is the 0-th)."""
    radii = [torch.cdist(chunk, features).kthvalue(k + 1, dim=1).values for chunk in features.split(batch)]
    return torch.cat(radii)


def _coverage(queries: torch.Tensor, centres: torch.Tensor, radii: torch.Tensor, batch: int) -> float:
    """Fraction of query rows inside at least one ball (centre, radius)."""
    inside = [(torch.cdist(chunk, centres) <= radii).any(dim=1) for chunk in queries.split(batch)]
    return float(torch.cat(inside).double().mean())


def precision_recall(generated: torch.Tensor, real: torch.Tensor, k: int = 3, batch: int = 4096) -> tuple[float, float]:
    """Improved precision and recall (Kynkäänniemi et al. 2019).

    Precision: the fraction of generated samples inside the real manifold (the union of balls around each real
    sample reaching its k-th nearest real neighbour); recall: the fraction of real samples inside the generated
    manifold. Distances in float32 as in the reference implementations.
    """
    if min(len(generated), len(real)) <= k:
        raise ValueError(f"precision/recall with k={k} needs more than {k} samples in each set")
    fake = generated.detach().to("cpu", torch.float32)
    true = real.detach().to("cpu", torch.float32)
    precision = _coverage(fake, true, _knn_radii(true, k, batch), batch)
    recall = _coverage(true, fake, _knn_radii(fake, k, batch), batch)
    return precision, recall


def inception_score(logits: torch.Tensor, splits: int = 10) -> tuple[float, float]:
    """exp(E[KL(p(y|x) || p(y))]) over `splits` equal parts of the samples: mean and std (Salimans et al. 2016)."""
    log_p = torch.log_softmax(logits.detach().to("cpu", torch.float64), dim=1)
    scores = []
    for part in log_p.chunk(splits):
        log_marginal = torch.logsumexp(part, dim=0) - math.log(len(part))
        kl = (part.exp() * (part - log_marginal)).sum(dim=1).mean()
        scores.append(kl.exp())
    values = torch.stack(scores)
    return float(values.mean()), float(values.std(unbiased=False)) if len(values) > 1 else 0.0

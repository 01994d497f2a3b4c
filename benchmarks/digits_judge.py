"""A small digit classifier used to judge generated 28x28 digits while the `digits` extractor of the
evaluation issue has not landed: Fréchet distance in its feature space, confidence and class coverage.

Trained on 3,500 of the embedded digits (seeded), checked on the other 500; cached under benchmarks/.cache.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from ganzoo.data import resolve_data

CACHE = Path(__file__).parent / ".cache" / "digits_judge.safetensors"
HELD_OUT = 500


class DigitNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1),
            nn.BatchNorm2d(32),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1),
            nn.BatchNorm2d(64),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(64, 128, 3, padding=1),
            nn.BatchNorm2d(128),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )
        self.head = nn.Linear(128, 10)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f = self.features(x)
        return f, self.head(f)


def split() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    data = resolve_data("mnist-4k").load()
    order = torch.randperm(len(data), generator=torch.Generator().manual_seed(1234))
    test, train = order[:HELD_OUT], order[HELD_OUT:]
    return data.images[train], data.labels[train], data.images[test], data.labels[test]


def to_float(images: torch.Tensor) -> torch.Tensor:
    return images.float() / 127.5 - 1


def judge() -> tuple[DigitNet, float]:
    torch.manual_seed(0)
    net = DigitNet()
    x_train, y_train, x_test, y_test = split()
    if CACHE.is_file():
        net.load_state_dict(load_file(CACHE))
    else:
        opt = torch.optim.Adam(net.parameters(), 2e-3)
        for _ in range(12):
            perm = torch.randperm(len(x_train))
            for i in range(0, len(perm), 64):
                idx = perm[i : i + 64]
                x = to_float(x_train[idx])
                shift = torch.randint(-2, 3, (2,))  # small translations as augmentation
                x = torch.roll(x, shifts=(int(shift[0]), int(shift[1])), dims=(2, 3))
                loss = nn.functional.cross_entropy(net(x)[1], y_train[idx])
                opt.zero_grad()
                loss.backward()
                opt.step()
        CACHE.parent.mkdir(exist_ok=True)
        save_file(net.state_dict(), CACHE)
    net.eval()
    with torch.no_grad():
        acc = (net(to_float(x_test))[1].argmax(1) == y_test).float().mean().item()
    return net, acc


def frechet(a: np.ndarray, b: np.ndarray) -> float:
    mu1, mu2 = a.mean(0), b.mean(0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    # tr sqrt(s1 s2) = sum of sqrt(eigenvalues of sqrt(s1) s2 sqrt(s1)), a symmetric PSD matrix.
    w, v = np.linalg.eigh(s1)
    root1 = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    eig = np.linalg.eigvalsh(root1 @ s2 @ root1)
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.sqrt(np.clip(eig, 0, None)).sum())


@torch.no_grad()
def features(net: DigitNet, images: torch.Tensor) -> tuple[np.ndarray, torch.Tensor]:
    feats, logits = [], []
    for i in range(0, len(images), 500):
        feature, logit = net(images[i : i + 500].float())
        feats.append(feature)
        logits.append(logit)
    return torch.cat(feats).double().numpy(), torch.cat(logits).softmax(1)


def score(net: DigitNet, generated: torch.Tensor, reference: np.ndarray) -> dict[str, float]:
    """FD to the reference features, mean top-class confidence, class coverage (entropy / log 10)."""
    feats, probs = features(net, generated)
    hist = torch.bincount(probs.argmax(1), minlength=10).double() / len(probs)
    entropy = -(hist[hist > 0] * hist[hist > 0].log()).sum().item() / np.log(10)
    return {"fd": frechet(feats, reference), "confidence": probs.max(1).values.mean().item(), "coverage": entropy}

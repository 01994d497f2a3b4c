"""Drawing token ids from categorical distributions, fast on the CPU for large vocabularies, and the shapes of
those distributions that text samplers offer: temperature, top-k and top-p (nucleus sampling, Holtzman et al. 2020).

`torch.multinomial` is about ten times slower than inverse-CDF sampling over a 5,000-token vocabulary on the CPU;
both draw exact samples from the same distribution.
"""

from __future__ import annotations

import torch

__all__ = ["draw", "shape_logits"]


def draw(probs: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """One id per row of `probs` (n, V), non-negative weights that need not sum to 1; ids of zero weight never
    come out. Inverse-CDF sampling: the first id whose cumulative weight exceeds a uniform draw."""
    cumulative = probs.float().cumsum(dim=1)
    total = cumulative[:, -1:]
    uniform = torch.rand(total.shape, device=probs.device, generator=generator) * total
    index = torch.searchsorted(cumulative, uniform, right=True).squeeze(1)
    # float rounding can put the draw at the very top of the cumulative sum: take the likeliest id then
    over = index >= probs.shape[1]
    if over.any():
        index[over] = probs[over].argmax(dim=1)
    return index


def shape_logits(
    logits: torch.Tensor, temperature: float = 1.0, top_k: int | None = None, top_p: float | None = None
) -> torch.Tensor:
    """(n, V) logits divided by `temperature`, then with -inf outside the `top_k` likeliest ids and outside the
    nucleus: the smallest set of the likeliest ids whose probability (at that temperature, after top-k) reaches
    `top_p` (ids tied with the set's least likely one are kept with it). `top_p=1` keeps every id."""
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    if temperature != 1:
        logits = logits / temperature
    if top_k is not None and top_k < logits.shape[1]:
        if top_k < 1:
            raise ValueError(f"top_k must be at least 1, got {top_k}")
        threshold = logits.topk(top_k, dim=1).values[:, -1:]
        logits = logits.masked_fill(logits < threshold, float("-inf"))
    if top_p is not None and top_p < 1:
        if top_p <= 0:
            raise ValueError(f"top_p must be in (0, 1], got {top_p}")
        ordered = logits.float().sort(dim=1, descending=True).values
        before = torch.softmax(ordered, dim=1).cumsum(dim=1) - torch.softmax(ordered, dim=1)
        kept = (before < top_p).sum(dim=1, keepdim=True)  # the likeliest ids until their mass reaches top_p
        threshold = ordered.gather(1, kept - 1)
        logits = logits.masked_fill(logits < threshold.to(logits.dtype), float("-inf"))
    return logits

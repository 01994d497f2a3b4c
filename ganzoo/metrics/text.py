"""Sentence-level BLEU-n and self-BLEU-n for text GANs, as defined by Texygen (Zhu et al. 2018).

Texygen, and the LeakGAN/RelGAN papers that report its numbers, score each generated sentence with nltk's
``sentence_bleu(references, hypothesis, weights=(1/n,) * n, smoothing_function=SmoothingFunction().method1)`` and
average over sentences. BLEU-n uses a fixed reference set (real text); self-BLEU-n scores each generated sentence
against all the *other* generated sentences, a measure of (lack of) diversity.

This module reproduces those nltk values (to floating-point rounding) without nltk's cost, which is
O(hypotheses x references) because nltk recounts every reference for every hypothesis:

* For a fixed reference set, the clipped count of an n-gram only needs its maximum count in any single reference,
  so one pass over the references builds, per order k, a table k-gram -> max count; each hypothesis is then scored
  in time proportional to its own length.
* For self-BLEU the reference set is "everything but me". Per k-gram we keep the largest count, how many sentences
  reach it, and the largest count below it: a sentence that alone holds the maximum sees the runner-up instead.
  Reference lengths are kept in a counter, so a sentence's own length drops out only if no other sentence has it.

nltk's rules matched here (nltk 3.x ``corpus_bleu`` on a single sentence, as ``sentence_bleu`` calls it):

* modified precision p_k = sum_g min(count_hyp(g), max_ref count(g)) / max(1, number of k-grams in the hypothesis);
  a hypothesis shorter than k has no k-grams, so p_k = 0 / 1.
* If the unigram numerator is 0 (including an empty hypothesis) the score is exactly 0, before any smoothing.
* method1 smoothing replaces a zero numerator by epsilon = 0.1, i.e. p_k = 0.1 / denominator; hence a one-token
  hypothesis that matches scores BLEU-n = BP * 0.1 ** ((n - 1) / n), not 0.
* Brevity penalty: r is the reference length closest to the hypothesis length c (ties go to the shorter), and
  BP = 1 if c > r, else exp(1 - r / c).
* score = BP * exp(fsum(log(p_k) / n)).
"""

from __future__ import annotations

import bisect
import math
import random
from collections import Counter
from collections.abc import Hashable, Iterable, Sequence

__all__ = ["bleu", "self_bleu"]

Sentence = Sequence[Hashable]

_EPSILON = 0.1  # nltk SmoothingFunction().method1 default


def _ngrams(tokens: Sequence[Hashable], k: int) -> Iterable[tuple[Hashable, ...]]:
    if k == 1:
        return ((t,) for t in tokens)
    return zip(*(tokens[i:] for i in range(k)), strict=False)  # shifted copies: the shortest one ends it


def _check_order(n: int) -> None:
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"BLEU order n must be a positive integer, got {n!r}")


def _as_sentences(sentences: Sequence[Sentence], what: str) -> list[tuple[Hashable, ...]]:
    out = []
    for i, s in enumerate(sentences):
        if isinstance(s, (str, bytes)):
            raise TypeError(
                f"{what}[{i}] is a string; pass token sequences (e.g. text.split()), not raw text "
                "(also check that you passed a list of sentences, not a single sentence)"
            )
        out.append(tuple(s))
    return out


def _closest_length(sorted_lengths: Sequence[int], c: int) -> int:
    """Length in ``sorted_lengths`` (unique, ascending, non-empty) closest to c; ties go to the shorter one."""
    i = bisect.bisect_left(sorted_lengths, c)
    if i < len(sorted_lengths) and sorted_lengths[i] == c:
        return c
    if i == 0:
        return sorted_lengths[0]
    if i == len(sorted_lengths):
        return sorted_lengths[-1]
    below, above = sorted_lengths[i - 1], sorted_lengths[i]
    return below if c - below <= above - c else above


def _score(numerators: Sequence[int], denominators: Sequence[int], c: int, r: int) -> float:
    """nltk ``corpus_bleu`` for one sentence with uniform weights 1/n and method1 smoothing."""
    if numerators[0] == 0:
        return 0.0
    n = len(numerators)
    w = 1.0 / n
    logs = []
    for num, den in zip(numerators, denominators, strict=True):
        p = num / den if num else _EPSILON / den
        logs.append(w * math.log(p))
    bp = 1.0 if c > r else math.exp(1 - r / c)
    return bp * math.exp(math.fsum(logs))


def _max_counts(references: Sequence[Sentence], k: int) -> dict[tuple[Hashable, ...], int]:
    """k-gram -> its largest count in any single reference."""
    best: dict[tuple[Hashable, ...], int] = {}
    for ref in references:
        grams = list(_ngrams(ref, k))
        unique = set(grams)
        if len(unique) == len(grams):  # the common case: every k-gram once, so only new keys change
            for g in unique:
                if g not in best:
                    best[g] = 1
        else:
            for g, v in Counter(grams).items():
                if v > best.get(g, 0):
                    best[g] = v
    return best


def bleu(hypotheses: Sequence[Sentence], references: Sequence[Sentence], n: int = 4) -> float:
    """Texygen BLEU-n: mean over ``hypotheses`` of nltk's method1-smoothed ``sentence_bleu`` against all ``references``.

    Sentences are sequences of hashable tokens (lists of words, token ids, ...). Equivalent to
    ``mean(sentence_bleu(references, h, (1/n,) * n, SmoothingFunction().method1) for h in hypotheses)``.
    """
    _check_order(n)
    hyps = _as_sentences(hypotheses, "hypotheses")
    refs = _as_sentences(references, "references")
    if not hyps:
        raise ValueError("bleu() needs at least one hypothesis sentence; got an empty list")
    if not refs:
        raise ValueError("bleu() needs at least one reference sentence; got an empty list")

    tables = [_max_counts(refs, k) for k in range(1, n + 1)]
    lengths = sorted({len(r) for r in refs})

    scores = []
    for h in hyps:
        nums, dens = [], []
        for k, table in enumerate(tables, start=1):
            counts = Counter(_ngrams(h, k))
            nums.append(sum(min(v, table.get(g, 0)) for g, v in counts.items()))
            dens.append(max(1, len(h) - k + 1))
        scores.append(_score(nums, dens, len(h), _closest_length(lengths, len(h))))
    return math.fsum(scores) / len(scores)


def self_bleu(sentences: Sequence[Sentence], n: int = 4, sample: int | None = 500, seed: int = 0) -> float:
    """Texygen self-BLEU-n: mean of method1-smoothed ``sentence_bleu`` of each sentence against all the others.

    Args:
        sentences: generated sentences, each a sequence of hashable tokens; at least two.
        n: maximum n-gram order (weights 1/n each).
        sample: score only this many hypotheses, drawn at random (seeded) without replacement; each is still
            compared with *all* other sentences, so the result is an unbiased estimate of the full self-BLEU.
            ``None`` (or a value >= len(sentences)) scores every sentence.
        seed: seed of the hypothesis sample.

    Equivalent to ``mean(sentence_bleu(S[:i] + S[i+1:], S[i], (1/n,) * n, SmoothingFunction().method1))`` over the
    sampled indices i.
    """
    _check_order(n)
    sents = _as_sentences(sentences, "sentences")
    if not sents:
        raise ValueError("self_bleu() needs at least two sentences; got an empty list")
    if len(sents) < 2:
        raise ValueError("self_bleu() needs at least two sentences: each one is scored against the others")
    if sample is not None and sample < 1:
        raise ValueError(f"sample must be a positive integer or None, got {sample!r}")

    if sample is None or sample >= len(sents):
        chosen = list(range(len(sents)))
    else:
        chosen = sorted(random.Random(seed).sample(range(len(sents)), sample))

    # Per order: k-gram -> [largest count in one sentence, number of sentences with that count, largest count below].
    stats: list[dict[tuple[Hashable, ...], list[int]]] = []
    for k in range(1, n + 1):
        table: dict[tuple[Hashable, ...], list[int]] = {}
        for s in sents:
            for g, v in Counter(_ngrams(s, k)).items():
                t = table.get(g)
                if t is None:
                    table[g] = [v, 1, 0]
                elif v > t[0]:
                    t[2], t[0], t[1] = t[0], v, 1
                elif v == t[0]:
                    t[1] += 1
                elif v > t[2]:
                    t[2] = v
        stats.append(table)

    length_counts = Counter(len(s) for s in sents)
    lengths = sorted(length_counts)

    scores = []
    for i in chosen:
        h = sents[i]
        c = len(h)
        nums, dens = [], []
        for k, table in enumerate(stats, start=1):
            num = 0
            for g, v in Counter(_ngrams(h, k)).items():
                top, holders, runner_up = table[g]
                ref_max = runner_up if (v == top and holders == 1) else top
                num += min(v, ref_max)
            nums.append(num)
            dens.append(max(1, c - k + 1))
        if length_counts[c] > 1:
            r = c  # another sentence has exactly this length
        else:
            others = lengths[:]
            others.remove(c)
            r = _closest_length(others, c)
        scores.append(_score(nums, dens, c, r))
    return math.fsum(scores) / len(scores)

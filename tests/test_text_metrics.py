"""ganzoo.metrics.text must reproduce Texygen's nltk-based BLEU / self-BLEU (method1 smoothing) to 1e-9."""

from __future__ import annotations

import math
import random

import pytest
from nltk.translate.bleu_score import SmoothingFunction, sentence_bleu

from ganzoo.metrics.text import bleu, self_bleu

TOL = 1e-9
SMOOTH = SmoothingFunction().method1


def nltk_sentence(references, hypothesis, n):
    return sentence_bleu(references, hypothesis, (1.0 / n,) * n, smoothing_function=SMOOTH)


def nltk_bleu(hypotheses, references, n):
    """Texygen's Bleu.get_bleu: the mean of sentence_bleu against the whole reference set."""
    return sum(nltk_sentence(references, h, n) for h in hypotheses) / len(hypotheses)


def nltk_self_bleu(sentences, n, indices=None):
    """Texygen's SelfBleu.get_bleu_parallel: each sentence against all the other sentences."""
    indices = range(len(sentences)) if indices is None else indices
    scores = [nltk_sentence(sentences[:i] + sentences[i + 1 :], sentences[i], n) for i in indices]
    return sum(scores) / len(scores)


def random_sentences(rng, count, vocab, min_len=0, max_len=8):
    """Small vocabularies give repeated n-grams within and across sentences; short lengths hit the edge cases."""
    sents = [[rng.choice(vocab) for _ in range(rng.randint(min_len, max_len))] for _ in range(count)]
    for _ in range(count // 4):  # exact duplicates, so that "max count held by several sentences" happens
        sents.append(list(rng.choice(sents)))
    rng.shuffle(sents)
    return sents


REF1 = ["the", "cat", "is", "on", "the", "mat"]  # length 6
REF2 = ["there", "is", "a", "cat", "on", "the", "mat"]  # length 7


def test_hand_computed_bleu2():
    # hypothesis "the cat the mat", length 4, references of lengths 6 and 7:
    #   unigrams: the x2 (clipped to 2, REF1 holds two), cat, mat -> p1 = 4/4
    #   bigrams: "the cat" (REF1), "cat the" (none), "the mat" (both) -> p2 = 2/3
    #   closest reference length r = 6, c = 4 -> BP = exp(1 - 6/4) = exp(-0.5)
    #   BLEU-2 = exp(-0.5) * sqrt(1 * 2/3) = 0.49523...
    hyp1 = ["the", "cat", "the", "mat"]
    expected1 = math.exp(-0.5) * math.sqrt(2 / 3)
    assert bleu([hyp1], [REF1, REF2], n=2) == pytest.approx(expected1, abs=TOL)
    # hypothesis "the dog": p1 = 1/2; no bigram matches, so method1 gives p2 = 0.1 / 1;
    #   r = 6, c = 2 -> BP = exp(1 - 3) = exp(-2); BLEU-2 = exp(-2) * sqrt(0.5 * 0.1) = 0.03026...
    hyp2 = ["the", "dog"]
    expected2 = math.exp(-2) * math.sqrt(0.05)
    assert bleu([hyp2], [REF1, REF2], n=2) == pytest.approx(expected2, abs=TOL)
    # the corpus value is the mean of the sentence values, and nltk agrees with the hand computation
    assert bleu([hyp1, hyp2], [REF1, REF2], n=2) == pytest.approx((expected1 + expected2) / 2, abs=TOL)
    assert nltk_bleu([hyp1, hyp2], [REF1, REF2], 2) == pytest.approx((expected1 + expected2) / 2, abs=TOL)


def test_nltk_edge_cases():
    refs = [REF1, REF2]
    # one matching token under BLEU-4: p1 = 1, p2..p4 have no n-grams (0/1) -> smoothed to 0.1 each, not 0;
    # r = 1 = c -> BP = exp(0) = 1, so BLEU-4 = 0.1 ** (3/4)
    assert bleu([["a"]], [["a"]], n=4) == pytest.approx(0.1**0.75, abs=TOL)
    assert nltk_bleu([["a"]], [["a"]], 4) == pytest.approx(0.1**0.75, abs=TOL)
    # no unigram match -> exactly 0, smoothing does not apply; an empty hypothesis also scores 0
    assert bleu([["dog"]], refs, n=4) == 0.0
    assert bleu([[]], refs, n=4) == 0.0
    assert nltk_bleu([["dog"], []], refs, 4) == 0
    # reference lengths 3 and 5 are equally close to c = 4: the shorter wins, so c > r and BP = 1
    # (with r = 5 it would be exp(1 - 5/4)); p1 = 4/4, p2 = 3/3 -> BLEU-2 = 1
    hyp = ["a", "b", "c", "d"]
    tie_refs = [["a", "b", "c"], ["b", "c", "d", "x", "y"]]
    assert bleu([hyp], tie_refs, n=2) == pytest.approx(1.0, abs=TOL)
    assert bleu([hyp], tie_refs, n=2) == pytest.approx(nltk_bleu([hyp], tie_refs, 2), abs=TOL)
    # hypotheses shorter than n, and an empty reference sentence, against nltk
    for n in (1, 2, 3, 4, 5):
        for h in (["the"], ["the", "cat"], ["cat", "on", "the"], ["mat", "mat", "mat"]):
            assert bleu([h], [*refs, []], n=n) == pytest.approx(nltk_bleu([h], [*refs, []], n), abs=TOL)


@pytest.mark.parametrize("n", [2, 3, 4])
def test_bleu_matches_nltk_on_random_sentences(n):
    rng = random.Random(100 + n)
    for vocab_size in (3, 6, 30):
        vocab = [f"w{i}" for i in range(vocab_size)]
        refs = random_sentences(rng, 30, vocab, min_len=0, max_len=9)
        hyps = random_sentences(rng, 24, vocab, min_len=0, max_len=9) + [list(r) for r in refs[:4]]
        for h in hyps:  # per sentence, so that no error can hide in the mean
            assert bleu([h], refs, n=n) == pytest.approx(nltk_sentence(refs, h, n), abs=TOL)
        assert bleu(hyps, refs, n=n) == pytest.approx(nltk_bleu(hyps, refs, n), abs=TOL)


@pytest.mark.parametrize("n", [2, 3, 4])
def test_self_bleu_matches_nltk_on_random_sentences(n):
    rng = random.Random(200 + n)
    for trial in range(12):
        vocab = [f"w{i}" for i in range(rng.choice((2, 3, 5, 20)))]
        sents = random_sentences(rng, rng.randint(2, 20), vocab, min_len=0 if trial % 2 else 1, max_len=7)
        assert self_bleu(sents, n=n, sample=None) == pytest.approx(nltk_self_bleu(sents, n), abs=TOL)


def test_self_bleu_duplicates_and_length_ties():
    a = ["x", "x", "y", "z"]
    # "x x" occurs twice in a; with a duplicated the max over the *others* stays 2 (multiplicity 2), while for the
    # single c the others' max is the runner-up count 1 (from d) -> the top-two bookkeeping is exercised both ways
    b = ["x", "y", "x", "y", "x"]
    c = ["z", "z", "z", "x"]
    d = ["z", "z", "x", "x", "y", "q"]
    cases = [
        [a, list(a), b, c, d],
        [a, b, c, d],
        [c, list(c), list(c)],
        [["x"], ["x"]],
        [["x"], ["y"], ["x", "y"]],
        # lengths 2 and 4 around a unique length 3: the tie goes to 2 (shorter), so BP = 1
        [["x", "y"], ["x", "y", "z"], ["y", "z", "x", "q"]],
        # the hypothesis's own length is shared with another sentence -> r = c
        [["x", "y", "z"], ["z", "y", "q"], ["q"]],
    ]
    for sents in cases:
        for n in (1, 2, 3, 4):
            assert self_bleu(sents, n=n, sample=None) == pytest.approx(nltk_self_bleu(sents, n), abs=TOL)


def test_self_bleu_sample():
    rng = random.Random(7)
    sents = random_sentences(rng, 24, [f"w{i}" for i in range(4)], min_len=1, max_len=8)
    full = nltk_self_bleu(sents, 3)
    assert self_bleu(sents, n=3, sample=None) == pytest.approx(full, abs=TOL)
    assert self_bleu(sents, n=3, sample=len(sents)) == pytest.approx(full, abs=TOL)
    assert self_bleu(sents, n=3, sample=10_000) == pytest.approx(full, abs=TOL)
    # documented sampling: random.Random(seed).sample over indices, each scored against all other sentences
    for seed in (0, 1):
        idx = random.Random(seed).sample(range(len(sents)), 5)
        expected = nltk_self_bleu(sents, 3, indices=idx)
        assert self_bleu(sents, n=3, sample=5, seed=seed) == pytest.approx(expected, abs=TOL)
        assert self_bleu(sents, n=3, sample=5, seed=seed) == self_bleu(sents, n=3, sample=5, seed=seed)


def test_identical_and_disjoint_sets():
    rng = random.Random(3)
    vocab = [f"w{i}" for i in range(50)]
    sents = [[rng.choice(vocab) for _ in range(rng.randint(4, 12))] for _ in range(20)]
    # every hypothesis is a reference and has >= 4 tokens: all precisions are 1 and BP = 1
    assert bleu(sents, sents, n=4) == pytest.approx(1.0, abs=TOL)
    assert self_bleu([sents[0]] * 3, n=4, sample=None) == pytest.approx(1.0, abs=TOL)
    other = [[f"v{i}" for i in range(k, k + 8)] for k in range(10)]
    assert bleu(sents, other, n=4) == 0.0
    assert self_bleu([["a", "b", "c"], ["d", "e", "f"]], n=2) == 0.0
    # one shared word out of 8 -> small but nonzero, and still equal to nltk
    almost = [[*s[:7], "w0"] for s in other]
    assert 0.0 < bleu(sents, almost, n=4) < 0.2
    assert bleu(sents, almost, n=4) == pytest.approx(nltk_bleu(sents, almost, 4), abs=TOL)


def test_token_ids_and_tuples():
    refs = [(1, 2, 3, 4, 1, 2), (2, 3, 5)]
    hyps = [[1, 2, 3], (3, 4, 1, 2, 2)]
    expected = nltk_bleu([list(h) for h in hyps], [list(r) for r in refs], 3)
    assert bleu(hyps, refs, n=3) == pytest.approx(expected, abs=TOL)
    assert self_bleu([*refs, *hyps], n=2, sample=None) == pytest.approx(
        nltk_self_bleu([list(s) for s in [*refs, *hyps]], 2), abs=TOL
    )


def test_errors():
    with pytest.raises(ValueError, match="at least one hypothesis"):
        bleu([], [REF1])
    with pytest.raises(ValueError, match="at least one reference"):
        bleu([REF1], [])
    with pytest.raises(ValueError, match="at least two sentences"):
        self_bleu([])
    with pytest.raises(ValueError, match="at least two sentences"):
        self_bleu([REF1])
    with pytest.raises(ValueError, match="positive integer"):
        bleu([REF1], [REF2], n=0)
    with pytest.raises(ValueError, match="sample"):
        self_bleu([REF1, REF2], sample=0)
    with pytest.raises(TypeError, match="token sequences"):
        bleu(["the cat is on the mat"], [REF1])
    with pytest.raises(TypeError, match="token sequences"):
        self_bleu(REF1)  # a single sentence instead of a list of sentences

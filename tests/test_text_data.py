"""Text data: tokenisers and vocabularies, `text:` / `tokens:` / `surnames` corpora, categorical sampling, and the
SeqGAN oracle re-implementation."""

from __future__ import annotations

import gzip
import math
import warnings
from pathlib import Path

import pytest
import torch

import ganzoo.text.corpus  # noqa: F401  (registers text:, tokens:, surnames)
from ganzoo import UsageError
from ganzoo.data import resolve_data
from ganzoo.text import SPECIALS, Vocabulary, tokenize
from ganzoo.text.corpus import TextDataset, TextSource, encode_samples, read_text_lines, read_token_lines
from ganzoo.text.oracle import Oracle
from ganzoo.text.sampling import draw

ORACLE = Path(__file__).resolve().parents[1] / "benchmarks" / "data" / "seqgan-oracle.npz"


# ------------------------------------------------------------------------------------------ vocabulary


def test_char_tokenizer_round_trips():
    samples = ["hello world", "ça va?", "naïve café"]
    vocab = Vocabulary.build(samples, "char")
    for text in samples:
        assert vocab.decode(vocab.encode(text)) == text
    assert set(vocab.tokens) == set("".join(samples))
    assert len(vocab) == len(vocab.tokens) + len(SPECIALS)


def test_word_tokenizer_round_trips_normalising_whitespace():
    samples = ["the cat  sat", "the dog\tran far"]
    vocab = Vocabulary.build(samples, "word")
    assert tokenize("the cat  sat", "word") == ["the", "cat", "sat"]
    assert vocab.decode(vocab.encode("the dog\tran far")) == "the dog ran far"
    assert vocab.tokens[0] == "the"  # most frequent first
    assert tokenize("12 7  3", "ids") == ["12", "7", "3"]
    with pytest.raises(ValueError, match="char, word, ids"):
        tokenize("x", "bytes")


def test_vocabulary_order_is_frequency_then_alphabetical():
    vocab = Vocabulary.build(["b a c", "a b", "d a"], "word")
    assert vocab.tokens == ["a", "b", "c", "d"]
    assert Vocabulary.build(["d a", "a b", "b a c"], "word") == vocab  # the order of the samples does not matter
    assert (vocab.pad, vocab.bos, vocab.eos, vocab.unk) == (4, 5, 6, 7)
    assert [vocab.token(i) for i in range(4, 8)] == list(SPECIALS)


def test_min_freq_turns_rare_tokens_into_unk():
    vocab = Vocabulary.build(["aab", "aac", "a"], "char", min_freq=2)
    assert vocab.tokens == ["a"]
    ids = vocab.encode("abz")
    assert ids == [0, vocab.unk, vocab.unk]
    assert vocab.decode(ids) == "a<unk><unk>"
    with pytest.raises(ValueError, match="min_freq"):
        Vocabulary.build(["a"], "char", min_freq=0)


def test_fixed_length_adds_eos_and_pads_or_cuts():
    vocab = Vocabulary.build(["abc"], "char")
    row, scored = vocab.fixed_length(vocab.encode("ab"), 5)
    assert row == [0, 1, vocab.eos, vocab.pad, vocab.pad] and scored == 3
    row, scored = vocab.fixed_length(vocab.encode("abc"), 3)  # exactly full: no eos
    assert row == [0, 1, 2] and scored == 3
    row, scored = vocab.fixed_length(vocab.encode("abcabc"), 4)
    assert row == [0, 1, 2, 0] and scored == 4
    assert vocab.decode([vocab.bos, 0, vocab.eos, 1]) == "a"  # bos skipped, stops at eos


def test_vocabulary_saved_and_restored(tmp_path):
    vocab = Vocabulary.build(["héllo wörld", "foo bar"], "word", min_freq=1)
    path = vocab.save(tmp_path)
    assert path == tmp_path / "vocab.json"
    restored = Vocabulary.load(tmp_path)
    assert restored == vocab and restored.tokenizer == "word"
    assert restored.decode(vocab.encode("foo wörld")) == "foo wörld"
    ids = Vocabulary.for_ids(5000)
    assert ids.to_dict()["size"] == 5000 and "tokens" not in ids.to_dict()
    assert Vocabulary.load(ids.save(tmp_path / "ids.json")) == ids
    bad = dict(vocab.to_dict(), format=99)
    with pytest.raises(ValueError, match="format"):
        Vocabulary.from_dict(bad)


def test_id_vocabulary_maps_ids_to_themselves():
    vocab = Vocabulary.for_ids(10)
    assert vocab.encode([0, 9, 3]) == [0, 9, 3]
    assert vocab.encode([10]) == [vocab.unk]
    assert vocab.decode([4, 2, vocab.eos, 7]) == "4 2"
    with pytest.raises(TypeError):
        vocab.encode("4 2")


# ------------------------------------------------------------------------------------------ corpora


def test_text_file_lines_blank_skipped_and_stripped(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_bytes("\ufeffalpha\r\n\n  beta  \n\t\ngamma".encode())
    assert read_text_lines(path) == ["alpha", "beta", "gamma"]
    packed = tmp_path / "corpus.txt.gz"
    packed.write_bytes(gzip.compress(path.read_bytes()))
    assert read_text_lines(packed) == ["alpha", "beta", "gamma"]


def test_invalid_utf8_is_an_error_naming_the_line(tmp_path):
    path = tmp_path / "bad.txt"
    path.write_bytes(b"fine\n\nstill fine\nbro\xffken\n")
    with pytest.raises(UsageError, match=r"bad\.txt, line 4: not valid UTF-8 \(byte 0xff at byte 4") as info:
        resolve_data(f"text:{path}").load()
    assert "\n" not in str(info.value)


def test_missing_text_file_is_a_usage_error(tmp_path):
    with pytest.raises(UsageError, match="text file not found"):
        resolve_data(f"text:{tmp_path / 'nope.txt'}").load()


def test_long_lines_are_truncated_with_one_warning(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_text("abcdefgh\nab\nabcdefghij\nabcde\nxyzxyzxyz\n", encoding="utf-8")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        dataset = resolve_data(f"text:{path}").load(max_length=5)
    messages = [str(w.message) for w in caught]
    assert len(messages) == 1
    assert "3 of 5 samples" in messages[0] and "max_length=5" in messages[0]
    assert dataset.tokens.shape == (5, 5)
    assert dataset.decode() == ["abcde", "ab", "abcde", "abcde", "xyzxy"]
    assert dataset.lengths.tolist() == [5, 3, 5, 5, 5]  # "ab" + eos


def test_text_source_word_tokenizer_and_default_length(tmp_path):
    path = tmp_path / "words.txt"
    path.write_text("the cat sat\nthe dog\n", encoding="utf-8")
    source = resolve_data(f"text:{path}")
    assert isinstance(source, TextSource) and source.info().modality == "text"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the default length fits every sample: no truncation warning
        dataset = source.load(tokenizer="word")
    assert dataset.max_length == 3 and dataset.decode() == ["the cat sat", "the dog"]
    assert dataset.extras["uses_eos"] and not dataset.extras["uses_unk"]
    assert Vocabulary.from_dict(dataset.extras["vocab"]) == dataset.vocab
    with pytest.raises(UsageError, match="tokens:PATH"):
        source.load(tokenizer="ids")


def test_tokens_mode_reads_integer_ids(tmp_path):
    path = tmp_path / "ids.txt"
    path.write_text("3 1 4 1\n\n5 9 2 6\n", encoding="utf-8")
    dataset = resolve_data(f"tokens:{path}").load(tokenizer="char")  # the tokenizer does not apply to ids
    assert dataset.vocab == Vocabulary.for_ids(10)
    assert dataset.tokens.tolist() == [[3, 1, 4, 1], [5, 9, 2, 6]]
    assert not dataset.extras["uses_eos"]  # every sample fills max_length
    bad = tmp_path / "bad.txt"
    bad.write_text("1 2\n3 x\n", encoding="utf-8")
    with pytest.raises(UsageError, match="line 2: expected space-separated non-negative integer ids"):
        read_token_lines(bad)
    bad.write_text("1 -2\n", encoding="utf-8")
    with pytest.raises(UsageError, match="line 1"):
        read_token_lines(bad)


def test_tokens_mode_takes_a_declared_vocabulary_size(tmp_path):
    path = tmp_path / "ids.txt"
    path.write_text("3 1 4 1\n5 9 2 6\n", encoding="utf-8")
    source = resolve_data(f"tokens:{path}")
    dataset = source.load(vocab_size=5000)
    assert dataset.vocab == Vocabulary.for_ids(5000) and dataset.vocab.pad == 5000
    assert dataset.tokens.tolist() == [[3, 1, 4, 1], [5, 9, 2, 6]]
    with pytest.raises(UsageError, match=r"vocab_size=9 but .* holds id 9"):
        source.load(vocab_size=9)
    text = tmp_path / "names.txt"
    text.write_text("ANNA\n", encoding="utf-8")
    with pytest.raises(UsageError, match="vocab_size is for token-id data"):
        resolve_data(f"text:{text}").load(vocab_size=100)


def test_empty_corpus_is_a_usage_error(tmp_path):
    path = tmp_path / "empty.txt"
    path.write_text("\n  \n", encoding="utf-8")
    with pytest.raises(UsageError, match="no samples"):
        resolve_data(f"text:{path}").load()


def test_surnames_corpus_and_its_fixed_split():
    test = resolve_data("surnames?split=test")
    dataset = test.load()
    assert len(dataset) == 8879 and dataset.vocab.tokenizer == "char"
    assert dataset.decode(2) == ["TAYLOR", "ROBINSON"]  # names 10 and 20 of the frequency-sorted list
    assert set(dataset.vocab.tokens) == set("ABCDEFGHIJKLMNOPQRSTUVWXYZ")
    source = resolve_data("surnames")
    assert source.splits() == ("train", "test")
    train_names = set(source.split("train")._read())
    assert len(train_names) + len(dataset) == 88799
    assert not train_names & set(dataset.decode())
    with pytest.raises(UsageError, match="no split 'dev'"):
        source.split("dev")


def test_text_specs_take_a_seeded_subset_and_no_classes(tmp_path):
    path = tmp_path / "words.txt"
    path.write_text("".join(f"w{i}\n" for i in range(50)), encoding="utf-8")
    subset = resolve_data(f"text:{path}?n=10&seed=3").load(tokenizer="word")
    again = resolve_data(f"text:{path}?n=10&seed=3").load(tokenizer="word")
    other = resolve_data(f"text:{path}?n=10&seed=4").load(tokenizer="word")
    assert len(subset) == 10 and subset.decode() == again.decode() != other.decode()
    kept = [int(word[1:]) for word in subset.decode()]
    assert kept == sorted(kept)  # file order
    assert len(subset.vocab.tokens) == 10  # the vocabulary of the subset only
    names = resolve_data("surnames?split=train&n=25").load()
    assert len(names) == 25 and resolve_data("surnames?split=train&n=25").spec == "surnames?split=train&n=25"
    with pytest.raises(UsageError, match="has only 50 samples"):
        resolve_data(f"text:{path}?n=51").load()
    with pytest.raises(UsageError, match="'classes=' needs labelled image data"):
        resolve_data(f"text:{path}?classes=1")
    with pytest.raises(UsageError, match=r"has no splits; 'split=' is accepted by .*mnist-4k.*surnames"):
        resolve_data(f"text:{path}?split=test")


def test_dataset_items_and_batches():
    vocab = Vocabulary.build(["ab", "abc"], "char")
    dataset = encode_samples(["ab", "abc", "c"], vocab, max_length=4)
    assert isinstance(dataset, TextDataset) and len(dataset) == 3
    item = dataset[1]
    assert item["tokens"].tolist() == [0, 1, 2, vocab.eos] and int(item["length"]) == 4
    batch = dataset.__getitems__([2, 0])
    assert batch["tokens"].shape == (2, 4) and batch["length"].tolist() == [2, 3]


# ------------------------------------------------------------------------------------------ sampling, oracle


def test_draw_follows_the_weights_and_never_picks_zero_weight():
    weights = torch.tensor([[0.1, 0.0, 0.6, 0.3]]).expand(20000, 4)
    ids = draw(weights, torch.Generator().manual_seed(0))
    counts = torch.bincount(ids, minlength=4).float() / len(ids)
    assert counts[1] == 0
    assert torch.allclose(counts, torch.tensor([0.1, 0.0, 0.6, 0.3]), atol=0.015)


@pytest.fixture(scope="module")
def oracle():
    return Oracle.load(ORACLE)


def test_oracle_scores_its_own_samples_at_5_75(oracle):
    """The SeqGAN oracle's entropy rate is 5.748 nats/token (benchmarks/data/README.md). Over 600 sequences of 20
    tokens the standard error of the mean NLL is about 0.024 nats, so ±0.05 is two standard errors (seeded)."""
    assert oracle.vocab_size == 5000 and oracle.hidden_size == 32
    samples = oracle.sample(600, 20, generator=torch.Generator().manual_seed(0))
    assert samples.shape == (600, 20) and samples.dtype == torch.long
    assert oracle.nll(samples) == pytest.approx(5.748, abs=0.05)


def test_oracle_scores_uniform_tokens_at_11_42(oracle):
    """Uniform random tokens score 11.42 nats/token under the oracle (benchmarks/data/README.md); ±0.1 over 400."""
    uniform = torch.randint(5000, (400, 20), generator=torch.Generator().manual_seed(1))
    assert oracle.nll(uniform) == pytest.approx(11.42, abs=0.1)
    assert math.log(5000) < oracle.nll(uniform)  # worse than a uniform model's 8.52


def test_oracle_rejects_bad_input(oracle):
    with pytest.raises(ValueError, match=r"0\.\.4999"):
        oracle.nll(torch.full((2, 20), 5000))
    with pytest.raises(ValueError, match="long token ids"):
        oracle.nll(torch.zeros(2, 20))
    with pytest.raises(ValueError, match="lack"):
        Oracle({"embedding": torch.zeros(3, 2)})

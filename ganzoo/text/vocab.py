"""Tokenisation and the vocabulary of a text model: ids for tokens, fixed-length encoding, decoding, vocab.json.

Three tokenisers: `char` (every character is a token), `word` (whitespace-separated words) and `ids` (the corpus is
already integer ids, e.g. the SeqGAN oracle's; token `i` is id `i`). The regular tokens take ids 0..K-1 (for text,
ordered by falling frequency, ties alphabetically, so a vocabulary built twice from the same data is identical) and
the four special tokens follow them: pad K, bos K+1, eos K+2, unk K+3. A token seen fewer than `min_freq` times in
the training data is not in the vocabulary and encodes as unk.

A sample of up to `max_length` tokens is stored as exactly `max_length` ids: the tokens, then eos if there is room,
then pad. A sample that fills `max_length` has no eos, so fixed-length corpora (the oracle's 20 tokens) never see one.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

TOKENIZERS = ("char", "word", "ids")
SPECIALS = ("<pad>", "<bos>", "<eos>", "<unk>")
VOCAB_FILE = "vocab.json"
_FORMAT = 1


def tokenize(text: str, tokenizer: str) -> list[str]:
    """Split one sample into tokens: characters (`char`), or whitespace-separated words (`word`) or ids (`ids`, as
    `tokens:` files and decoded id samples write them)."""
    if tokenizer == "char":
        return list(text)
    if tokenizer in ("word", "ids"):
        return text.split()
    raise ValueError(f"unknown text tokenizer {tokenizer!r}; accepted: {', '.join(TOKENIZERS)}")


class Vocabulary:
    """Token <-> id maps of one tokeniser, with pad, bos, eos and unk after the regular tokens."""

    def __init__(self, tokens: Sequence[str], tokenizer: str) -> None:
        if tokenizer not in TOKENIZERS:
            raise ValueError(f"unknown tokenizer {tokenizer!r}; accepted: {', '.join(TOKENIZERS)}")
        if len(set(tokens)) != len(tokens):
            raise ValueError("vocabulary tokens must be unique")
        self.tokenizer = tokenizer
        self.tokens = list(tokens)
        self._ids = {token: i for i, token in enumerate(self.tokens)}

    @classmethod
    def build(cls, samples: Iterable[str], tokenizer: str, min_freq: int = 1) -> Vocabulary:
        """The vocabulary of the tokens seen at least `min_freq` times in `samples`, most frequent first."""
        if min_freq < 1:
            raise ValueError(f"min_freq must be at least 1, got {min_freq}")
        counts = Counter(token for sample in samples for token in tokenize(sample, tokenizer))
        kept = sorted((t for t, c in counts.items() if c >= min_freq), key=lambda t: (-counts[t], t))
        return cls(kept, tokenizer)

    @classmethod
    def for_ids(cls, size: int) -> Vocabulary:
        """Token-id mode: ids 0..size-1 stand for themselves."""
        if size < 1:
            raise ValueError(f"an id vocabulary needs at least one id, got size {size}")
        return cls([str(i) for i in range(size)], "ids")

    # The special tokens follow the regular ones.
    @property
    def pad(self) -> int:
        return len(self.tokens)

    @property
    def bos(self) -> int:
        return len(self.tokens) + 1

    @property
    def eos(self) -> int:
        return len(self.tokens) + 2

    @property
    def unk(self) -> int:
        return len(self.tokens) + 3

    def __len__(self) -> int:
        """Every id the model knows: the regular tokens and the four specials."""
        return len(self.tokens) + len(SPECIALS)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Vocabulary) and (self.tokenizer, self.tokens) == (other.tokenizer, other.tokens)

    def __repr__(self) -> str:
        return f"Vocabulary({self.tokenizer}, {len(self.tokens)} tokens + {len(SPECIALS)} specials)"

    def token(self, index: int) -> str:
        """The token of one id (specials by their names)."""
        if 0 <= index < len(self.tokens):
            return self.tokens[index]
        if len(self.tokens) <= index < len(self):
            return SPECIALS[index - len(self.tokens)]
        raise IndexError(f"id {index} is outside the vocabulary of {len(self)} ids")

    def encode(self, sample: str | Sequence[int]) -> list[int]:
        """The ids of one sample's tokens, unknown ones as unk; in `ids` mode `sample` is a sequence of ints."""
        if self.tokenizer == "ids":
            if isinstance(sample, str):
                raise TypeError("an id vocabulary encodes sequences of ints, not text")
            return [i if 0 <= i < len(self.tokens) else self.unk for i in sample]
        if not isinstance(sample, str):
            raise TypeError(f"a {self.tokenizer} vocabulary encodes text, not {type(sample).__name__}")
        return [self._ids.get(token, self.unk) for token in tokenize(sample, self.tokenizer)]

    def unknown_tokens(self, samples: Iterable[str | Sequence[int]]) -> Counter[str]:
        """How often each token of `samples` that this vocabulary lacks occurs (what `encode` reads as unk)."""
        if self.tokenizer == "ids":
            return Counter(str(i) for sample in samples for i in sample if not 0 <= i < len(self.tokens))
        return Counter(
            token for sample in samples for token in tokenize(str(sample), self.tokenizer) if token not in self._ids
        )

    def fixed_length(self, ids: Sequence[int], max_length: int) -> tuple[list[int], int]:
        """`ids` as exactly `max_length` ids (cut, or followed by eos and pads) and how many of them count: the
        tokens kept plus the eos, i.e. the positions a model is trained to predict."""
        if max_length < 1:
            raise ValueError(f"max_length must be at least 1, got {max_length}")
        row = list(ids[:max_length])
        if len(row) < max_length:
            row.append(self.eos)
        scored = len(row)
        return row + [self.pad] * (max_length - len(row)), scored

    def decode(self, ids: Iterable[int]) -> str:
        """Text of one sample: stops at eos or pad, skips bos, shows unk as `<unk>`; words and ids joined by
        spaces, characters directly."""
        parts = []
        for index in ids:
            index = int(index)
            if index in (self.eos, self.pad):
                break
            if index != self.bos:
                parts.append(self.token(index))
        return ("" if self.tokenizer == "char" else " ").join(parts)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready description (an id vocabulary stores only its size)."""
        record: dict[str, Any] = {"format": _FORMAT, "tokenizer": self.tokenizer, "specials": list(SPECIALS)}
        if self.tokenizer == "ids":
            record["size"] = len(self.tokens)
        else:
            record["tokens"] = self.tokens
        return record

    @classmethod
    def from_dict(cls, record: Mapping[str, Any]) -> Vocabulary:
        if record.get("format") != _FORMAT or list(record.get("specials", ())) != list(SPECIALS):
            raise ValueError(f"unsupported vocabulary format {record.get('format')!r} (this ganzoo reads {_FORMAT})")
        if record["tokenizer"] == "ids":
            return cls.for_ids(int(record["size"]))
        return cls(list(record["tokens"]), record["tokenizer"])

    def save(self, path: str | Path) -> Path:
        """Write the vocabulary as JSON (`vocab.json` inside `path` when it is a directory)."""
        path = Path(path)
        if path.is_dir():
            path = path / VOCAB_FILE
        path.write_text(json.dumps(self.to_dict(), ensure_ascii=False) + "\n", encoding="utf-8")
        return path

    @classmethod
    def load(cls, path: str | Path) -> Vocabulary:
        """Read a vocabulary written by `save` (a file, or a directory holding `vocab.json`)."""
        path = Path(path)
        if path.is_dir():
            path = path / VOCAB_FILE
        return cls.from_dict(json.loads(path.read_text(encoding="utf-8")))

"""Text corpora as data sources: `text:PATH`, `tokens:PATH` and the embedded `surnames`, encoded to fixed-length ids.

* `text:PATH`: UTF-8 text (gzip too, when PATH ends in .gz), one sample per line, surrounding whitespace stripped,
  blank lines skipped. A line that is not valid UTF-8 is a `UsageError` naming the file and the line.
* `tokens:PATH`: one sample per line as space-separated non-negative integer ids (token-id mode, for corpora that
  are already integers such as the SeqGAN oracle's); the vocabulary is ids 0..max id.
* `surnames`: 88,799 US surnames shipped with ganzoo (see `assets/NOTICE.md`); `?split=test` is every tenth name
  (8,879, stratified by frequency since the file is sorted by it), `?split=train` the other 79,920.

Every text spec takes `?n=COUNT` (with `seed=`): a seeded random subset of its samples, e.g.
`surnames?split=train&n=500`.

`load(tokenizer=, min_freq=, max_length=)` builds the vocabulary from the loaded samples and returns a
`TextDataset`; samples longer than `max_length` tokens are cut, and one warning says how many were. The dataset's
`extras` (the vocabulary, the length) are what a text model needs to know about its data. `VocabularySource` reads
a source with a model's own vocabulary and length instead (fine-tuning, resuming). Importing this module registers
the three specs with `ganzoo.data.register_data`.
"""

from __future__ import annotations

import gzip
import warnings
from collections import Counter
from collections.abc import Callable, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import torch

from ganzoo.data.sources import DataSource, register_data, seeded_subset
from ganzoo.errors import UsageError
from ganzoo.plugin import DataInfo
from ganzoo.text.vocab import Vocabulary

__all__ = [
    "SURNAMES",
    "TextDataset",
    "TextSource",
    "VocabularySource",
    "encode_samples",
    "read_surnames",
    "read_text_lines",
    "read_token_lines",
]

SURNAMES = "surnames"
SURNAMES_TEST_EVERY = 10  # surnames?split=test: names 10, 20, 30, ... of the frequency-sorted list
_Sample = str | Sequence[int]
_Reader = Callable[[], list[Any]]


class TextDataset(torch.utils.data.Dataset):
    """Fixed-length token ids (N, T) with the number of scored positions of each sample (tokens + eos).

    Items and batches are dicts with `tokens` (long) and `length` (long).
    """

    def __init__(self, tokens: torch.Tensor, lengths: torch.Tensor, vocab: Vocabulary) -> None:
        if tokens.ndim != 2 or tokens.dtype != torch.long or lengths.shape != tokens.shape[:1]:
            raise ValueError(f"expected long tokens (N, T) and N lengths, got {tuple(tokens.shape)}, {lengths.shape}")
        self.tokens = tokens
        self.lengths = lengths.long()
        self.vocab = vocab

    @property
    def max_length(self) -> int:
        return self.tokens.shape[1]

    @property
    def extras(self) -> dict[str, Any]:
        """Facts for `DataInfo.extras`: the vocabulary, the sample length, and whether any sample has an eos (ends
        before `max_length`) or an unk (a token rarer than `min_freq`): a model need not emit those that never occur."""
        return {
            "vocab": self.vocab.to_dict(),
            "max_length": self.max_length,
            "uses_eos": bool((self.tokens == self.vocab.eos).any()),
            "uses_unk": bool((self.tokens == self.vocab.unk).any()),
        }

    def __len__(self) -> int:
        return len(self.tokens)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {"tokens": self.tokens[index], "length": self.lengths[index]}

    def __getitems__(self, indices: Sequence[int]) -> dict[str, torch.Tensor]:
        index = torch.as_tensor(indices, dtype=torch.long)
        return {"tokens": self.tokens[index], "length": self.lengths[index]}

    def decode(self, limit: int | None = None) -> list[str]:
        """The samples as text (the first `limit`)."""
        return [self.vocab.decode(row) for row in self.tokens[:limit].tolist()]


def encode_samples(
    samples: Sequence[_Sample], vocab: Vocabulary, max_length: int | None = None, origin: str = "the data"
) -> TextDataset:
    """Encode samples (text, or id sequences for an id vocabulary) to a `TextDataset` of `max_length` ids each
    (default: the longest sample's token count). Longer samples are cut; one warning counts them."""
    if not samples:
        raise UsageError(f"{origin} holds no samples (every line is blank)")
    encoded = [vocab.encode(sample) for sample in samples]
    length = max_length if max_length is not None else max(len(ids) for ids in encoded)
    rows, scored = zip(*(vocab.fixed_length(ids, length) for ids in encoded), strict=True)
    truncated = sum(len(ids) > length for ids in encoded)
    if truncated:
        warnings.warn(
            f"{truncated} of {len(encoded)} samples in {origin} are longer than max_length={length} tokens and were "
            "truncated",
            stacklevel=2,
        )
    return TextDataset(torch.tensor(rows, dtype=torch.long), torch.tensor(scored, dtype=torch.long), vocab)


def _read_bytes(path: Path, spec: str) -> bytes:
    if not path.is_file():
        raise UsageError(f"text file not found: {path} (from --data {spec})")
    data = path.read_bytes()
    if path.suffix == ".gz":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError) as exc:
            raise UsageError(f"{path} is not a readable gzip file: {exc}") from None
    return data.removeprefix(b"\xef\xbb\xbf")  # a UTF-8 byte order mark is not text


def _numbered_lines(path: Path, spec: str) -> list[tuple[int, str]]:
    """(line number, stripped text) of every non-blank line; invalid UTF-8 is a `UsageError` naming the line."""
    lines = []
    for number, raw in enumerate(_read_bytes(path, spec).split(b"\n"), start=1):
        try:
            line = raw.decode("utf-8").strip()
        except UnicodeDecodeError as exc:
            raise UsageError(
                f"{path}, line {number}: not valid UTF-8 (byte 0x{raw[exc.start]:02x} at byte {exc.start + 1} of "
                "the line); text data must be UTF-8"
            ) from None
        if line:
            lines.append((number, line))
    return lines


def read_text_lines(path: str | Path, spec: str | None = None) -> list[str]:
    """The non-blank lines of a UTF-8 file, stripped; invalid UTF-8 is a `UsageError` naming the line."""
    path = Path(path)
    return [line for _, line in _numbered_lines(path, spec or f"text:{path}")]


def read_token_lines(path: str | Path, spec: str | None = None) -> list[list[int]]:
    """The non-blank lines of a file of space-separated non-negative integer ids; anything else names its line."""
    path = Path(path)
    samples = []
    for number, line in _numbered_lines(path, spec or f"tokens:{path}"):
        try:
            ids = [int(part) for part in line.split()]
        except ValueError:
            ids = [-1]
        if min(ids) < 0:
            raise UsageError(
                f"{path}, line {number}: expected space-separated non-negative integer ids, got {line[:40]!r}"
            )
        samples.append(ids)
    return samples


def read_surnames() -> list[str]:
    """The embedded surnames, most frequent first (the order of the file)."""
    with resources.files("ganzoo.text").joinpath("assets/us-surnames.txt.gz").open("rb") as handle:
        return gzip.decompress(handle.read()).decode("utf-8").split()


def in_surnames_test(rank: int) -> bool:
    """Whether the name at `rank` (0-based, most frequent first) is in surnames?split=test."""
    return rank % SURNAMES_TEST_EVERY == SURNAMES_TEST_EVERY - 1


def _surnames_split(name: str) -> _Reader:
    def read() -> list[str]:
        test = name == "test"
        return [n for i, n in enumerate(read_surnames()) if in_surnames_test(i) == test]

    return read


class TextSource(DataSource):
    """A text or token-id corpus read on `load`; `kind` is `text` (tokenised by the model's choice) or `tokens`."""

    def __init__(self, spec: str, read: _Reader, kind: str, splits: dict[str, _Reader] | None = None) -> None:
        if kind not in ("text", "tokens"):
            raise ValueError(f"unknown text source kind {kind!r}")
        self.spec = spec
        self.kind = kind
        self._read = read
        self._splits = splits or {}

    def info(self) -> DataInfo:
        return DataInfo(modality="text", extras={"corpus": self.kind})

    def splits(self) -> tuple[str, ...]:
        return tuple(self._splits)

    def split(self, name: str) -> DataSource:
        if name not in self._splits:
            raise UsageError(f"data spec {self.spec!r} has no split {name!r}; accepted: {', '.join(self._splits)}")
        return TextSource(f"{self.spec}?split={name}", self._splits[name], self.kind)

    def select(self, spec: str, classes: list[int] | None, n: int | None, seed: int) -> DataSource:
        """`?n=COUNT` (and `seed=`): a seeded random subset of the samples, kept in file order, from which the
        vocabulary is then built; text has no classes."""
        if classes is not None:
            raise UsageError(f"'classes=' needs labelled image data; {self.spec!r} is text (accepted here: n=, seed=)")
        read = self._read

        def subset() -> list[Any]:
            samples = read()
            if n is None:
                return samples
            return [samples[i] for i in seeded_subset(len(samples), n, seed, self.spec).tolist()]

        return TextSource(spec, subset, self.kind)

    def load(
        self,
        tokenizer: str = "char",
        min_freq: int = 1,
        max_length: int | None = None,
        vocab_size: int | None = None,
        vocabulary: Vocabulary | None = None,
        **_: Any,
    ) -> TextDataset:
        """Read the samples, build their vocabulary (`tokenizer` and `min_freq` apply to text) and encode them; for
        token ids the vocabulary is ids 0..`vocab_size`-1 (default: up to the largest id in the samples).

        With `vocabulary` (a fine-tuned or resumed model's) the samples are encoded with it instead: its tokenizer
        applies, and one warning counts the tokens it lacks, which are read as unk."""
        samples = self._read()
        if not samples:
            raise UsageError(f"{self.spec} holds no samples (every line is blank)")
        if vocabulary is not None:
            if (self.kind == "tokens") != (vocabulary.tokenizer == "ids"):
                wanted = "token ids (tokens:PATH)" if vocabulary.tokenizer == "ids" else "text"
                raise UsageError(f"the model reads {wanted}, and {self.spec!r} is {self.kind}")
            _warn_unknown(vocabulary.unknown_tokens(samples), self.spec)
            return encode_samples(samples, vocabulary, max_length, origin=self.spec)
        if vocab_size is not None and self.kind != "tokens":
            raise UsageError(f"vocab_size is for token-id data (tokens:PATH); {self.spec!r} builds its vocabulary")
        if self.kind == "tokens":
            largest = max(max(ids) for ids in samples)
            if vocab_size is not None and vocab_size <= largest:
                raise UsageError(f"vocab_size={vocab_size} but {self.spec} holds id {largest}; it must exceed every id")
            vocab = Vocabulary.for_ids(vocab_size or largest + 1)
        elif tokenizer == "ids":
            raise UsageError(f"tokenizer=ids needs token-id data (tokens:PATH), not {self.spec!r}")
        else:
            vocab = Vocabulary.build(samples, tokenizer, min_freq)
        return encode_samples(samples, vocab, max_length, origin=self.spec)


def _warn_unknown(unknown: Counter[str], spec: str) -> None:
    if not unknown:
        return
    shown = ", ".join(repr(token) for token, _ in unknown.most_common(8)) + (", ..." if len(unknown) > 8 else "")
    warnings.warn(
        f"{unknown.total()} tokens of {spec} ({len(unknown)} distinct: {shown}) are not in the model's vocabulary "
        "and are read as <unk>",
        stacklevel=3,
    )


class VocabularySource(DataSource):
    """A text source read with a given vocabulary and sample length (a fine-tuned or resumed model's) instead of
    the vocabulary of its own samples: the token ids then mean what they meant to the model."""

    def __init__(self, source: DataSource, data_info: DataInfo) -> None:
        if not isinstance(source, (TextSource, VocabularySource)):
            raise UsageError(f"a text model reads text data (text:PATH, tokens:PATH, {SURNAMES}), not {source.spec!r}")
        self.source = source.source if isinstance(source, VocabularySource) else source
        self.spec = source.spec
        self.vocabulary = Vocabulary.from_dict(data_info.extras["vocab"])
        self.max_length = int(data_info.extras["max_length"])

    def info(self) -> DataInfo:
        return self.source.info()

    def load(self, **_: Any) -> TextDataset:
        return self.source.load(vocabulary=self.vocabulary, max_length=self.max_length)


def _text_source(spec: str, rest: str) -> TextSource:
    path = Path(rest).expanduser()
    return TextSource(spec, lambda: read_text_lines(path, spec), "text")


def _tokens_source(spec: str, rest: str) -> TextSource:
    path = Path(rest).expanduser()
    return TextSource(spec, lambda: read_token_lines(path, spec), "tokens")


def _surnames_source(spec: str) -> TextSource:
    return TextSource(spec, read_surnames, "text", {name: _surnames_split(name) for name in ("train", "test")})


register_data("text", _text_source, prefix=True)
register_data("tokens", _tokens_source, prefix=True)
register_data(SURNAMES, _surnames_source)

"""Text data for text GANs: tokenisers and vocabularies (`vocab`), corpora as data sources (`corpus`: `text:PATH`,
`tokens:PATH`, the embedded `surnames`), and the SeqGAN synthetic oracle (`oracle`).

Only the vocabulary is imported here (it needs no torch); import `ganzoo.text.corpus` to register the data specs.
"""

from ganzoo.text.vocab import SPECIALS, TOKENIZERS, VOCAB_FILE, Vocabulary, tokenize

__all__ = ["SPECIALS", "TOKENIZERS", "VOCAB_FILE", "Vocabulary", "tokenize"]

"""The synthetic "oracle" LSTM of SeqGAN (Yu et al. 2017), the text-GAN benchmark of SeqGAN, RankGAN, LeakGAN, RelGAN.

A one-layer LSTM with vocabulary 5000, embedding 32 and hidden 32 whose N(0, 1) parameters are read from an npz
file (`benchmarks/data/seqgan-oracle.npz`): `h0 = c0 = 0`, the first input is `embedding[0]` (start token 0, not
emitted), then per step

    i = sigmoid(x Wi + h Ui + bi)    f = sigmoid(x Wf + h Uf + bf)    o = sigmoid(x Wog + h Uog + bog)
    c~ = tanh(x Wc + h Uc + bc)      c = f * c + i * c~                h = o * tanh(c)
    logits = h Wo + bo

and the next input is `embedding[token]`. Sequences have exactly `length` tokens, with no eos or padding.
`sample` draws sequences at temperature 1; `nll` is their mean negative log-likelihood per token in nats
(NLL_oracle when the sequences come from a generator). The oracle's own samples score about 5.748.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ganzoo.text.sampling import draw

__all__ = ["ORACLE_KEYS", "Oracle"]

_GATES = ("i", "f", "og", "c")
ORACLE_KEYS = ("embedding", "Wo", "bo", *(f"{kind}{gate}" for gate in _GATES for kind in ("W", "U", "b")))
START_TOKEN = 0


class Oracle:
    """The SeqGAN oracle; all computation in float32 (float64 on request) on `device`."""

    def __init__(self, params: dict[str, torch.Tensor]) -> None:
        missing = [key for key in ORACLE_KEYS if key not in params]
        if missing:
            raise ValueError(f"oracle parameters lack {', '.join(missing)}")
        self.params = {key: params[key] for key in ORACLE_KEYS}
        # The four gates as one (in, 4 * hidden) matrix each for x and h: the same sums, one matmul.
        self._w = torch.cat([self.params[f"W{g}"] for g in _GATES], dim=1)
        self._u = torch.cat([self.params[f"U{g}"] for g in _GATES], dim=1)
        self._b = torch.cat([self.params[f"b{g}"] for g in _GATES])

    @classmethod
    def load(cls, path: str | Path, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32) -> Oracle:
        """Read the parameters from an npz file (no pickle)."""
        with np.load(Path(path), allow_pickle=False) as arrays:
            params = {key: torch.as_tensor(arrays[key], dtype=dtype, device=device) for key in arrays.files}
        return cls(params)

    @property
    def vocab_size(self) -> int:
        return self.params["embedding"].shape[0]

    @property
    def hidden_size(self) -> int:
        return self.params["Ui"].shape[0]

    def _step(
        self, tokens: torch.Tensor, h: torch.Tensor, c: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Logits of the next token after input `tokens`, and the new state."""
        x = self.params["embedding"][tokens]
        i, f, o, candidate = (x @ self._w + h @ self._u + self._b).chunk(4, dim=1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(candidate)
        h = torch.sigmoid(o) * torch.tanh(c)
        return h @ self.params["Wo"] + self.params["bo"], h, c

    def _start(self, n: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        device, dtype = self._b.device, self._b.dtype
        state = torch.zeros(n, self.hidden_size, device=device, dtype=dtype)
        return torch.full((n,), START_TOKEN, dtype=torch.long, device=device), state, state.clone()

    @torch.no_grad()
    def sample(self, n: int, length: int = 20, generator: torch.Generator | None = None) -> torch.Tensor:
        """n sequences of `length` token ids (long, (n, length)) drawn at temperature 1."""
        tokens, h, c = self._start(n)
        out = torch.empty(n, length, dtype=torch.long, device=self._b.device)
        for t in range(length):
            logits, h, c = self._step(tokens, h, c)
            tokens = draw(torch.softmax(logits, dim=1), generator)
            out[:, t] = tokens
        return out

    @torch.no_grad()
    def nll(self, sequences: torch.Tensor, batch_size: int = 4096) -> float:
        """Mean negative log-likelihood per token, in nats, of (n, length) id sequences under the oracle."""
        if sequences.ndim != 2 or sequences.dtype != torch.long:
            raise ValueError(f"expected (n, length) long token ids, got {sequences.dtype} {tuple(sequences.shape)}")
        if int(sequences.min()) < 0 or int(sequences.max()) >= self.vocab_size:
            raise ValueError(f"token ids must lie in 0..{self.vocab_size - 1}")
        total = torch.zeros((), dtype=torch.float64)
        for chunk in sequences.to(self._b.device).split(batch_size):
            tokens, h, c = self._start(len(chunk))
            for t in range(chunk.shape[1]):
                logits, h, c = self._step(tokens, h, c)
                tokens = chunk[:, t]
                picked = torch.log_softmax(logits, dim=1).gather(1, tokens[:, None])
                total -= picked.double().sum().cpu()
        return float(total) / sequences.numel()

"""The LSTM-GAN networks: an autoregressive generator over token ids, whose recurrent core is an LSTM or RelGAN's
relational memory (Nie et al. 2019, after Santoro et al. 2018), and a discriminator over (soft) one-hot token
sequences.

The generator's three ways to produce text:
* `sample`: ids drawn at a temperature, optionally from the top-k tokens only or from the nucleus of probability
  top-p (Holtzman et al. 2020) (no gradient);
* `gumbel_sample`: the Gumbel-softmax relaxation of RelGAN (Nie et al. 2019): at each step
  `softmax(beta * (logits + g))` with Gumbel noise g is the soft one-hot the discriminator sees, differentiable in
  the generator's parameters, while the hard token `argmax(logits + g)` (an exact sample) is fed back as the next
  input; a larger inverse temperature `beta` brings the soft one-hot closer to the hard one;
* `log_probs` of given sequences (teacher forcing), for MLE and for REINFORCE, with `rollout_rewards`: SeqGAN's
  (Yu et al. 2017) Monte-Carlo estimate of the discriminator's reward for every prefix of a sequence.

A sequence is `max_length` ids: tokens, then eos (when it ends early), then pads. The generator never emits bos or
pad, nor eos or unk when the training data has none (eos: a fixed-length corpus; unk: every token in the vocabulary);
after an eos it emits pads.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ganzoo.engine.precision import cpu_supports_bf16
from ganzoo.text import Vocabulary
from ganzoo.text.sampling import draw, shape_logits

__all__ = ["GENERATOR_KINDS", "RelationalMemory", "TextDiscriminator", "TextGenerator"]

State = tuple[torch.Tensor, torch.Tensor] | torch.Tensor  # an LSTM's (h, c), or a relational memory's slots
GENERATOR_KINDS = ("lstm", "relational")


def run_lstm(lstm: nn.LSTM, inputs: torch.Tensor, state: State | None = None) -> tuple[torch.Tensor, State]:
    """`lstm(inputs, state)`, in float32 under CPU autocast to a dtype oneDNN has no LSTM for: fp16 on every CPU,
    bf16 on CPUs without native bf16 (AVX2 only: "could not create a primitive descriptor")."""
    if inputs.device.type != "cpu" or not torch.is_autocast_enabled("cpu"):
        return lstm(inputs, state)
    if torch.get_autocast_dtype("cpu") == torch.bfloat16 and cpu_supports_bf16():
        return lstm(inputs, state)
    with torch.autocast("cpu", enabled=False):
        return lstm(inputs.float(), None if state is None else (state[0].float(), state[1].float()))


class RelationalMemory(nn.Module):
    """The relational memory core (Santoro et al. 2018) that RelGAN's generator runs in place of an LSTM.

    The state is `slots` memory rows of `size` = `heads` x head size. Each step the input (projected to `size`) is
    appended to the memory, the memory attends over memory and input (multi-head attention, the rows as queries),
    then a residual MLP, each with layer norm, gives the candidate M~; LSTM-style gates made from the input and
    tanh(memory) mix it in: M' = sigmoid(i) * tanh(M~) + sigmoid(f + 1) * M. The output is M' flattened (slots x
    size). The initial memory is the identity matrix padded with zeros, as in the paper.
    """

    def __init__(self, input_dim: int, size: int, slots: int = 1, heads: int = 2) -> None:
        super().__init__()
        if size % heads:
            raise ValueError(f"relational memory size {size} must be a multiple of heads={heads}")
        self.slots, self.size = slots, size
        self.output_dim = slots * size
        self.project = nn.Linear(input_dim, size)
        self.attention = nn.MultiheadAttention(size, heads, batch_first=True)
        self.norm_attention, self.norm_mlp = nn.LayerNorm(size), nn.LayerNorm(size)
        self.mlp = nn.Sequential(nn.Linear(size, size), nn.ReLU(), nn.Linear(size, size))
        self.gate_input, self.gate_memory = nn.Linear(size, 2 * size), nn.Linear(size, 2 * size)
        self.register_buffer("initial", torch.eye(slots, size), persistent=False)

    def step(self, inputs: torch.Tensor, memory: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """(n, input_dim) inputs and (n, slots, size) memory (None: the initial one) -> (n, slots x size) output
        and the new memory."""
        x = self.project(inputs)[:, None]
        if memory is None:
            memory = self.initial.to(x.dtype).expand(len(x), -1, -1)
        both = torch.cat([memory, x], dim=1)
        attended, _ = self.attention(memory, both, both, need_weights=False)
        candidate = self.norm_attention(memory + attended)
        candidate = self.norm_mlp(candidate + self.mlp(candidate))
        input_gate, forget_gate = (self.gate_input(x) + self.gate_memory(torch.tanh(memory))).chunk(2, dim=2)
        memory = torch.sigmoid(input_gate) * torch.tanh(candidate) + torch.sigmoid(forget_gate + 1.0) * memory
        return memory.flatten(1), memory

    def forward(self, inputs: torch.Tensor, memory: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(n, T, input_dim) -> (n, T, slots x size) outputs and the last memory."""
        outputs = []
        for t in range(inputs.shape[1]):
            out, memory = self.step(inputs[:, t], memory)
            outputs.append(out)
        return torch.stack(outputs, dim=1), memory


class TextGenerator(nn.Module):
    """Token embedding, a recurrent core (`kind`: a multi-layer LSTM, or RelGAN's relational memory of `slots` rows
    of `hidden_dim` with `heads` attention heads) and a linear softmax head over the vocabulary."""

    def __init__(
        self,
        vocab: Vocabulary,
        max_length: int,
        embed_dim: int = 32,
        hidden_dim: int = 32,
        layers: int = 1,
        uses_eos: bool = True,
        uses_unk: bool = True,
        kind: str = "lstm",
        slots: int = 1,
        heads: int = 2,
    ) -> None:
        super().__init__()
        if kind not in GENERATOR_KINDS:
            raise ValueError(f"unknown generator kind {kind!r}; accepted: {', '.join(GENERATOR_KINDS)}")
        self.vocab = vocab
        self.vocab_size = len(vocab)
        self.max_length = max_length
        self.kind = kind
        self.embed = nn.Embedding(self.vocab_size, embed_dim)
        if kind == "lstm":
            self.lstm = nn.LSTM(embed_dim, hidden_dim, layers, batch_first=True)
            features = hidden_dim
        else:
            self.memory = RelationalMemory(embed_dim, hidden_dim, slots, heads)
            features = self.memory.output_dim
        self.head = nn.Linear(features, self.vocab_size)
        banned = torch.zeros(self.vocab_size)  # added to the head's bias: -inf for the ids it never emits
        never = [vocab.pad, vocab.bos] + ([] if uses_eos else [vocab.eos]) + ([] if uses_unk else [vocab.unk])
        banned[never] = -math.inf
        self.register_buffer("banned", banned, persistent=False)

    # ------------------------------------------------------------------------------------------ internals

    def _logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """float32 logits with the never-emitted tokens at -inf (in one pass over the (n, V) output)."""
        return F.linear(hidden, self.head.weight, self.head.bias + self.banned).float()

    def _run(self, inputs: torch.Tensor, state: State | None = None) -> tuple[torch.Tensor, State]:
        """The core over (n, T, embed_dim) inputs: (n, T, features) outputs and the state after them."""
        if self.kind == "lstm":
            return run_lstm(self.lstm, inputs, state)
        return self.memory(inputs, state)

    def _repeat_state(self, state: State, times: int) -> State:
        """Each sample's state `times` times in a row (for roll-outs)."""
        if self.kind == "lstm":
            return state[0].repeat_interleave(times, 1), state[1].repeat_interleave(times, 1)
        return state.repeat_interleave(times, 0)

    def _step(self, tokens: torch.Tensor, state: State | None) -> tuple[torch.Tensor, State]:
        """Logits of the next token after feeding `tokens` (n,), and the new state."""
        out, state = self._run(self.embed(tokens)[:, None], state)
        return self._logits(out[:, 0]), state

    def _start(self, n: int) -> torch.Tensor:
        return torch.full((n,), self.vocab.bos, dtype=torch.long, device=self.banned.device)

    def _continue(
        self,
        tokens: torch.Tensor,
        state: State | None,
        finished: torch.Tensor,
        steps: int,
        temperature: float = 1.0,
        top_k: int | None = None,
        generator: torch.Generator | None = None,
        top_p: float | None = None,
    ) -> torch.Tensor:
        """`steps` more ids after feeding `tokens`; rows already `finished` (past an eos) get pads."""
        out = []
        for _ in range(steps):
            logits, state = self._step(tokens, state)
            shaped = shape_logits(logits, temperature, top_k, top_p)
            tokens = draw((shaped - shaped.amax(dim=1, keepdim=True)).exp_(), generator)  # softmax, unnormalised
            out.append(torch.where(finished, self.vocab.pad, tokens))
            finished = finished | (tokens == self.vocab.eos)
        if not out:
            return torch.empty(len(tokens), 0, dtype=torch.long, device=tokens.device)
        return torch.stack(out, dim=1)

    def _teacher_inputs(self, tokens: torch.Tensor) -> torch.Tensor:
        return torch.cat([self._start(len(tokens))[:, None], tokens[:, :-1]], dim=1)

    # ------------------------------------------------------------------------------------------ public

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """Teacher forcing: (n, T) ids -> (n, T, V) float32 logits, position t predicting `tokens[:, t]`."""
        out, _ = self._run(self.embed(self._teacher_inputs(tokens)))
        return self._logits(out)

    def log_probs(self, tokens: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
        """(n, T) log-probability of each id given the ids before it (pads after an eos included; mask them), under
        the distribution that `sample` draws from at `temperature`."""
        logits = shape_logits(self(tokens), temperature)
        return torch.log_softmax(logits, dim=-1).gather(2, tokens[:, :, None]).squeeze(2)

    @torch.no_grad()
    def sample(
        self,
        n: int,
        temperature: float = 1.0,
        top_k: int | None = None,
        generator: torch.Generator | None = None,
        top_p: float | None = None,
    ) -> torch.Tensor:
        """(n, max_length) ids drawn from softmax(logits / temperature), from the `top_k` likeliest ids and the
        nucleus of probability `top_p` when set."""
        finished = torch.zeros(n, dtype=torch.bool, device=self.banned.device)
        return self._continue(self._start(n), None, finished, self.max_length, temperature, top_k, generator, top_p)

    def gumbel_sample(
        self, n: int, beta: float, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(n, T, V) soft one-hot sequences softmax(beta * (logits + g)), differentiable in the parameters, and the
        (n, T) hard ids argmax(logits + g) fed back as inputs; after an eos both are the pad's one-hot."""
        device = self.banned.device
        tokens = self._start(n)
        state = None
        alive = torch.ones(n, 1, device=device)
        pad = F.one_hot(torch.tensor(self.vocab.pad, device=device), self.vocab_size).float()
        soft, hard = [], []
        for _ in range(self.max_length):
            logits, state = self._step(tokens, state)
            uniform = torch.rand(logits.shape, device=device, generator=generator).clamp_(1e-10, 1.0 - 1e-7)
            noisy = logits - torch.log(-torch.log(uniform))
            tokens = noisy.argmax(dim=1)
            soft.append(alive * torch.softmax(beta * noisy, dim=1) + (1 - alive) * pad)
            hard.append(torch.where(alive[:, 0] > 0, tokens, self.vocab.pad))
            alive = alive * (tokens != self.vocab.eos)[:, None].float()
        return torch.stack(soft, dim=1), torch.stack(hard, dim=1)

    @torch.no_grad()
    def rollout_rewards(
        self,
        tokens: torch.Tensor,
        discriminator: nn.Module,
        rollouts: int,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """SeqGAN's rewards (n, T): for each prefix tokens[:, :t+1] the mean of sigmoid(D) over `rollouts`
        completions drawn from this generator; for the full sequence sigmoid(D) of the sequence itself."""
        n, length = tokens.shape
        rewards = torch.empty(n, length, device=tokens.device)
        inputs = self._teacher_inputs(tokens)
        state: State | None = None
        finished = torch.zeros(n, dtype=torch.bool, device=tokens.device)
        for t in range(length - 1):
            _, state = self._step(inputs[:, t], state)  # the state that predicted tokens[:, t]
            finished = finished | (tokens[:, t] == self.vocab.eos)
            tail = self._continue(
                tokens[:, t].repeat_interleave(rollouts),
                self._repeat_state(state, rollouts),
                finished.repeat_interleave(rollouts),
                length - 1 - t,
                generator=generator,
            )
            full = torch.cat([tokens[:, : t + 1].repeat_interleave(rollouts, 0), tail], dim=1)
            scores = torch.sigmoid(discriminator(full).float())
            rewards[:, t] = scores.view(n, rollouts).mean(dim=1)
        rewards[:, -1] = torch.sigmoid(discriminator(tokens).float())
        return rewards


class TextDiscriminator(nn.Module):
    """A sequence classifier over (n, T, V) float one-hot (or soft one-hot) inputs, or (n, T) token ids: a bias-free
    linear embedding (a mixture of its columns for soft rows; for ids and exact one-hots, a lookup), then an LSTM
    whose last hidden state is scored, or a CNN of several kernel widths with max-over-time pooling (Kim 2014, as in
    SeqGAN and RelGAN). Returns (n,) logits."""

    def __init__(
        self,
        vocab_size: int,
        max_length: int,
        kind: str = "cnn",
        embed_dim: int = 64,
        hidden_dim: int = 64,
        kernel_sizes: Sequence[int] = (2, 3, 4, 5),
    ) -> None:
        super().__init__()
        if kind not in ("cnn", "lstm"):
            raise ValueError(f"unknown discriminator kind {kind!r}; accepted: cnn, lstm")
        self.kind = kind
        self.vocab_size = vocab_size
        self.embed = nn.Linear(vocab_size, embed_dim, bias=False)
        if kind == "lstm":
            self.lstm = nn.LSTM(embed_dim, hidden_dim, batch_first=True)
            features = hidden_dim
        else:
            widths = sorted({min(k, max_length) for k in kernel_sizes})  # a kernel cannot outgrow the sequence
            self.convs = nn.ModuleList(nn.Conv1d(embed_dim, hidden_dim, k) for k in widths)
            features = hidden_dim * len(widths)
        self.out = nn.Linear(features, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim == 2 and not x.is_floating_point():  # ids: the rows of the embedding their one-hots would pick
            h = F.embedding(x, self.embed.weight.t())
        elif x.ndim == 3 and x.shape[2] == self.vocab_size:
            h = self.embed(x)
        else:
            raise ValueError(
                f"expected (n, T) token ids or (n, T, {self.vocab_size}) one-hot sequences, got {tuple(x.shape)}"
            )
        if self.kind == "lstm":
            _, (hidden, _) = run_lstm(self.lstm, h)
            features = hidden[-1]
        else:
            h = h.transpose(1, 2)
            features = torch.cat([F.relu(conv(h)).amax(dim=2) for conv in self.convs], dim=1)
        return self.out(features).squeeze(1)

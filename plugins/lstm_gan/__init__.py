"""LSTM-GAN for text as a ganzoo plugin: an LSTM generator over tokens (or RelGAN's relational memory,
`g_kind=relational`), an LSTM or CNN discriminator over (soft) one-hot sequences, MLE pre-training, then
adversarial training through the Gumbel-softmax relaxation with an annealed inverse temperature (RelGAN, Nie et
al. 2019) or through REINFORCE with Monte-Carlo roll-outs (SeqGAN, Yu et al. 2017).

The schedule is phases of `UpdateStep`s that the engine runs: `mle` (the generator's maximum likelihood on the data,
with its own Adam at `lr_mle`) for the first `pretrain_steps` iterations, `d_pretrain` (the discriminator
alone) for the next `pretrain_d_steps`, then `discriminator` (`d_steps` times) and `generator` every iteration to
the end. Text comes from `text:PATH`, `tokens:PATH` or the embedded `surnames` (the default); the vocabulary built
from the data is part of the model's data info, so a saved model decodes its samples without the data.

By default D sees the Gumbel samples' hard one-hots and G gets the soft ones' gradient (straight-through): with
RelGAN's soft samples D tells generated text by its softness, and G learns to sharpen and to end early
(benchmarks/RESULTS.md, "lstm-gan: what the text benchmarks show"). With the soft samples, an R1 penalty on D
(`r1_gamma`) and an EMA of the adversarial phase (the engine's `ema_start`) hold that sharpening steady instead of
letting it cycle: the recipe that meets the SeqGAN-oracle target, and no better than a lower sampling temperature.

Networks are in `networks.py`, imported when the model is built, so `ganzoo list` does not import torch.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

from ganzoo import DataInfo, GANPlugin, OptimizerSpec, UpdateStep, UsageError, option
from ganzoo.plugin import ADVERSARIAL_LOSSES, Recipe

TEXT_SPECS = "text:PATH, tokens:PATH or surnames"
BETA_SCHEDULES = ("exp", "linear")


@dataclasses.dataclass
class LSTMGANConfig:
    tokenizer: str = option(
        "char", "how text:/surnames data is split: char or word (tokens: data is ids)", choices=("char", "word")
    )
    min_freq: int = option(1, "tokens seen fewer times in the training data become <unk>", min=1)
    max_length: int | None = option(None, "tokens per sample, longer ones are cut (default: the longest sample)", min=1)
    vocab_size: int | None = option(
        None, "tokens: data: ids 0..vocab_size-1 (default: up to the largest training id); text builds its own", min=1
    )
    embed_dim: int = option(32, "generator token embedding size", min=1)
    g_kind: str = option(
        "lstm",
        "generator core: lstm, or relational (RelGAN's relational memory: mem_slots rows of hidden_dim, heads heads)",
        choices=("lstm", "relational"),
    )
    hidden_dim: int = option(32, "generator LSTM hidden size, or relational memory row size", min=1)
    layers: int = option(1, "generator LSTM layers", min=1)
    mem_slots: int = option(1, "relational: memory rows (RelGAN: 1)", min=1)
    heads: int = option(2, "relational: attention heads; hidden_dim must be a multiple (RelGAN: 2)", min=1)
    d_kind: str = option(
        "cnn", "discriminator: cnn (kernel widths d_kernel_sizes, max-over-time) or lstm", choices=("cnn", "lstm")
    )
    d_embed_dim: int = option(64, "discriminator embedding size of the (soft) one-hot tokens", min=1)
    d_hidden_dim: int = option(64, "discriminator LSTM size, or filters per kernel width of the CNN", min=1)
    d_kernel_sizes: tuple[int, ...] = option((2, 3, 4, 5), "CNN discriminator kernel widths")
    adversarial: str = option(
        "gumbel",
        "how G learns from D: gumbel (RelGAN) or reinforce (SeqGAN roll-outs)",
        choices=("gumbel", "reinforce"),
    )
    loss: str = option(
        "non-saturating", "adversarial loss (gumbel; reinforce rewards are sigmoid(D))", choices=ADVERSARIAL_LOSSES
    )
    pretrain_steps: int = option(1000, "first iterations: MLE pre-training of the generator only", min=0)
    pretrain_d_steps: int = option(0, "then iterations of discriminator pre-training against the fixed G", min=0)
    d_steps: int = option(1, "discriminator updates per adversarial iteration", min=1)
    r1_gamma: float = option(
        0.0, "R1 penalty weight: adds gamma/2 E||grad D(x)||^2 on the real sequences' one-hots; 0: off", min=0
    )
    beta_max: float = option(
        100.0,
        "gumbel: the largest inverse temperature beta of softmax(beta (logits + g)), "
        "reached at the end of training (RelGAN's 'temperature')",
        min=1,
    )
    straight_through: bool = option(
        True,
        "gumbel: D sees the hard one-hot samples, G gets the soft ones' gradient (straight-through), so D cannot "
        "tell generated text by its softness",
    )
    beta_schedule: str = option(
        "exp",
        "gumbel: beta from 1 to beta_max over the adversarial iterations: exp (beta_max^p) or linear",
        choices=BETA_SCHEDULES,
    )
    rollouts: int = option(16, "reinforce: Monte-Carlo completions per prefix for the rewards", min=1)
    mle_weight: float = option(
        0.0,
        "adversarial generator updates add this times the NLL of a data batch (interleaved MLE, as in LeakGAN): "
        "it anchors G to the data while D pulls it",
        min=0,
    )
    lr_mle: float = option(1e-2, "generator learning rate of MLE pre-training (its own Adam)", min=0)
    lr_g: float = option(1e-4, "generator learning rate (Adam) of the adversarial updates", min=0)
    lr_d: float = option(1e-4, "discriminator learning rate (Adam)", min=0)
    betas: tuple[float, float] = option((0.9, 0.999), "Adam betas of both networks")


def beta_at(step: int, start: int, end: int, beta_max: float, schedule: str) -> float:
    """The Gumbel-softmax inverse temperature at iteration `step` of an adversarial phase [start, end): 1 at its
    start, `beta_max` at its last iteration; `exp`: beta_max ** p, `linear`: 1 + (beta_max - 1) p."""
    progress = min(1.0, max(0.0, (step - start) / max(1, end - 1 - start)))
    if schedule == "exp":
        return beta_max**progress
    if schedule == "linear":
        return 1.0 + (beta_max - 1.0) * progress
    raise ValueError(f"unknown beta schedule {schedule!r}; accepted: {', '.join(BETA_SCHEDULES)}")


def _adversarial_start(config: LSTMGANConfig) -> int:
    return config.pretrain_steps + config.pretrain_d_steps


def _beta(ctx: Any) -> float:
    """beta now; the annealing ends with training (`ctx.total_steps`; unknown outside the engine: beta_max)."""
    total = ctx.total_steps if ctx.total_steps is not None else _adversarial_start(ctx.config) + 1
    return beta_at(ctx.step, _adversarial_start(ctx.config), total, ctx.config.beta_max, ctx.config.beta_schedule)


def _scored_log_probs(g: Any, tokens: Any, lengths: Any, temperature: float = 1.0) -> tuple[Any, Any]:
    """The generator's (n, T) log-probabilities of `tokens` (at `temperature`), zero past each sample's `lengths`
    scored positions (where the pads, which it never emits, have log-probability -inf), and the number of scored
    positions."""
    import torch

    scored = torch.arange(tokens.shape[1], device=tokens.device)[None] < lengths[:, None]
    return g.log_probs(tokens, temperature).masked_fill(~scored, 0.0), scored.sum()


def _mle_step(nets: Any, batch: Any, ctx: Any) -> tuple[Any, dict[str, Any]]:
    """Maximum likelihood: the mean negative log-likelihood per scored token of a data batch, in nats."""
    log_probs, count = _scored_log_probs(nets["generator"], batch["tokens"], batch["length"])
    return -log_probs.sum() / count, {}


def _fakes(nets: Any, ctx: Any, n: int, for_generator: bool) -> tuple[Any, dict[str, Any]]:
    """Generated sequences as D sees them: sampled ids for REINFORCE and for D's own updates under straight-through
    (the hard Gumbel-max sample is an exact draw from G, so `sample` gives it without the soft one-hots); RelGAN's
    soft one-hots; for G's straight-through update the hard one-hots with the soft ones' gradient."""
    import torch.nn.functional as F

    g = nets["generator"]
    if ctx.config.adversarial == "reinforce":
        return g.sample(n), {}
    beta = _beta(ctx)
    if ctx.config.straight_through and not for_generator:
        return g.sample(n), {"beta": beta}
    soft, hard = g.gumbel_sample(n, beta)
    if not ctx.config.straight_through:
        return soft, {"beta": beta}
    return F.one_hot(hard, g.vocab_size).to(soft.dtype) + soft - soft.detach(), {"beta": beta}


def _d_step(nets: Any, batch: Any, ctx: Any) -> tuple[Any, dict[str, Any]]:
    """D's loss on a data batch against generated sequences, plus the R1 penalty on the data's one-hots (the
    gradient with respect to D's input, which ids do not have) when `r1_gamma` is set."""
    import torch
    import torch.nn.functional as F

    from ganzoo.losses import discriminator_loss, gradient_penalty

    d = nets["discriminator"]
    with torch.no_grad():
        fake, logs = _fakes(nets, ctx, len(batch["tokens"]), for_generator=False)
    real_logits, fake_logits = d(batch["tokens"]), d(fake)
    loss = discriminator_loss(ctx.config.loss, real_logits, fake_logits)
    logs.update(d_real=real_logits.detach().float().mean(), d_fake=fake_logits.detach().float().mean())
    if ctx.config.r1_gamma > 0:
        penalty = gradient_penalty(d, F.one_hot(batch["tokens"], d.vocab_size), "r1", scaler=ctx.scaler)
        loss = loss + 0.5 * ctx.config.r1_gamma * penalty
        logs["r1_penalty"] = penalty.detach()
    return loss, logs


def _with_mle(loss: Any, logs: dict[str, Any], nets: Any, batch: Any, ctx: Any) -> tuple[Any, dict[str, Any]]:
    """The adversarial generator loss plus `mle_weight` times the NLL of the data batch (when it is set)."""
    if ctx.config.mle_weight == 0:
        return loss, logs
    nll, _ = _mle_step(nets, batch, ctx)
    logs["nll"] = nll.detach()
    return loss + ctx.config.mle_weight * nll, logs


def _g_gumbel_step(nets: Any, batch: Any, ctx: Any) -> tuple[Any, dict[str, Any]]:
    """RelGAN: D scores the generator's Gumbel-softmax samples (or their hard one-hots, straight-through);
    gradients reach G through the relaxation."""
    from ganzoo.losses import generator_loss

    fake, logs = _fakes(nets, ctx, ctx.batch_size, for_generator=True)
    return _with_mle(generator_loss(ctx.config.loss, nets["discriminator"](fake)), logs, nets, batch, ctx)


def _g_reinforce_step(nets: Any, batch: Any, ctx: Any) -> tuple[Any, dict[str, Any]]:
    """SeqGAN: the policy gradient of sampled sequences, each token weighted by its roll-out reward minus the
    batch's mean reward at that position (a baseline that lowers the variance and leaves the gradient unbiased)."""
    import torch

    g = nets["generator"]
    with torch.no_grad():
        tokens = g.sample(ctx.batch_size)
        rewards = g.rollout_rewards(tokens, nets["discriminator"], ctx.config.rollouts)
    log_probs, count = _scored_log_probs(g, tokens, (tokens != g.vocab.pad).sum(dim=1))
    advantage = rewards - rewards.mean(dim=0, keepdim=True)
    loss = -(log_probs * advantage).sum() / count
    return _with_mle(loss, {"reward": rewards[:, -1].mean()}, nets, batch, ctx)


class LSTMGAN(GANPlugin):
    name = "lstm-gan"
    modality = "text"
    description = "LSTM text GAN: MLE pre-training, then Gumbel-softmax (RelGAN) or REINFORCE (SeqGAN) training."
    version = "0.4.1"
    Config = LSTMGANConfig
    reference_recipe = Recipe(
        "lstm-gan-surnames",
        "surnames?split=train",
        2000,
        eval_data="surnames?split=test",
        metrics="bleu,self-bleu",
        temperatures=(0.7, 0.8, 0.9, 1.0, 1.2),
    )
    default_data = "surnames"
    train_defaults: ClassVar[dict[str, Any]] = {"steps": 2000, "batch_size": 64}
    finetune_defaults: ClassVar[dict[str, Any]] = {"lr_mle": 1e-4}
    """A hundredth of the MLE learning rate: at 1e-2 fine-tuning on 100 names forgets the source within 25
    iterations (benchmarks/transfer_text.py, RESULTS.md "transfer: text")."""

    def validate(self, config: LSTMGANConfig) -> None:
        if config.g_kind == "relational" and config.hidden_dim % config.heads:
            raise UsageError(
                f"lstm-gan hidden_dim={config.hidden_dim} must be a multiple of heads={config.heads} (relational)"
            )
        if not config.d_kernel_sizes or min(config.d_kernel_sizes) < 1:
            raise UsageError(f"lstm-gan d_kernel_sizes={config.d_kernel_sizes} must be positive widths, e.g. 2,3,4,5")

    def data_options(self, config: LSTMGANConfig) -> dict[str, Any]:
        return {
            "tokenizer": config.tokenizer,
            "min_freq": config.min_freq,
            "max_length": config.max_length,
            "vocab_size": config.vocab_size,
        }

    def build(self, config: LSTMGANConfig, data_info: DataInfo) -> dict[str, Any]:
        from ganzoo.text import Vocabulary
        from ganzoo_plugins.lstm_gan.networks import TextDiscriminator, TextGenerator

        if data_info.modality != "text" or "vocab" not in data_info.extras:
            raise UsageError(f"lstm-gan needs text data ({TEXT_SPECS}), not {data_info.modality} data")
        vocab = Vocabulary.from_dict(data_info.extras["vocab"])
        length = int(data_info.extras["max_length"])
        uses = [bool(data_info.extras.get(key, True)) for key in ("uses_eos", "uses_unk")]
        return {
            "generator": TextGenerator(
                vocab,
                length,
                config.embed_dim,
                config.hidden_dim,
                config.layers,
                *uses,
                kind=config.g_kind,
                slots=config.mem_slots,
                heads=config.heads,
            ),
            "discriminator": TextDiscriminator(
                len(vocab), length, config.d_kind, config.d_embed_dim, config.d_hidden_dim, config.d_kernel_sizes
            ),
        }

    def schedule(self, config: LSTMGANConfig) -> list[UpdateStep]:
        mle_end, adversarial = config.pretrain_steps, _adversarial_start(config)
        g_step = _g_gumbel_step if config.adversarial == "gumbel" else _g_reinforce_step
        steps = []
        if mle_end > 0:
            steps.append(UpdateStep("mle", ("generator",), _mle_step, steps=(0, mle_end), optimizer="mle"))
        if adversarial > mle_end:
            steps.append(UpdateStep("d_pretrain", ("discriminator",), _d_step, steps=(mle_end, adversarial)))
        return [
            *steps,
            UpdateStep("discriminator", ("discriminator",), _d_step, repeats=config.d_steps, steps=(adversarial, None)),
            UpdateStep(
                "generator", ("generator",), g_step, needs_data=config.mle_weight > 0, steps=(adversarial, None)
            ),
        ]

    def optimizers(self, config: LSTMGANConfig) -> dict[str, OptimizerSpec]:
        """Adam for each network, and a separate one for MLE pre-training (its own rate; the adversarial updates
        start with fresh moments rather than those of the much larger MLE gradients, as in RelGAN)."""
        betas = tuple(config.betas)
        specs = {
            "generator": OptimizerSpec(lr=config.lr_g, betas=betas),
            "discriminator": OptimizerSpec(lr=config.lr_d, betas=betas),
        }
        if config.pretrain_steps > 0:
            specs["mle"] = OptimizerSpec(lr=config.lr_mle, betas=betas)
        return specs

    def extra_files(self, data_info: DataInfo) -> dict[str, str]:
        """Files saved beside the weights in checkpoints and Hub repos: the vocabulary as `vocab.json` (a copy of
        the one in config.json's data info, which is what loading reads)."""
        import json

        from ganzoo.text import VOCAB_FILE

        return {VOCAB_FILE: json.dumps(data_info.extras["vocab"], ensure_ascii=False) + "\n"}

    def frozen_d_blocks(self, nets: Any) -> list[Any]:
        """FreezeD on the discriminator: its token embedding, then its LSTM or convolutions, then its head."""
        d = nets["discriminator"]
        return [d.embed, d.lstm if d.kind == "lstm" else d.convs, d.out]

    def sample_tokens(
        self,
        nets: Any,
        n: int,
        generator: Any = None,
        temperature: float = 1.0,
        top_k: int | None = None,
        top_p: float | None = None,
    ) -> Any:
        """(n, max_length) token ids (long): tokens, then eos and pads when a sample ends early."""
        return nets["generator"].sample(n, temperature=temperature, top_k=top_k, generator=generator, top_p=top_p)

    def decode(self, nets: Any, tokens: Any) -> list[str]:
        """Token ids (n, T) as text with the model's vocabulary (ids joined by spaces in token-id mode)."""
        vocab = nets["generator"].vocab
        return [vocab.decode(row) for row in tokens.tolist()]

    def sample(
        self,
        nets: Any,
        n: int,
        condition: Any = None,
        generator: Any = None,
        temperature: float = 1.0,
        top_k: int | None = None,
        top_p: float | None = None,
    ) -> list[str]:
        """n samples as text, drawn at `temperature` (from the `top_k` likeliest tokens and the nucleus of
        probability `top_p` when set)."""
        if condition is not None:
            raise UsageError("lstm-gan is not a conditional model; it takes no condition")
        return self.decode(nets, self.sample_tokens(nets, n, generator, temperature, top_k, top_p))

    def nll(
        self, nets: Any, tokens: Any, lengths: Any | None = None, temperature: float = 1.0, batch_size: int = 512
    ) -> float:
        """The generator's mean negative log-likelihood per scored token of (n, T) ids, in nats (NLL_test), under
        its distribution at `temperature`; `lengths` (scored positions per sample) defaults to the ids before the
        pads."""
        import torch

        g = nets["generator"]
        if lengths is None:
            lengths = (tokens != g.vocab.pad).sum(dim=1)
        total, count = 0.0, 0.0
        with torch.no_grad():
            for chunk, chunk_lengths in zip(tokens.split(batch_size), lengths.split(batch_size), strict=True):
                log_probs, scored = _scored_log_probs(g, chunk, chunk_lengths, temperature)
                total -= float(log_probs.sum())
                count += float(scored)
        return total / count


plugin = LSTMGAN()

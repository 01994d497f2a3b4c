"""The engine's own settings (`TrainConfig`): schedule length, batch, precision, EMA, logging, checkpoints."""

from __future__ import annotations

import dataclasses

from ganzoo.config import option

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
AUGMENTS = ("none", "ada")
DIVERGENCE_POLICIES = ("stop", "rollback")
LR_SCHEDULES = ("constant", "linear-decay")


@dataclasses.dataclass
class TrainConfig:
    """Training settings shared by every plugin; plugins may change the defaults via `train_defaults`."""

    steps: int = option(2000, "iterations of the plugin's update schedule", min=1)
    epochs: float | None = option(None, "train for this many passes over the data instead of `steps`", min=0)
    batch_size: int = option(64, "images per update step, summed over all DDP ranks", min=1)
    precision: str = option("auto", "fp32, bf16 (autocast), fp16 (autocast + GradScaler) or auto", choices=PRECISIONS)
    device: str = option("auto", "auto (CUDA when present, else CPU), cpu, cuda or cuda:N")
    lr_schedule: str = option(
        "constant",
        "learning rates of every optimizer: constant, or linear-decay (constant, then linearly down towards 0)",
        choices=LR_SCHEDULES,
    )
    lr_decay_start: float = option(
        0.5, "linear-decay: the fraction of the iterations after which the learning rates decay", min=0, max=1
    )
    seed: int = option(0, "seed of every random stream (weights, noise, data order)")
    deterministic: bool = option(False, "use only deterministic kernels (slower on CUDA)")
    ema_decay: float = option(0.999, "EMA decay of the generator weights; 0 turns the EMA off", min=0, max=1)
    ema_kimg: float | None = option(
        None,
        "EMA half-life in thousands of images, as StyleGAN counts it (sets the decay from the batch size: "
        "0.5^(batch / (1000 ema_kimg))); None: ema_decay",
        min=0,
    )
    ema_warmup_power: float = option(
        0.75, "EMA warm-up: decay = min(ema_decay, 1 - (1 + step)^-power); 0 turns the warm-up off", min=0
    )
    ema_start: int = option(0, "iterations before the EMA starts averaging (it copies the weights until then)", min=0)
    channels_last: bool = option(False, "store 4-D weights and image batches channels-last (faster convolutions)")
    compile: bool = option(
        False, "torch.compile the trained networks (nn.Module.compile, inductor); the first iterations compile"
    )
    compile_cache: str | None = option(
        None, "compile: inductor's cache directory (TORCHINDUCTOR_CACHE_DIR), reused by later runs (default: torch's)"
    )
    diffaugment: str = option(
        "", "DiffAugment ops on every discriminator input, comma-separated: color, translation, cutout; empty: off"
    )
    augment: str = option(
        "none",
        "adaptive augmentation of every discriminator input (ADA, Karras et al. 2020): none, or ada (its strength p "
        "follows the overfitting heuristic E[sign(D(real))] towards ada_target)",
        choices=AUGMENTS,
    )
    ada_target: float = option(0.6, "ada: the target of E[sign(D(real))]; lower augments more", min=0, max=1)
    ada_interval: int = option(4, "ada: iterations between adjustments of p", min=1)
    ada_kimg: float = option(
        100, "ada: thousands of real images it takes p to move from 0 to 1 at most (the paper's 500)", min=0.001
    )
    freeze_d: int = option(0, "FreezeD: freeze the first N discriminator blocks (fine-tuning); 0: off", min=0)
    accumulate: int = option(
        1, "gradient accumulation: each update's batch as this many equal micro-batches, one optimizer step", min=1
    )
    grad_clip: float | None = option(None, "clip each network's gradient norm to this value", min=0)
    on_divergence: str = option(
        "stop",
        "when training diverges (a non-finite loss or weight, an fp16 overflow storm): stop with a one-line error, or "
        "rollback to the last good checkpoint with the learning rates scaled by rollback_lr_factor and a re-seeded "
        "data order",
        choices=DIVERGENCE_POLICIES,
    )
    rollback_lr_factor: float = option(0.5, "rollback: each rollback multiplies the learning rates by this", min=0)
    max_rollbacks: int = option(3, "rollback: at most this many rollbacks, then stop", min=0)
    rollback_on_warning: bool = option(
        False,
        "a health warning rolls the run back too (to the newest checkpoint before the first metrics line of its "
        "evidence, the initial state's included, learning rates scaled, data re-seeded; counted in max_rollbacks, "
        "after which warnings only warn)",
    )
    num_workers: int = option(0, "DataLoader worker processes (0: load in the training process)", min=0)
    log_every: int = option(50, "iterations between metrics.jsonl lines", min=1)
    health_every: int = option(
        50,
        "iterations between health diagnostics (D's AUC and accuracies, diversity, gradient norms, update sizes, "
        "recall); 0: off",
        min=0,
    )
    health_window: int = option(3, "health: metrics lines a warning must see in a row", min=2)
    health_diversity: float = option(
        0.5, "health: 'mode collapse suspected' below this diversity (fakes' feature spread over the data's)", min=0
    )
    health_diversity_fall: float = option(
        0.3,
        "health: ... and when it fell by this fraction of its value over the window (a fresh generator's low "
        "diversity is no collapse)",
        min=0,
        max=1,
    )
    health_d_auc: float = option(
        0.99,
        "health: 'discriminator wins' above this D AUC (real scored above fake) while G's loss rises",
        min=0,
        max=1,
    )
    health_recall_floor: float = option(
        0.3,
        "health: no 'discriminator wins' while the small-sample recall is at least this (the samples still cover "
        "the data)",
        min=0,
        max=1,
    )
    health_recall_ratio: float = option(
        0.1,
        "health: 'mode collapse suspected' when the small-sample recall is below this fraction of its precision "
        "(realistic samples covering little of the data) for the window",
        min=0,
    )
    health_min_precision: float = option(
        0.1, "health: the small-sample precision that rule needs (an untrained generator has neither)", min=0, max=1
    )
    health_g_grad: float = option(
        1e-3, "health: 'generator not learning' below this fraction of G's first gradient norm", min=0
    )
    health_g_update: float = option(
        1e-6, "health: 'generator not learning' when a step moves G's weights by less than this fraction", min=0
    )
    health_recall: int = option(
        256,
        "health: samples (and fixed real images) of the small-sample recall in the eval_features extractor, for "
        "image generators; 0: off",
        min=0,
    )
    health_oscillation: float = option(
        0.3, "health: 'oscillation' when D's AUC swings up and down by more than this every line", min=0
    )
    health_min_scale: float = option(1.0, "health: 'loss scale collapsing' when an fp16 scale falls below this", min=0)
    sample_every: int = option(500, "iterations between sample grids (and one at the end)", min=1)
    sample_grid: int = option(64, "images in each sample grid", min=1)
    checkpoint_every: int = option(1000, "iterations between checkpoints (and one at the end)", min=1)
    keep_checkpoints: int = option(3, "how many of the newest checkpoints to keep", min=1)
    eval_every: int | None = option(
        None, "iterations between evaluations (metrics.jsonl, TensorBoard, checkpoints/best); None: off", min=1
    )
    eval_metrics: str | None = option(
        None, "metrics to evaluate, comma-separated (default: fid; bleu for text); the first picks the best checkpoint"
    )
    eval_features: str = option("digits", "feature extractor of the evaluations: digits, inception, timm:<model>")
    eval_n: int = option(2000, "generated samples per evaluation", min=2)
    eval_data: str | None = option(None, "real data to compare with (default: the training data)")
    progress: bool = option(True, "show progress: a bar on a terminal, else one line per logged step")
    tensorboard: bool = option(True, "write TensorBoard events when the tensorboard extra is installed")

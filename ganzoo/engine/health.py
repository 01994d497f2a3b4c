"""Training health: cheap diagnostics measured while a run trains, and named warnings drawn from them.

`HealthProbe` measures, at every `health_every`-th iteration, through forward hooks on the discriminators (no
plugin change): during each discriminator update, the first call on the real batch itself (its image tensor) and
the first call on anything else (the generated batch) give D's logits on real and fake samples and the features
entering its last declared block (`GANPlugin.frozen_d_blocks`); from them

- `health/d_auc`: the probability that D scores a real image above a fake one (threshold-free, so it reads the
  same for every loss: 0.5 D cannot tell them apart, 1 it always can), `health/d_acc_real` and
  `health/d_acc_fake` (the fractions of real logits above 0 and fake logits below it) and `health/d_acc_gap`
  (their difference);
- `health/diversity`: the mean pairwise distance of the fake batch's features over that of the real batch's, in
  the same D at the same step (1: as varied as the data; near 0: every sample looks alike to D);

and, from the engine, `health/grad_norm/<role>` (each trained network's gradient norm, unscaled under fp16),
`health/update/<role>` (how far one optimizer step moved its weights, relative to their norm: 0 for a network
that does not learn, whatever its gradients), `health/loss_scale/<update>` (the GradScaler's scale under fp16) and,
for image generators when the run's `eval_features` extractor loads, `health/precision` and `health/recall`
(`RecallProbe`: small-sample precision and recall of the live generator against fixed real images of the training
data). The values go into the metrics window, so they reach metrics.jsonl and TensorBoard averaged like any other.

`HealthRules` reads each metrics line and names what it sees, once per kind, with the step and the evidence:
`mode collapse suspected`, `discriminator wins`, `generator not learning`, `oscillation`, `loss scale
collapsing`. The thresholds are `TrainConfig` fields (`health_*`). The rules keep only the lines they have read,
so a resumed run replays its truncated metrics.jsonl into them and warns exactly as an uninterrupted one.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ganzoo.engine.ada import first_tensor

HEALTH_FILE = "health.json"


def pairwise_spread(features: torch.Tensor) -> torch.Tensor:
    """The mean Euclidean distance between the rows of (n, ...) features (0 for fewer than two rows)."""
    flat = features.detach().float().flatten(1)
    if len(flat) < 2:
        return flat.new_zeros(())
    distances = torch.cdist(flat, flat)
    return distances.sum() / (len(flat) * (len(flat) - 1))


def separation(real: torch.Tensor, fake: torch.Tensor) -> dict[str, torch.Tensor]:
    """D's AUC (P[real logit > fake logit], ties half), its accuracies on real and fake at threshold 0, and their
    gap, from the logits of one real and one fake batch."""
    real, fake = real.detach().float().flatten(), fake.detach().float().flatten()
    above = (real[:, None] > fake[None, :]).float() + 0.5 * (real[:, None] == fake[None, :]).float()
    acc_real, acc_fake = (real > 0).float().mean(), (fake < 0).float().mean()
    return {"d_auc": above.mean(), "d_acc_real": acc_real, "d_acc_fake": acc_fake, "d_acc_gap": acc_real - acc_fake}


class HealthProbe:
    """The discriminator-side diagnostics (see the module docstring), measured while `active`."""

    def __init__(self) -> None:
        self.active = False
        self._real: tuple[torch.Tensor, ...] = ()
        self._current: str | None = None  # "real" or "fake": the kind of the discriminator call running now
        self._logits: dict[str, torch.Tensor] = {}
        self._features: dict[str, torch.Tensor] = {}

    def install(
        self, discriminators: Iterable[nn.Module], feature_blocks: Iterable[nn.Module]
    ) -> list[torch.utils.hooks.RemovableHandle]:
        """Hook the discriminators (their logits) and the blocks whose inputs are their features."""

        def before(module: nn.Module, args: tuple) -> None:
            if not self.active or not args or self._current is not None:
                return
            kind = "real" if any(args[0] is real for real in self._real) else "fake"
            self._current = kind if kind not in self._logits else None

        def after(module: nn.Module, args: tuple, output: Any) -> None:
            if self._current is None:
                return
            logits = first_tensor(output)
            if logits is not None:
                self._logits[self._current] = logits.detach()
            self._current = None

        def features(module: nn.Module, args: tuple) -> None:
            tensor = first_tensor(args)
            if self._current is not None and tensor is not None:
                self._features[self._current] = tensor.detach()

        handles = []
        for module in discriminators:
            handles += [module.register_forward_pre_hook(before), module.register_forward_hook(after)]
        for block in feature_blocks:
            handles.append(block.register_forward_pre_hook(features))
        return handles

    def begin(self, batch: Mapping[str, Any], measure: bool, keep: bool = False) -> None:
        """A discriminator update (or one micro-batch of it) is about to run on `batch` (its images, or a text
        batch's token ids, are the real samples); `measure`: at a health step; `keep`: keep what earlier
        micro-batches of the update gave."""
        self.active = measure
        self._real = tuple(v for v in batch.values() if isinstance(v, torch.Tensor) and v.ndim >= 2)
        self._current = None
        if not keep:
            self._logits, self._features = {}, {}

    def end(self) -> dict[str, torch.Tensor]:
        """What the update showed: separation values when D saw a real and a fake batch, and the diversity."""
        self.active = False
        values: dict[str, torch.Tensor] = {}
        if {"real", "fake"} <= set(self._logits):
            values.update(separation(self._logits["real"], self._logits["fake"]))
        if {"real", "fake"} <= set(self._features):
            real = pairwise_spread(self._features["real"])
            if float(real) > 0:
                values["diversity"] = pairwise_spread(self._features["fake"]) / real
        self._logits, self._features = {}, {}
        return values


def parameter_snapshot(module: nn.Module) -> list[torch.Tensor]:
    """A copy of a network's trainable parameters (before an optimizer step, for `relative_update`)."""
    return [p.detach().clone() for p in module.parameters() if p.requires_grad]


def relative_update(module: nn.Module, before: Sequence[torch.Tensor]) -> torch.Tensor | None:
    """||theta - theta_before|| / ||theta_before|| over the parameters `parameter_snapshot` copied (None: none)."""
    after = [p.detach() for p in module.parameters() if p.requires_grad]
    if not before or len(after) != len(before):
        return None
    moved = torch.stack([torch.linalg.vector_norm((a - b).float()) for a, b in zip(after, before, strict=True)])
    size = torch.stack([torch.linalg.vector_norm(b.float()) for b in before])
    norm = torch.linalg.vector_norm(size)
    return torch.linalg.vector_norm(moved) / norm if float(norm) > 0 else None


class RecallProbe:
    """The small-sample precision and recall (Kynkaanniemi et al. 2019's, k = 3) of a generator's samples against
    `real`, n fixed real images, in `extractor`'s features: the same seeded samples every time (labels cycling over
    the classes for a conditional model), from the live generator (not its EMA), so a collapse shows when it starts.
    Sampling draws from its own seeded generator: training's random streams are untouched."""

    def __init__(self, extractor: Any, real: torch.Tensor, seed: int) -> None:
        from ganzoo.metrics.reference import extract_all

        self.extractor, self.n, self.seed = extractor, len(real), seed
        self.real, _ = extract_all(extractor, real)

    def measure(self, model: Any) -> tuple[float, float]:
        """(precision, recall) of the model's live generator now."""
        from ganzoo.metrics.evaluation import generate
        from ganzoo.metrics.reference import extract_all
        from ganzoo.metrics.stats import precision_recall

        batches, _ = generate(model, self.n, batch_size=self.n, seed=self.seed, use_ema=False)
        fake, _ = extract_all(self.extractor, torch.cat(batches))
        return precision_recall(fake, self.real)


def gradient_norm(module: nn.Module, scale: float = 1.0) -> torch.Tensor | None:
    """The norm of a network's gradients divided by `scale` (the GradScaler's), or None when it has none."""
    grads = [p.grad.detach().float() for p in module.parameters() if p.grad is not None]
    if not grads:
        return None
    return torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads])) / scale


@dataclasses.dataclass(frozen=True)
class Thresholds:
    """When each warning fires (the `health_*` fields of `TrainConfig`)."""

    window: int = 3
    diversity: float = 0.5
    diversity_fall: float = 0.3
    d_auc: float = 0.99
    g_grad: float = 1e-3
    g_update: float = 1e-6
    recall_floor: float = 0.3
    recall_ratio: float = 0.1
    min_precision: float = 0.1
    oscillation: float = 0.3
    min_scale: float = 1.0


@dataclasses.dataclass(frozen=True)
class HealthWarning:
    """One named warning: the step it fired at, its name and the evidence."""

    step: int
    name: str
    evidence: str

    def line(self) -> str:
        return f"step {self.step}: {self.name} ({self.evidence})"


class HealthRules:
    """Reads metrics lines and names the first occurrence of each kind of trouble (see the module docstring)."""

    def __init__(self, thresholds: Thresholds, generator_roles: Sequence[str]) -> None:
        self.thresholds = thresholds
        self.generator_roles = tuple(generator_roles)
        self.history: list[dict[str, float]] = []
        self.steps: list[int] = []  # the step of each line of `history`
        self.warnings: list[HealthWarning] = []
        self._first_g_grad: dict[str, float] = {}
        self._max_scale: dict[str, float] = {}

    def _series(self, key: str) -> list[float] | None:
        """The last `window` values of `key`, or None until every one of the window's lines has it."""
        lines = self.history[-self.thresholds.window :]
        if len(lines) < self.thresholds.window or any(key not in line for line in lines):
            return None
        return [line[key] for line in lines]

    def _loss(self, generator: bool) -> list[float] | None:
        """The window of the generator's (or the discriminator's) first logged loss."""
        keys = [k for k in self.history[-1] if k.startswith("loss/") and ("gen" in k) == generator]
        return self._series(keys[0]) if keys else None

    def observe(self, step: int, values: Mapping[str, Any]) -> list[HealthWarning]:
        """Read one metrics line; returns the warnings it raised (each kind once per run)."""
        line = {k: float(v) for k, v in values.items() if isinstance(v, (int, float)) and math.isfinite(v)}
        if not any(k.startswith("health/") for k in line):
            return []
        self.history.append(line)
        self.steps.append(step)
        found = [
            (name, evidence)
            for name, evidence in (
                ("mode collapse suspected", self._collapse()),
                ("discriminator wins", self._d_wins()),
                ("generator not learning", self._g_stuck()),
                ("oscillation", self._oscillation()),
                ("loss scale collapsing", self._scale_collapse(line)),
            )
            if evidence
        ]
        seen = {w.name for w in self.warnings}
        fresh = [HealthWarning(step, name, evidence) for name, evidence in found if name not in seen]
        self.warnings += fresh
        return fresh

    def evidence_start(self) -> int:
        """The step of the first line a warning raised now was judged on (the window's oldest)."""
        return self.steps[-self.thresholds.window :][0]

    def _collapse(self) -> str | None:
        t = self.thresholds
        # A fresh generator's samples look alike too (wgan-gp: 0.25 for its first 300 iterations, drifting by a
        # few percent): a collapse is a fall, by `diversity_fall` of the window's first value
        diversity = self._series("health/diversity")
        if diversity and max(diversity) < t.diversity and diversity[-1] < (1 - t.diversity_fall) * diversity[0]:
            return f"diversity {diversity[-1]:.3g} of the data's, was {diversity[0]:.3g}"
        # Samples that look like the data (precision) but cover little of it (recall): within-class collapse,
        # which D's batch diversity misses when every class is still drawn (one image each)
        precision, recall = self._series("health/precision"), self._series("health/recall")
        covering = precision and recall and all(r < t.recall_ratio * p for p, r in zip(precision, recall, strict=True))
        if covering and min(precision) >= t.min_precision:
            return f"recall {recall[-1]:.2f} at precision {precision[-1]:.2f}: realistic samples covering little"
        return None

    def _d_wins(self) -> str | None:
        auc, g_loss, d_loss = self._series("health/d_auc"), self._loss(True), self._loss(False)
        t = self.thresholds
        # A Wasserstein critic (its loss goes negative) separates real from fake by design: AUC 1 on healthy runs
        wasserstein = d_loss is not None and min(d_loss) < 0
        # Late in a long healthy run D separates its training images from the samples too (AUC 0.99+, dcgan after
        # 3,000 iterations on 3,000 digits) while the samples keep improving: no win while they cover the data
        recall = self._series("health/recall")
        covered = recall is not None and max(recall) >= t.recall_floor
        if auc and min(auc) > t.d_auc and g_loss and g_loss[-1] > g_loss[0] and not wasserstein and not covered:
            return f"D AUC above {t.d_auc:g} for {t.window} lines, G loss {g_loss[0]:.3g} -> {g_loss[-1]:.3g}"
        return None

    def _g_stuck(self) -> str | None:
        for role in self.generator_roles:
            moved = self._series(f"health/update/{role}")
            if moved and max(moved) < self.thresholds.g_update:
                return f"{role} weights move by {moved[-1]:.3g} of their norm per step"
            grads = self._series(f"health/grad_norm/{role}")
            if not grads:
                continue
            first = self._first_g_grad.setdefault(role, grads[0])
            if first > 0 and max(grads) < self.thresholds.g_grad * first:
                return f"{role} gradient norm {grads[-1]:.3g}, was {first:.3g}"
        return None

    def _oscillation(self) -> str | None:
        # D's AUC, not its accuracies at logit 0: those swing with D's bias on a healthy run (dcgan: +-0.7)
        auc = self._series("health/d_auc")
        if not auc:
            return None
        changes = [b - a for a, b in itertools.pairwise(auc)]
        alternating = all(a * b < 0 for a, b in itertools.pairwise(changes))
        smallest = min(abs(c) for c in changes)
        if alternating and smallest > self.thresholds.oscillation:
            return f"D's AUC swings by {smallest:.2f} or more every line"
        return None

    def _scale_collapse(self, line: Mapping[str, float]) -> str | None:
        for key, scale in line.items():
            if key.startswith("health/loss_scale/"):
                peak = self._max_scale[key] = max(self._max_scale.get(key, scale), scale)
                if scale < self.thresholds.min_scale and scale < peak:
                    return f"{key.removeprefix('health/loss_scale/')} scale {scale:g}, was {peak:g}"
        return None

    def replay(self, lines: Iterable[Mapping[str, Any]]) -> None:
        """Read the metrics lines of a resumed run's past (its warnings are already in health.json)."""
        for line in lines:
            self.observe(int(line["step"]), line)


def read_health(run_dir: Path) -> list[dict[str, Any]]:
    """The warnings a run recorded in `health.json` ({"warnings": [{step, name, evidence}, ...]}; none if absent)."""
    try:
        data = json.loads((Path(run_dir) / HEALTH_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    warnings = data.get("warnings", []) if isinstance(data, dict) else []
    return [w for w in warnings if isinstance(w, dict) and isinstance(w.get("step"), int)]


def write_health(run_dir: Path, warnings: Sequence[HealthWarning]) -> Path:
    """Write `RUN/health.json` ({"warnings": [{step, name, evidence}]}) atomically."""
    from ganzoo.engine.checkpoint import write_text_atomic

    path = Path(run_dir) / HEALTH_FILE
    write_text_atomic(path, json.dumps({"warnings": [dataclasses.asdict(w) for w in warnings]}, indent=2) + "\n")
    return path


__all__ = [
    "HEALTH_FILE",
    "HealthProbe",
    "HealthRules",
    "HealthWarning",
    "RecallProbe",
    "Thresholds",
    "gradient_norm",
    "pairwise_spread",
    "parameter_snapshot",
    "read_health",
    "relative_update",
    "separation",
    "write_health",
]

"""Score a generator: draw samples, extract features, compare them with real data's cached reference features.

`evaluate(model, data, metrics, features)` is what `ganzoo eval` and `ganzoo train --eval-every` call.
Image metrics: `fid`, `kid` (kid_mean, kid_std), `pr` (precision, recall), `is` (is_mean, is_std, needs a
classifier extractor) and `accuracy` (conditional models: the fraction of samples the extractor's classifier
labels as the class they were drawn for). Text metrics (Texygen's, `ganzoo.metrics.text`, over the model's
tokens): `bleu` (bleu4: BLEU-4 of the samples against the real texts) and `self-bleu` (self_bleu4: of the samples
against each other, 500 of them scored; lower is more diverse).
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from ganzoo.errors import UsageError
from ganzoo.metrics import stats
from ganzoo.metrics.features import FeatureExtractor, get_features
from ganzoo.metrics.reference import extract_all, reference_features
from ganzoo.model import GANModel

IMAGE_METRICS = ("fid", "kid", "pr", "is", "accuracy")
TEXT_METRICS = ("bleu", "self-bleu")
PAIRED_METRICS = ("psnr", "ssim", "fid", "kid", "pr", "accuracy")
METRICS = IMAGE_METRICS + TEXT_METRICS + ("psnr", "ssim")
DEFAULT_METRICS = ("fid", "kid", "pr")
DEFAULT_TEXT_METRICS = TEXT_METRICS
DEFAULT_PAIRED_METRICS = ("psnr", "ssim")
SCORE_KEYS = ("fid", "kid_mean", "precision", "recall", "accuracy", "psnr", "ssim", "bleu4", "self_bleu4")
"""The headline values of an evaluation's result, in the order zoo tables and run reports show them."""
SELF_BLEU_SCORED = 500


def default_metrics(modality: str, paired: bool = False) -> tuple[str, ...]:
    """What `ganzoo eval` computes when no metrics are named: FID, KID and precision/recall; BLEU and self-BLEU for
    text; PSNR and SSIM for paired image-to-image models."""
    if modality == "text":
        return DEFAULT_TEXT_METRICS
    return DEFAULT_PAIRED_METRICS if paired else DEFAULT_METRICS


def is_paired(model: GANModel) -> bool:
    """Whether the model maps paired inputs to outputs (super-resolution, inpainting, pix2pix, ...)."""
    return model.plugin.modality == "image-to-image" and bool(model.data_info.extras.get("paired"))


def parse_metrics(text: str | Sequence[str]) -> tuple[str, ...]:
    names = [m.strip().lower() for m in (text.split(",") if isinstance(text, str) else text) if m.strip()]
    unknown = [m for m in names if m not in METRICS]
    if unknown or not names:
        raise UsageError(f"unknown metric(s) {', '.join(unknown) or '(none given)'}; accepted: {', '.join(METRICS)}")
    return tuple(dict.fromkeys(names))


def class_targets(model: GANModel, extractor: FeatureExtractor) -> torch.Tensor:
    """For each model class, the extractor's class index (model classes named by digits map by name)."""
    info = model.data_info
    if info.num_classes is None:
        raise UsageError("the accuracy metric needs a conditional model trained on labelled data")
    names = info.extras.get("class_names") or [str(i) for i in range(info.num_classes)]
    if extractor.num_classes is None:
        raise UsageError(f"the accuracy metric needs a classifier extractor; {extractor.name} has no classes")
    try:
        targets = [int(name) for name in names]
    except ValueError:
        targets = list(range(info.num_classes))
    if max(targets) >= extractor.num_classes:
        raise UsageError(
            f"the model's classes {names} do not map onto the {extractor.num_classes} classes of {extractor.name}"
        )
    return torch.tensor(targets)


def generate(
    model: GANModel, n: int, batch_size: int = 250, seed: int = 0, use_ema: bool = True, progress: bool = False
) -> tuple[list[torch.Tensor], torch.Tensor | None]:
    """n images in batches (labels cycling over the classes for conditional models), each batch seeded."""
    from tqdm.auto import tqdm

    conditional, num_classes = model.conditional, model.num_classes
    if conditional and not num_classes:
        raise UsageError(f"{model.plugin.name} is conditional but its data info records no classes")
    labels = torch.arange(n) % num_classes if conditional else None
    batches = []
    starts = range(0, n, batch_size)
    for index, start in enumerate(tqdm(starts, desc="generating", disable=not progress, leave=False)):
        count = min(batch_size, n - start)
        condition = labels[start : start + count].to(model.device) if labels is not None else None
        images = model.sample(count, seed=seed + index, condition=condition, use_ema=use_ema)
        if not isinstance(images, torch.Tensor):
            raise UsageError(
                f"image metrics need an image model; {model.plugin.name} generates {model.plugin.modality}"
            )
        batches.append(images)
    return batches, labels


def evaluate(
    model: GANModel,
    data: str | None = None,
    metrics: str | Sequence[str] | None = None,
    features: str | FeatureExtractor = "digits",
    n: int = 10000,
    batch_size: int = 250,
    seed: int = 0,
    weights: str | None = None,
    use_ema: bool = True,
    cache: bool = True,
    progress: bool = False,
    temperatures: Sequence[float] | None = None,
) -> dict[str, Any]:
    """Metrics of `model`'s samples against the real images or texts of `data` (default: the model's training
    data); `metrics` default to `default_metrics` of the model's modality.

    Text models with `temperatures`: also the model's quality-diversity curve (Caccia et al. 2020), `curve`, a
    list of {temperature, bleu4, self_bleu4} for samples drawn at each temperature; the top-level scores stay
    those at temperature 1.

    Returns the metric values, plus `n`, `reference_n`, `features` (images), `data` and `seconds`.
    """
    modality, paired = model.plugin.modality, is_paired(model)
    names = parse_metrics(metrics if metrics is not None else default_metrics(modality, paired))
    accepted = TEXT_METRICS if modality == "text" else PAIRED_METRICS if paired else IMAGE_METRICS
    wrong = [name for name in names if name not in accepted]
    if wrong:
        raise UsageError(
            f"{', '.join(wrong)}: not a metric for {model.plugin.name}'s {modality} samples; accepted: "
            f"{', '.join(accepted)}"
        )
    if n < 2:
        raise UsageError(f"--n must be at least 2 samples, got {n}")
    if temperatures and modality != "text":
        raise UsageError(f"--temperatures is for text models; {model.plugin.name} is a {modality} model")
    if temperatures and not all(t > 0 for t in temperatures):
        raise UsageError(f"--temperatures must be positive, got {', '.join(f'{t:g}' for t in temperatures)}")
    started = time.perf_counter()
    data = data or model.info.get("data")
    if not data:
        raise UsageError("no data to compare with: pass --data SPEC (the model does not record its training data)")
    if modality == "text":
        return _evaluate_text(model, data, names, n, seed, use_ema, started, temperatures or ())
    if paired:
        return _evaluate_paired(model, data, names, features, weights, n, batch_size, seed, use_ema, started)
    if modality == "image-to-image":
        return _evaluate_unpaired(model, data, names, features, weights, n, batch_size, seed, use_ema, started)
    extractor = features if isinstance(features, FeatureExtractor) else get_features(features, model.device, weights)
    if "is" in names and extractor.num_classes is None:
        raise UsageError(f"the Inception Score needs a classifier extractor; {extractor.name} gives no logits")
    targets = class_targets(model, extractor) if "accuracy" in names else None
    if "accuracy" in names and not model.conditional:
        raise UsageError(f"the accuracy metric is for conditional models; {model.plugin.name} is unconditional")
    options = model.plugin.data_options(model.config)
    real = reference_features(
        data, extractor, options.get("resolution"), options.get("channels"), cache=cache, progress=progress
    )
    batches, labels = generate(model, n, batch_size, seed, use_ema, progress)
    fake, logits = extract_all(extractor, torch.cat(batches), batch_size, progress, "features of samples")
    result = _distances(fake, real, names, seed)
    if "is" in names:
        assert logits is not None
        result["is_mean"], result["is_std"] = stats.inception_score(logits)
    if targets is not None:
        assert logits is not None and labels is not None
        predicted = logits.argmax(dim=1)
        result["accuracy"] = float((predicted == targets[labels]).double().mean())
    result.update(
        n=n,
        reference_n=len(real),
        features=extractor.name,
        data=data,
        seconds=round(time.perf_counter() - started, 2),
    )
    return result


def _distances(fake: torch.Tensor, real: torch.Tensor, names: Sequence[str], seed: int) -> dict[str, float]:
    """FID, KID and precision/recall (those of `names`) between two feature sets."""
    result = {}
    if "fid" in names:
        result["fid"] = stats.frechet_distance_of(fake, real)
    if "kid" in names:
        result["kid_mean"], result["kid_std"] = stats.kernel_distance(fake, real, seed=seed)
    if "pr" in names:
        result["precision"], result["recall"] = stats.precision_recall(fake, real)
    return result


def _evaluate_paired(
    model: GANModel,
    data: str,
    names: Sequence[str],
    features: str | FeatureExtractor,
    weights: str | None,
    n: int,
    batch_size: int,
    seed: int,
    use_ema: bool,
    started: float,
) -> dict[str, Any]:
    """PSNR / SSIM (means over the pairs) of the model's outputs for the first n pairs of `data` against their
    targets; FID / KID / precision-recall of the outputs against those targets' features; accuracy: the
    extractor's classifier on the outputs against the pairs' labels (e.g. super-resolved digits)."""
    from ganzoo.data import resolve_data
    from ganzoo.metrics.paired import psnr, ssim

    source = resolve_data(data)
    if not source.info().extras.get("paired"):
        raise UsageError(f"{model.plugin.name} is scored on pairs; {data!r} holds none (e.g. add ?task=...)")
    dataset = source.load(**model.plugin.data_options(model.config))
    count = min(n, len(dataset))
    outputs, targets, labels, scores = [], [], [], {"psnr": [], "ssim": []}
    for start in range(0, count, batch_size):
        batch = dataset.__getitems__(list(range(start, min(count, start + batch_size))))
        output = model.enhance(batch["source"], batch.get("mask"), use_ema)
        scores["psnr"].append(psnr(output, batch["target"]))
        scores["ssim"].append(ssim(output, batch["target"]))
        outputs.append(output)
        targets.append(batch["target"])
        if "label" in batch:
            labels.append(batch["label"])
    result: dict[str, Any] = {}
    for name in ("psnr", "ssim"):
        if name in names:
            result[name] = float(torch.cat(scores[name]).clamp(max=100).mean())  # identical pairs: 100 dB
    if {"fid", "kid", "pr", "accuracy"} & set(names):
        extractor = features
        if not isinstance(extractor, FeatureExtractor):
            extractor = get_features(features, model.device, weights)
        fake, logits = extract_all(extractor, torch.cat(outputs), batch_size, False, "features of outputs")
        real, _ = extract_all(extractor, torch.cat(targets), batch_size, False, "features of targets")
        result.update(_distances(fake, real, names, seed))
        if "accuracy" in names:
            if logits is None or not labels:
                raise UsageError("accuracy needs labelled pairs (e.g. mnist-4k?task=sr4x) and a classifier extractor")
            result["accuracy"] = float((logits.argmax(dim=1) == torch.cat(labels)).double().mean())
    result.update(n=count, data=data, seconds=round(time.perf_counter() - started, 2))
    return result


def _evaluate_unpaired(
    model: GANModel,
    data: str,
    names: Sequence[str],
    features: str | FeatureExtractor,
    weights: str | None,
    n: int,
    batch_size: int,
    seed: int,
    use_ema: bool,
    started: float,
) -> dict[str, Any]:
    """An unpaired translation model (CycleGAN) on two-domain `data`: its A->B translations of the first n images of
    domain A against the real images of domain B (FID / KID / precision-recall; accuracy: label preservation, the
    extractor's classifier on the translations against the source images' labels), and the same for B->A as
    `*_b2a` keys."""
    from ganzoo.data import resolve_data

    source = resolve_data(data)
    if not source.info().extras.get("domains"):
        raise UsageError(
            f"{model.plugin.name} is scored on two domains (its translations against the other domain's images); "
            f"{data!r} is one: give two-domain data, e.g. unpaired:DIR_A,DIR_B or digits-8x8-to-mnist?split=test"
        )
    extractor = features if isinstance(features, FeatureExtractor) else get_features(features, model.device, weights)
    domains = source.load(**model.plugin.data_options(model.config))
    result: dict[str, Any] = {}
    for direction, origin, target in (("a2b", domains.a, domains.b), ("b2a", domains.b, domains.a)):
        count = min(n, len(origin))
        images = origin.images[:count].float() / 127.5 - 1
        starts = range(0, count, batch_size)
        translated = torch.cat([model.translate(images[i : i + batch_size], direction, use_ema) for i in starts])
        fake, logits = extract_all(extractor, translated, batch_size, False, "features of translations")
        real, _ = extract_all(extractor, target.images.float() / 127.5 - 1, batch_size, False, "features of data")
        scores = _distances(fake, real, names, seed)
        if "accuracy" in names:
            if logits is None or origin.labels is None:
                raise UsageError("accuracy needs labelled domains (digits-8x8-to-mnist) and a classifier extractor")
            scores["accuracy"] = float((logits.argmax(dim=1) == origin.labels[:count]).double().mean())
        suffix = "" if direction == "a2b" else "_b2a"
        result.update({f"{key}{suffix}": value for key, value in scores.items()})
        result[f"n{suffix}"] = count
    result.update(data=data, features=extractor.name, seconds=round(time.perf_counter() - started, 2))
    return result


def _evaluate_text(
    model: GANModel,
    data: str,
    names: Sequence[str],
    n: int,
    seed: int,
    use_ema: bool,
    started: float,
    temperatures: Sequence[float] = (),
) -> dict[str, Any]:
    """BLEU-4 / self-BLEU-4 of n samples, tokenised as the model tokenises (characters, words or ids), at
    temperature 1 and, as `curve`, at each of `temperatures`."""
    import warnings

    from ganzoo.data import resolve_data
    from ganzoo.metrics.text import bleu, self_bleu
    from ganzoo.text import tokenize

    tokenizer = model.data_info.extras.get("vocab", {}).get("tokenizer", "word")
    references, reference_n = None, None
    if "bleu" in names:
        with warnings.catch_warnings():  # the model's max_length may cut some real texts: scored as it sees them
            warnings.simplefilter("ignore", UserWarning)
            dataset = resolve_data(data).load(**model.plugin.data_options(model.config))
        references = [tokenize(text, tokenizer) for text in dataset.decode()]
        reference_n = len(references)

    def scores(**options: float) -> dict[str, float]:
        samples = [tokenize(text, tokenizer) for text in model.sample(n, seed=seed, use_ema=use_ema, **options)]
        scored = {}
        if references is not None:
            scored["bleu4"] = bleu(samples, references)
        if "self-bleu" in names:
            scored["self_bleu4"] = self_bleu(samples, sample=SELF_BLEU_SCORED, seed=seed)
        return scored

    result: dict[str, Any] = scores()
    if temperatures:
        result["curve"] = [{"temperature": t, **scores(temperature=t)} for t in temperatures]
    result.update(n=n, reference_n=reference_n, data=data, seconds=round(time.perf_counter() - started, 2))
    return result


# The value that ranks checkpoints for each metric name, and whether lower is better.
PRIMARY = {
    "fid": ("fid", True),
    "kid": ("kid_mean", True),
    "pr": ("recall", False),
    "is": ("is_mean", False),
    "accuracy": ("accuracy", False),
    "psnr": ("psnr", False),
    "ssim": ("ssim", False),
    "bleu": ("bleu4", False),
    "self-bleu": ("self_bleu4", True),
}


def primary_value(metrics: str | Sequence[str], result: Mapping[str, Any]) -> tuple[str, float, bool]:
    """(name, value, lower_is_better) of the first requested metric in `result`."""
    key, lower = PRIMARY[parse_metrics(metrics)[0]]
    return key, float(result[key]), lower


EVAL_FILE = "eval.json"


def read_evaluations(run_dir: Path) -> list[dict[str, Any]]:
    """The evaluations recorded in `RUN/eval.json` (an unreadable file counts as none)."""
    path = Path(run_dir) / EVAL_FILE
    try:
        records = json.loads(path.read_text(encoding="utf-8")).get("evaluations", [])
    except (OSError, ValueError, AttributeError):
        return []
    return [r for r in records if isinstance(r, dict)]


def _write_evaluations(run_dir: Path, records: list[dict[str, Any]]) -> Path:
    from ganzoo.engine.checkpoint import write_text_atomic

    path = Path(run_dir) / EVAL_FILE
    write_text_atomic(path, json.dumps({"evaluations": records}, indent=2) + "\n")
    return path


def record_evaluation(run_dir: Path, result: Mapping[str, Any], step: int | None, checkpoint: str | None) -> Path:
    """Append one evaluation to `RUN/eval.json` (written atomically); returns its path."""
    return _write_evaluations(run_dir, [*read_evaluations(run_dir), {**result, "step": step, "checkpoint": checkpoint}])


def forget_evaluations_after(run_dir: Path, step: int) -> None:
    """On resume: drop training-time evaluations past the checkpoint, as metrics.jsonl drops its lines."""
    records = read_evaluations(run_dir)
    kept = [r for r in records if r.get("checkpoint") is not None or (r.get("step") or 0) <= step]
    if len(kept) != len(records):
        _write_evaluations(run_dir, kept)

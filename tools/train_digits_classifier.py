"""Train the shipped digit classifiers: the `digits` feature extractor (ganzoo/metrics/assets/digits.safetensors)
and the `uci-digits` classifier of CycleGAN's semantic consistency loss (ganzoo/metrics/assets/uci-digits.safetensors).

Trains `ganzoo.metrics.digits.DigitsClassifier` (or, with `--architecture timm:NAME`, an untrained timm model with
one input channel) on a training split only (`mnist-4k?split=train`, 3,000 MNIST
digits, by default), with on-the-fly random affine augmentation, and reports accuracy on the held-out split
(`mnist-4k?split=test` by default) and on any `--also` data (e.g. the other digit domain). The weights of the final
epoch are written (the test split is never used to pick a checkpoint), together with metadata recording how they
were made. Deterministic given --seed on a given machine and torch build.

    python tools/train_digits_classifier.py --seed 0 --epochs 40
    python tools/train_digits_classifier.py --seed 0 --epochs 40 --train-data 'uci-digits-8x8?split=train' \
        --test-data 'uci-digits-8x8?split=test' --also 'mnist-4k?split=test' \
        --out ganzoo/metrics/assets/uci-digits.safetensors
    python tools/train_digits_classifier.py --seed 1 --epochs 40 --threads 1 --architecture timm:test_resnet \
        --also 'uci-digits-8x8?split=test' --out ganzoo/metrics/assets/mnist-resnet.safetensors
"""

from __future__ import annotations

import argparse
import json
import math
import random
import time
from pathlib import Path

import numpy as np
import safetensors.torch
import torch
import torch.nn.functional as F

from ganzoo.data import resolve_data
from ganzoo.metrics.digits import WEIGHTS_FILE, DigitsClassifier

TRAIN_DATA = "mnist-4k?split=train"
TEST_DATA = "mnist-4k?split=test"
SCRIPT = "tools/train_digits_classifier.py"
DEFAULT_OUT = Path(__file__).resolve().parents[1] / "ganzoo" / "metrics" / WEIGHTS_FILE

MAX_SHIFT_PX = 2.0
MAX_ROTATION_DEG = 10.0
SCALE_RANGE = (0.9, 1.1)


def load_split(spec: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Images as float in [-1, 1], shape (N, 1, 28, 28), and int64 labels."""
    dataset = resolve_data(spec).load(resolution=28, channels=1)
    if dataset.labels is None:
        raise SystemExit(f"{spec} has no labels")
    return dataset.images.float() / 127.5 - 1, dataset.labels


def augment(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Random per-image shift (±2 px), rotation (±10°) and scale (0.9-1.1); the border fills with background."""
    n, _, height, _ = images.shape
    angle = (torch.rand(n, generator=generator) * 2 - 1) * math.radians(MAX_ROTATION_DEG)
    low, high = SCALE_RANGE
    scale = low + torch.rand(n, generator=generator) * (high - low)
    shift = (torch.rand(n, 2, generator=generator) * 2 - 1) * (2 * MAX_SHIFT_PX / height)  # normalised coordinates
    # affine_grid maps output to input coordinates: sampling at (R/s) x + t shows the digit scaled by s.
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1)
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    # Sample in [0, 1] so that zero padding is background (-1 after mapping back).
    warped = F.grid_sample((images + 1) / 2, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return warped * 2 - 1


def restyle(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Random stroke styles, so that a classifier of blurry upscaled digits also reads sharp ones: half the images
    sharpened by a random soft threshold (sigmoid(k (x - t)), k in 4-16, t in 0.3-0.6 of the [0, 1] range), and a
    third thickened or thinned by one pixel (3x3 max or min filter)."""
    n = len(images)
    x = (images + 1) / 2
    k = 4 + 12 * torch.rand(n, 1, 1, 1, generator=generator)
    t = 0.3 + 0.3 * torch.rand(n, 1, 1, 1, generator=generator)
    sharp = torch.sigmoid(k * (x - t))
    sharp = (sharp - sharp.amin(dim=(2, 3), keepdim=True)) / (
        sharp.amax(dim=(2, 3), keepdim=True) - sharp.amin(dim=(2, 3), keepdim=True)
    ).clamp_min(1e-6)
    x = torch.where(torch.rand(n, 1, 1, 1, generator=generator) < 0.5, sharp, x)
    stroke = torch.rand(n, 1, 1, 1, generator=generator)
    thick, thin = F.max_pool2d(x, 3, 1, 1), -F.max_pool2d(-x, 3, 1, 1)
    x = torch.where(stroke < 1 / 6, thick, torch.where(stroke < 1 / 3, thin, x))
    return x * 2 - 1


def canonicalise_header(path: Path) -> None:
    """Rewrite a safetensors header with sorted keys, so that identical weights give identical bytes.

    safetensors writes the header's metadata in hash-map order, which varies between runs; the tensor data and
    its offsets (relative to the end of the header) are unchanged, the header is space-padded to 8 bytes.
    """
    raw = path.read_bytes()
    length = int.from_bytes(raw[:8], "little")
    header = json.dumps(json.loads(raw[8 : 8 + length]), sort_keys=True, separators=(",", ":")).encode()
    header += b" " * (-len(header) % 8)
    path.write_bytes(len(header).to_bytes(8, "little") + header + raw[8 + length :])


def build(architecture: str) -> tuple[torch.nn.Module, dict[str, str]]:
    """An untrained classifier of 28 px grey digits in [-1, 1] and the metadata `ganzoo.metrics.classifiers` reads
    it back with: a timm model sees (x + 1) / 2 normalised by mean 0.5 and std 0.5, which is x itself."""
    if architecture == "DigitsClassifier":
        model = DigitsClassifier()
        return model, {"architecture": architecture, "feature_dim": str(model.feature_dim)}
    if not architecture.startswith("timm:"):
        raise SystemExit(f"unknown architecture {architecture!r}; accepted: DigitsClassifier or timm:NAME")
    import timm

    model = timm.create_model(architecture[len("timm:") :], pretrained=False, num_classes=10, in_chans=1)
    described = {"architecture": architecture, "num_classes": "10", "in_chans": "1", "input_size": "28,28"}
    return model, {**described, "mean": "0.5", "std": "0.5"}


@torch.no_grad()
def accuracy(model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor, batch_size: int = 500) -> float:
    model.eval()
    correct = 0
    for start in range(0, len(images), batch_size):
        logits = model(images[start : start + batch_size])
        correct += int((logits.argmax(1) == labels[start : start + batch_size]).sum())
    return correct / len(images)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=3e-3, help="peak learning rate of the one-cycle schedule")
    parser.add_argument("--weight-decay", type=float, default=5e-4)
    parser.add_argument("--label-smoothing", type=float, default=0.1)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--train-data", default=TRAIN_DATA, help="labelled image data to train on (28 px)")
    parser.add_argument("--test-data", default=TEST_DATA, help="its held-out split")
    parser.add_argument("--restyle", action="store_true", help="also random stroke styles (sharpness, thickness)")
    parser.add_argument("--also", action="append", default=[], metavar="DATA", help="more data to report accuracy on")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument(
        "--architecture", default="DigitsClassifier", help="DigitsClassifier or timm:NAME (e.g. timm:test_resnet)"
    )
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    generator = torch.Generator().manual_seed(args.seed)

    train_images, train_labels = load_split(args.train_data)
    test_images, test_labels = load_split(args.test_data)
    model, described = build(args.architecture)
    num_params = sum(p.numel() for p in model.parameters())
    print(
        f"train {len(train_images)} digits ({args.train_data}), test {len(test_images)} ({args.test_data}), "
        f"{num_params:,} parameters, seed {args.seed}, {args.epochs} epochs"
    )

    steps_per_epoch = math.ceil(len(train_images) / args.batch_size)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=args.lr, epochs=args.epochs, steps_per_epoch=steps_per_epoch, pct_start=0.2
    )
    started = time.perf_counter()
    test_accuracy = 0.0
    for epoch in range(1, args.epochs + 1):
        model.train()
        order = torch.randperm(len(train_images), generator=generator)
        total_loss, correct = 0.0, 0
        for start in range(0, len(order), args.batch_size):
            index = order[start : start + args.batch_size]
            images, labels = augment(train_images[index], generator), train_labels[index]
            if args.restyle:
                images = restyle(images, generator)
            logits = model(images)
            loss = F.cross_entropy(logits, labels, label_smoothing=args.label_smoothing)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            total_loss += loss.item() * len(index)
            correct += int((logits.argmax(1) == labels).sum())
        test_accuracy = accuracy(model, test_images, test_labels)
        print(
            f"epoch {epoch:3d}/{args.epochs}  loss {total_loss / len(order):.4f}  "
            f"train acc {correct / len(order):.4f}  test acc {test_accuracy:.4f}  "
            f"{time.perf_counter() - started:6.1f}s"
        )
    wall = time.perf_counter() - started

    metadata = {
        "seed": str(args.seed),
        "train_data": args.train_data,
        "test_data": args.test_data,
        "test_accuracy": f"{test_accuracy:.3f}",
        **{f"accuracy on {spec}": f"{accuracy(model, *load_split(spec)):.3f}" for spec in args.also},
        "epochs": str(args.epochs),
        "script": SCRIPT,
        "torch_version": torch.__version__,
        **described,
        "augmentation": "affine" + (", restyle" if args.restyle else ""),
        "num_params": str(num_params),
    }
    # float32 weights and running statistics; BatchNorm's int64 num_batches_tracked is kept for strict loading.
    state = {
        name: (tensor.float() if tensor.is_floating_point() else tensor).detach().contiguous()
        for name, tensor in model.state_dict().items()
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    safetensors.torch.save_file(state, str(args.out), metadata=metadata)
    canonicalise_header(args.out)
    print(
        f"held-out accuracy {test_accuracy:.3f} on {args.test_data}; "
        + "".join(f"{key} {value}; " for key, value in metadata.items() if key.startswith("accuracy on"))
        + f"trained in {wall:.1f}s; "
        f"wrote {args.out} ({args.out.stat().st_size / 1024:.0f} KiB)"
    )


if __name__ == "__main__":
    main()

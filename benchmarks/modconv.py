"""Throughput of stylegan2's modulated convolution (`ganzoo_plugins.stylegan2.networks.ModulatedConv2d`) in its
two forms against a naive per-sample loop (modulate and demodulate the weight for one sample, convolve that one
image), on the CPU in fp32 and under bf16 autocast: `fused=True`, one grouped convolution over the batch, and the
non-fused form (the plugin's default since this benchmark): scale the input channels by the style in float32, one
ordinary convolution with the shared weight, then scale the output channels by the demodulation coefficients
(the same function: conv(x * s, W) * d equals conv(x, W * s * d)).

Shapes are those of the 32 px stylegan2 (3x3 kernels, batch 32, w 64): 64 channels at 8, 16 and 32 px and 128 at
8 and 16 px. Every implementation is first checked against the module (outputs and the gradients of the input,
the styles and the weights), then timed in interleaved rounds within this one process; each figure is the median
over rounds of images/s, the ratio is grouped/loop (above 1: the grouped convolution is faster).

    python benchmarks/modconv.py [--rounds 7] [--iters 2] [--threads 1] [--write]
"""

from __future__ import annotations

import argparse
import contextlib
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

from ganzoo_plugins.stylegan2.networks import ModulatedConv2d

BATCH = 32
W_DIM = 64
SHAPES = ((64, 8), (64, 16), (64, 32), (128, 8), (128, 16))
"""(channels in = out, resolution) of the 3x3 modulated convolutions timed."""
TOLERANCE = {"fp32": 1e-4, "bf16": 2e-2}
"""Largest relative difference from the module's fp32 pass allowed, ||value - reference|| / ||reference||."""

Impl = Callable[[ModulatedConv2d, torch.Tensor, torch.Tensor], torch.Tensor]


def grouped(conv: ModulatedConv2d, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """The module's fused form: the batch folded into the channels of one grouped convolution."""
    conv.fused = True
    return conv(x, w)


def activation_scaling(conv: ModulatedConv2d, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """The module's non-fused form: scale the activations, not the weights."""
    conv.fused = False
    return conv(x, w)


def _upsampled(conv: ModulatedConv2d, x: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False) if conv.up else x


def loop(conv: ModulatedConv2d, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """Per sample: modulate (and demodulate) the weight with that sample's style, convolve that one image."""
    style = conv.affine(w)  # (N, C_in)
    outputs = []
    for i in range(len(x)):
        weight = conv.weight * conv.scale * style[i][None, :, None, None]  # (C_out, C_in, k, k)
        if conv.demodulate:
            weight = weight * torch.rsqrt(weight.square().sum(dim=(1, 2, 3), keepdim=True) + 1e-8)
        image = _upsampled(conv, x[i : i + 1])
        outputs.append(F.conv2d(image, weight.to(image.dtype), padding=conv.padding))
    return torch.cat(outputs)


IMPLS: dict[str, Impl] = {"grouped": grouped, "loop": loop, "activation scaling": activation_scaling}


def _cast(precision: str) -> contextlib.AbstractContextManager:
    return torch.autocast("cpu", dtype=torch.bfloat16) if precision == "bf16" else contextlib.nullcontext()


def _run(impl: Impl, conv: ModulatedConv2d, x: torch.Tensor, w: torch.Tensor, precision: str, backward: bool):
    """One forward (and backward) pass; the output and, with `backward`, the gradients of x, w and the weights."""
    for tensor in (x, w, *conv.parameters()):
        tensor.grad = None
    with _cast(precision), torch.set_grad_enabled(backward):
        out = impl(conv, x, w)
    if not backward:
        return [out]
    out.float().square().mean().backward()
    return [out, x.grad, w.grad, conv.weight.grad, conv.affine.weight.grad]


def check_agreement(conv: ModulatedConv2d, x: torch.Tensor, w: torch.Tensor, precision: str) -> dict[str, float]:
    """Each implementation's largest relative difference from the module's fp32 pass, over the output and the
    gradients of x, w, the weight and the affine weight; exits if one is above its tolerance."""
    reference = [t.detach().float().clone() for t in _run(grouped, conv, x, w, "fp32", backward=True)]
    worst = {}
    for name, impl in IMPLS.items():
        got = _run(impl, conv, x, w, precision, backward=True)
        worst[name] = 0.0
        for what, ref, value in zip(("output", "dx", "dw", "dweight", "daffine"), reference, got, strict=True):
            error = ((value.float() - ref).norm() / ref.norm().clamp(min=1e-30)).item()
            if not error <= TOLERANCE[precision]:
                raise SystemExit(f"{name} disagrees with the module in {what} under {precision}: {error:.2e}")
            worst[name] = max(worst[name], error)
    return worst


def time_once(
    impl: Impl, conv: ModulatedConv2d, x: torch.Tensor, w: torch.Tensor, precision: str, backward: bool, iters: int
) -> float:
    start = time.perf_counter()
    for _ in range(iters):
        _run(impl, conv, x, w, precision, backward)
    return (time.perf_counter() - start) / iters


def machine() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=7, help="timed rounds (the median is reported)")
    parser.add_argument("--iters", type=int, default=2, help="passes per timing")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--write", action="store_true", help="update the section in benchmarks/RESULTS.md")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    header = (
        f"machine: {machine()}, {torch.get_num_threads()} thread(s), torch {torch.__version__}; batch {BATCH}, "
        f"3x3 kernels, w {W_DIM}; median images/s over {args.rounds} rounds of {args.iters} passes; "
        "ratio: grouped / loop"
    )
    print(header, flush=True)
    rows, ratios, non_fused = [], [], []
    start = time.perf_counter()
    for channels, resolution in SHAPES:
        conv = ModulatedConv2d(channels, channels, 3, W_DIM)
        x = torch.randn(BATCH, channels, resolution, resolution, requires_grad=True)
        w = torch.randn(BATCH, W_DIM, requires_grad=True)
        for precision in ("fp32", "bf16"):
            error = check_agreement(conv, x, w, precision)
            for backward in (False, True):
                for impl in IMPLS.values():  # warm-up
                    time_once(impl, conv, x, w, precision, backward, 1)
                times: dict[str, list[float]] = {name: [] for name in IMPLS}
                for _ in range(args.rounds):  # interleaved, so a busy neighbour slows all of them alike
                    for name, impl in IMPLS.items():
                        times[name].append(time_once(impl, conv, x, w, precision, backward, args.iters))
                speed = {name: BATCH / statistics.median(t) for name, t in times.items()}
                row = (
                    f"| {channels} | {resolution} | {precision} | {'fwd+bwd' if backward else 'fwd'} | "
                    f"{speed['grouped']:.0f} | {speed['loop']:.0f} | {speed['grouped'] / speed['loop']:.2f} | "
                    f"{speed['activation scaling']:.0f} | {error['grouped']:.0e} | {error['loop']:.0e} | "
                    f"{error['activation scaling']:.0e} |"
                )
                rows.append(row)
                ratios.append(speed["grouped"] / speed["loop"])
                non_fused.append(speed["activation scaling"] / speed["grouped"])
                print(row, flush=True)
    seconds = time.perf_counter() - start
    summary = (
        f"grouped / loop over the {len(ratios)} rows: {min(ratios):.2f} to {max(ratios):.2f} (median "
        f"{statistics.median(ratios):.2f}); activation scaling / grouped: {min(non_fused):.2f} to "
        f"{max(non_fused):.2f} (median {statistics.median(non_fused):.2f})."
    )
    print(summary)
    print(f"({seconds:.0f} s)")
    table = [
        "| channels | px | precision | pass | grouped img/s | loop img/s | ratio | activation scaling img/s | "
        "diff grouped | diff loop | diff act. scaling |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
        *rows,
    ]
    if args.write:
        from results import write_section

        command = f"python benchmarks/modconv.py --rounds {args.rounds} --iters {args.iters}"
        command += f" --threads {args.threads} --write"
        notes = (
            f"Ran with {args.threads} thread(s) beside other jobs on a shared 2-core VM, so the absolute images/s "
            "move with the neighbours; the ratios compare implementations timed in interleaved rounds within one "
            f"process ({seconds:.0f} s in all). Before timing, each implementation's output and gradients (of the "
            "input, the styles and both weights) were checked against the module's fp32 pass: the diff columns are "
            "each one's largest relative difference ||value - reference|| / ||reference|| (under bf16, autocast's "
            "rounding; the grouped convolution and the loop round alike)."
        )
        body = "\n\n".join([header, notes, "\n".join(table), summary])
        write_section("modulated convolution (stylegan2)", command, body)


if __name__ == "__main__":
    main()

"""Kill soak: kill -9 a training at random points, resume it each time, and check it ends bit-identical.

One uninterrupted reference run of a tiny DCGAN keeps every checkpoint. The soak run trains the same command in
another folder and is killed with SIGKILL (`--kills` times) after a random delay, or, every `--targeted`-th kill,
the moment a checkpoint is being written (a `.tmp-*` folder appears; a tiny checkpoint takes milliseconds, which a
random delay seldom hits). The phase of each kill is read from the folder at that moment: a `.tmp-*` checkpoint
being written, no new checkpoint since the launch (start-up), or otherwise training. Each relaunch resumes from
the newest checkpoint that verifies (a fresh start while there is none). At the end every checkpoint the soak
run holds must equal the reference's checkpoint of the same step tensor for tensor (weights, EMA, optimizer and
RNG state), and no temporary folder may be left.

    python benchmarks/soak.py --kills 50 --targeted 3 --write
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import torch
from results import write_section
from safetensors.torch import load_file

from ganzoo.engine import checkpoint as ckpt

TINY = ["--set", "g_width=8", "--set", "d_width=8", "--set", "latent_dim=16", "--data", "mnist-4k?n=256"]


def command(out: Path, steps: int, every: int, resume: bool) -> list[str]:
    args = [sys.executable, "-m", "ganzoo.cli", "train", "dcgan", "--steps", str(steps), "--batch-size", "16"]
    args += ["--device", "cpu", "--precision", "fp32", "--out", str(out), *TINY]
    args += ["--set", f"checkpoint_every={every}", "--set", "keep_checkpoints=100000", "--set", "log_every=5"]
    args += ["--set", "sample_every=100000", "--set", "progress=false", "--set", "tensorboard=false"]
    return [*args, "--resume"] if resume else args


def environment() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "GANZOO_OFFLINE": "1", "PYTHONWARNINGS": "ignore"}


def state(checkpoint: Path) -> dict[str, torch.Tensor]:
    return {**load_file(checkpoint / ckpt.MODEL_FILE), **load_file(checkpoint / ckpt.STATE_FILE)}


def writing(directory: Path) -> bool:
    try:
        return any(p.name.startswith(".tmp-") for p in directory.iterdir())
    except OSError:  # not there yet, or changing under us
        return False


def phase_now(out: Path, checkpoints_at_launch: int) -> str:
    directory = out / "checkpoints"
    if writing(directory):
        return "checkpoint write"
    if len(ckpt.list_checkpoints(directory)) == checkpoints_at_launch:
        return "start-up"  # (or the first iterations after it, before this launch's first checkpoint)
    return "training"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kills", type=int, default=50)
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--every", type=int, default=2, help="iterations between checkpoints")
    parser.add_argument("--max-delay", type=float, default=7.0, help="a kill comes after U(0.2, this) seconds")
    parser.add_argument("--targeted", type=int, default=3, help="every N-th kill waits for a checkpoint write")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--write", action="store_true", help="write the section of benchmarks/RESULTS.md")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    work = Path(tempfile.mkdtemp(prefix="ganzoo-soak-"))
    started = time.perf_counter()
    try:
        reference, soak = work / "reference", work / "soak"
        subprocess.run(
            command(reference, args.steps, args.every, False), env=environment(), check=True, capture_output=True
        )
        phases: Counter[str] = Counter()
        launches = 0
        while sum(phases.values()) < args.kills:
            resume = bool(ckpt.list_checkpoints(soak / "checkpoints"))
            at_launch = len(ckpt.list_checkpoints(soak / "checkpoints"))
            proc = subprocess.Popen(
                command(soak, args.steps, args.every, resume),
                env=environment(),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            launches += 1
            targeted = args.targeted > 0 and (sum(phases.values()) + 1) % args.targeted == 0
            deadline = time.monotonic() + (60.0 if targeted else rng.uniform(0.2, args.max_delay))
            while time.monotonic() < deadline and proc.poll() is None:
                if targeted and writing(soak / "checkpoints"):
                    break
                time.sleep(0.0005 if targeted else 0.005)
            if proc.poll() is not None:  # it finished first: start over in a fresh folder, the kills go on
                shutil.rmtree(soak)
                continue
            phase = phase_now(soak, at_launch)
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            phases[phase] += 1
            print(f"kill {sum(phases.values())}/{args.kills} during {phase}", flush=True)
        resume = bool(ckpt.list_checkpoints(soak / "checkpoints"))  # (killed in its first checkpoint: none yet)
        final = subprocess.run(
            command(soak, args.steps, args.every, resume), env=environment(), capture_output=True, text=True
        )
        if final.returncode != 0:
            raise SystemExit(f"the final resume failed: {final.stderr.strip().splitlines()[-1:]}")
        compared = identical = 0
        for checkpoint in ckpt.list_checkpoints(soak / "checkpoints"):
            mine, theirs = state(checkpoint), state(reference / "checkpoints" / checkpoint.name)
            compared += 1
            identical += mine.keys() == theirs.keys() and all(torch.equal(mine[k], theirs[k]) for k in mine)
        leftovers = [p for p in soak.rglob("*") if p.name.startswith((".tmp-", ".old-"))]
        seconds = time.perf_counter() - started
    finally:
        shutil.rmtree(work, ignore_errors=True)
    kills = sum(phases.values())
    lines = [
        f"kills: {kills} ({', '.join(f'{n} during {p}' for p, n in sorted(phases.items()))}); launches: {launches}",
        f"checkpoints bit-identical to the uninterrupted run's: {identical} of {compared}",
        f"leftover temporary folders: {len(leftovers)}",
        f"wall time: {seconds:.0f} s",
    ]
    print("\n".join(lines))
    if args.write:
        body = (
            f"Tiny DCGAN (widths 8, latent 16, batch 16, fp32 on the CPU, 1 thread), {args.steps} iterations, a "
            f"checkpoint every {args.every}; each kill after U(0.2, {args.max_delay}) s, every {args.targeted}rd kill "
            f"instead when a checkpoint write begins; seed {args.seed}; run alone (nothing else on the machine).\n\n"
            + "\n".join(f"- {line}" for line in lines)
        )
        write_section("kill soak", " ".join(["python benchmarks/soak.py", *sys.argv[1:]]), body)
    if identical != compared or leftovers:
        raise SystemExit(1)


if __name__ == "__main__":
    main()

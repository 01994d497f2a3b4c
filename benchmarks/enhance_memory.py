"""Peak memory and time of `ganzoo enhance` on large photos (issue 19: a 4000 x 3000 photo under 2 GB).

Each case builds a freshly initialised model at its plugin's default widths (the weights do not change the memory)
and saves it with `ganzoo.save_pretrained`, writes one large RGB photo (an embedded photo, chelsea.png, resized
with bicubic), then runs `ganzoo enhance` on it in a subprocess with one torch thread, and beside it a baseline
subprocess that only imports torch and ganzoo and loads the same model. Peak memory is each subprocess's own
maximum resident set size (`ru_maxrss`, read by a small launcher process: see LAUNCHER); times are wall-clock and
CPU (user + system) seconds.

- `sr4x`: srgan x4, a 1000 x 750 input to a 4000 x 3000 output;
- `denoise`: pix2pix denoising (scale 1), a 4000 x 3000 input and output;
- `sr4x-large` (not run by default): srgan x4 of a 4000 x 3000 input, a 16000 x 12000 output, with a narrow
  generator (1 block of 8 features, growth 4) to keep its 83,000 tiles to a few CPU-minutes: at this size the
  memory is the images', not the network's (16 tiles of activations are a few MB at any width).

Rows go to benchmarks/data/enhance_memory.jsonl, labelled with `--code` (what the measured ganzoo/enhance.py
does); `--write` renders the "enhance: peak memory" section of benchmarks/RESULTS.md from every recorded row.

    python benchmarks/enhance_memory.py [--cases sr4x,denoise] [--code LABEL] [--threads 1] [--write]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import struct
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import torch
from PIL import Image

import ganzoo
from ganzoo.data import resolve_data

HERE = Path(__file__).parent
RECORD = HERE / "data" / "enhance_memory.jsonl"
SECTION = "enhance: peak memory"
LIMIT_MB = 2000  # the 2 GB, in 10^6 bytes
BASELINE = "import sys, torch, ganzoo; torch.set_num_threads(int(sys.argv[2])); ganzoo.load_pretrained(sys.argv[1])"
# Linux gives a child the peak RSS of the process it was forked from (the mm's high-water mark survives exec), so
# a subprocess of this process (torch and a model loaded) would report at least this process's own peak. Commands
# are started from a small launcher instead, which prints the resources of its one child as JSON.
LAUNCHER = """
import json, resource, subprocess, sys, time
started = time.perf_counter()
process = subprocess.run(sys.argv[1:], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
wall = time.perf_counter() - started
usage = resource.getrusage(resource.RUSAGE_CHILDREN)
output = process.stdout.decode(errors="replace")
print(json.dumps({"rc": process.returncode, "output": output, "wall_s": wall, "maxrss_kib": usage.ru_maxrss,
                  "cpu_s": usage.ru_utime + usage.ru_stime}))
"""


@dataclass(frozen=True)
class Case:
    plugin: str
    data: str
    input_size: tuple[int, int]  # (width, height) of the input photo
    overrides: tuple[tuple[str, int], ...] = ()  # model config fields other than the defaults

    @property
    def scale(self) -> int:
        return 4 if "sr4x" in self.data else 1


CASES = {
    "sr4x": Case("srgan", "photos?task=sr4x", (1000, 750)),
    "denoise": Case("pix2pix", "photos?task=denoise", (4000, 3000)),
    "sr4x-large": Case("srgan", "photos?task=sr4x", (4000, 3000), (("blocks", 1), ("features", 8), ("growth", 4))),
}
DEFAULT_CASES = "sr4x,denoise"


def save_model(case: Case, directory: Path) -> ganzoo.GANModel:
    """A freshly initialised model at the plugin's defaults, saved; one stored pair of zeros for its sample grid."""
    model = ganzoo.create_model(case.plugin, data_info=resolve_data(case.data).info(), **dict(case.overrides))
    size, channels = model.config.resolution, model.config.channels
    source = torch.zeros(1, channels, size // case.scale, size // case.scale)
    model.nets["examples"].remember({"source": source, "target": torch.zeros(1, channels, size, size)})
    ganzoo.save_pretrained(model, directory)
    return model


def write_photo(size: tuple[int, int], path: Path) -> None:
    with resources.files("ganzoo.data").joinpath("assets/photos/chelsea.png").open("rb") as handle:
        Image.open(handle).convert("RGB").resize(size, Image.Resampling.BICUBIC).save(path)


def png_size(path: Path) -> tuple[int, int]:
    """(width, height) from a PNG's header (PIL refuses to open one over 179 million pixels as a possible bomb)."""
    with path.open("rb") as handle:
        width, height = struct.unpack(">II", handle.read(24)[16:24])
    return width, height


def measure(command: list[str], threads: int) -> dict[str, float]:
    """Peak RSS (MB, 10^6 bytes), wall and CPU seconds of one subprocess (through LAUNCHER); failure is an error."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads), "GANZOO_OFFLINE": "1"}
    launched = subprocess.run([sys.executable, "-c", LAUNCHER, *command], env=env, capture_output=True, check=True)
    result = json.loads(launched.stdout)
    if result["rc"]:
        raise RuntimeError(f"{' '.join(command)} failed ({result['rc']}):\n{result['output']}")
    return {"peak_mb": result["maxrss_kib"] * 1024 / 1e6, "wall_s": result["wall_s"], "cpu_s": result["cpu_s"]}


def run_case(name: str, case: Case, threads: int, code: str) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        model = save_model(case, root / "model")
        write_photo(case.input_size, root / "photo.png")
        enhance = [sys.executable, "-m", "ganzoo.cli", "enhance", str(root / "model")]
        enhance += ["--input", str(root / "photo.png"), "--out", str(root / "out")]
        baseline = measure([sys.executable, "-c", BASELINE, str(root / "model"), str(threads)], threads)
        enhanced = measure(enhance, threads)
        output_size = png_size(root / "out" / "photo.png")
    width, height = case.input_size
    if output_size != (width * case.scale, height * case.scale):
        raise RuntimeError(f"{name}: the output is {output_size}, expected x{case.scale} of {case.input_size}")
    row = {
        "case": name,
        "plugin": case.plugin,
        "overrides": dict(case.overrides),
        "code": code,
        "resolution": model.config.resolution,
        "input": f"{width}x{height}",
        "output": f"{output_size[0]}x{output_size[1]}",
        "threads": threads,
        "torch": torch.__version__,
        **{f"baseline_{key}": round(value, 1) for key, value in baseline.items()},
        **{key: round(value, 1) for key, value in enhanced.items()},
    }
    print(json.dumps(row), flush=True)
    return row


def write_results(rows: list[dict]) -> None:
    from results import write_section

    lines = [
        f"machine: {platform.machine()}, 2 cores shared with other jobs (times indicative only), torch "
        f"{rows[0]['torch']}, {rows[0]['threads']} torch thread(s). Each case: a freshly initialised model at the "
        "plugin's default widths unless named (saved with `ganzoo.save_pretrained`), one RGB photo (chelsea.png "
        "resized), `python -m ganzoo.cli enhance MODEL --input photo.png --out out` in a subprocess with default "
        "tiling (tiles of the model's input size, a quarter overlap, 16 tiles a batch). Peak: the subprocess's "
        "maximum resident set size (`ru_maxrss`), in MB of 10^6 bytes; baseline: a subprocess that only imports "
        f"torch and ganzoo and loads the model. The issue's limit: {LIMIT_MB} MB. Code: what ganzoo/enhance.py did.",
        "",
        "| case | code | model (tile) | input | output | peak MB | baseline MB | over baseline MB | under 2 GB | "
        "wall s | CPU s |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        case = CASES[row["case"]]
        tile = row["resolution"] // case.scale
        widths = "".join(f", {key}={value}" for key, value in row["overrides"].items())
        lines.append(
            f"| {row['case']} | {row['code']} | {row['plugin']}{widths} ({tile} px in, {row['resolution']} px out) | "
            f"{row['input']} | {row['output']} | {row['peak_mb']:.0f} | {row['baseline_peak_mb']:.0f} | "
            f"{row['peak_mb'] - row['baseline_peak_mb']:.0f} | {'yes' if row['peak_mb'] < LIMIT_MB else 'no'} | "
            f"{row['wall_s']:.0f} | {row['cpu_s']:.0f} |"
        )
    lines += [
        "",
        "Before: the finished bands went into one uint8 array of the whole output, which PIL then copied to save "
        "it (RGB at 4 bytes a pixel), and the photo was read through two float32 temporaries of its size. After: "
        "each band is pasted into the output image as it is done and the photo is read into one float32 copy.",
    ]
    write_section(SECTION, "python benchmarks/enhance_memory.py --write", "\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", default=DEFAULT_CASES, help=f"comma-separated, of {', '.join(CASES)}")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--code", default="current", help="what the measured ganzoo/enhance.py does (a label)")
    parser.add_argument("--write", action="store_true", help="render the section from every recorded row")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    for name in (n for n in args.cases.split(",") if n):
        if name not in CASES:
            parser.error(f"unknown case {name!r}; accepted: {', '.join(CASES)}")
        rows.append(run_case(name, CASES[name], args.threads, args.code))
        RECORD.parent.mkdir(exist_ok=True)
        with RECORD.open("a", encoding="utf-8") as record:
            record.write(json.dumps(rows[-1]) + "\n")
    if args.write:
        write_results([json.loads(line) for line in RECORD.read_text(encoding="utf-8").splitlines() if line.strip()])


if __name__ == "__main__":
    main()

"""Run reports: `ganzoo report RUN [RUN...] --out report.html`, one self-contained HTML file per set of runs.

The report reads what a run leaves on disk (config.json, metrics.jsonl, eval.json, health.json and the sample
grids or texts in samples/) and shows the command and config, the curves of its losses and diagnostics grouped by
name (`loss/*`, `lr/*`, `health/*`, ...; several runs overlaid in each plot), the evaluations over steps, the
health warnings as marks on every curve at their steps, a strip of sample grids over time (text runs: their
samples as text), and with several runs a table of their final scores. Figures are drawn with matplotlib (its
non-interactive Agg backend) and inlined as base64 PNGs, so the file needs no server, network or other file;
`png_dir` writes the same figures as PNG files too.
"""

from __future__ import annotations

import base64
import dataclasses
import html
import io
import json
import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ganzoo.errors import UsageError
from ganzoo.metrics.evaluation import SCORE_KEYS

SAMPLE_STRIP = 8
"""Sample grids shown per run, evenly spaced over its steps (the first and the last always)."""
_STEP = re.compile(r"^step-(\d+)\.(png|jpg|jpeg|webp|txt)$")
_NOT_CURVES = {"step", "epoch"}


@dataclasses.dataclass
class RunRecord:
    """What a report shows of one run directory."""

    name: str
    directory: Path
    config: dict[str, Any]
    metrics: list[dict[str, Any]]
    evaluations: list[dict[str, Any]]
    warnings: list[dict[str, Any]]
    samples: list[tuple[int, Path]]


def read_run(path: str | Path) -> RunRecord:
    """A run directory's record; one that is not a run is a `UsageError`."""
    from ganzoo.engine.health import read_health
    from ganzoo.engine.logging import read_metrics
    from ganzoo.metrics.evaluation import read_evaluations
    from ganzoo.model import CONFIG_FILE, read_run_config

    directory = Path(path)
    if not (directory / CONFIG_FILE).is_file():
        raise UsageError(f"{directory} is not a run directory (it has no {CONFIG_FILE})")
    samples = []
    for file in (directory / "samples").glob("step-*"):
        match = _STEP.match(file.name)
        if match:
            samples.append((int(match[1]), file))
    return RunRecord(
        name=directory.name,
        directory=directory,
        config=read_run_config(directory / CONFIG_FILE),
        metrics=[row for row in read_metrics(directory) if isinstance(row.get("step"), int)],
        evaluations=[e for e in read_evaluations(directory) if isinstance(e.get("step"), int)],
        warnings=read_health(directory),
        samples=sorted(samples),
    )


def _group(key: str) -> str:
    if key.startswith("eval/"):
        return "evaluation"
    if key.count("/") >= 2:  # health/grad_norm/<role>, health/update/<role>: one figure per quantity (its scale)
        return key.rsplit("/", 1)[0]
    if "/" in key:
        return key.split("/", 1)[0]
    return {"images_per_s": "throughput", "data_share": "throughput"}.get(key, "logged values")


def curve_groups(runs: Sequence[RunRecord]) -> dict[str, list[str]]:
    """Figure name -> the numeric metrics.jsonl keys it plots (in first-seen order), across all runs."""
    groups: dict[str, list[str]] = {}
    for run in runs:
        for row in run.metrics:
            for key, value in row.items():
                if key in _NOT_CURVES or isinstance(value, bool) or not isinstance(value, (int, float)):
                    continue
                keys = groups.setdefault(_group(key), [])
                if key not in keys:
                    keys.append(key)
    return groups


def _evaluation_curves(runs: Sequence[RunRecord]) -> list[str]:
    return [k for k in SCORE_KEYS if any(k in e for run in runs for e in run.evaluations)]


def _figure_png(figure: Any) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    return buffer.getvalue()


def _plot(title: str, keys: Sequence[str], series: Any, runs: Sequence[RunRecord]) -> bytes:
    """One figure: a small plot per key, every run's curve in it, the runs' warnings as dashed marks."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    columns = min(3, len(keys))
    rows = math.ceil(len(keys) / columns)
    figure, axes = plt.subplots(rows, columns, figsize=(4.2 * columns, 2.8 * rows), squeeze=False, layout="constrained")
    for axis, key in zip(axes.flat, keys, strict=False):
        for index, run in enumerate(runs):
            steps, values = series(run, key)
            colour = f"C{index % 10}"
            if steps:
                axis.plot(steps, values, color=colour, label=run.name, marker="o" if len(steps) < 12 else None)
            for warning in run.warnings:
                axis.axvline(warning["step"], color=colour, linestyle="--", linewidth=0.8, alpha=0.7)
        axis.set_title(key, fontsize=9)
        axis.set_xlabel("step", fontsize=8)
        axis.tick_params(labelsize=7)
        axis.grid(alpha=0.3)
    for axis in list(axes.flat)[len(keys) :]:
        axis.set_visible(False)
    if len(runs) > 1:
        from matplotlib.lines import Line2D

        handles = [Line2D([], [], color=f"C{i % 10}", label=run.name) for i, run in enumerate(runs)]
        figure.legend(handles=handles, loc="outside lower center", ncols=min(4, len(runs)), fontsize=7)
    figure.suptitle(title, fontsize=10)
    png = _figure_png(figure)
    plt.close(figure)
    return png


def _metric_series(run: RunRecord, key: str) -> tuple[list[int], list[float]]:
    rows = [(row["step"], float(row[key])) for row in run.metrics if isinstance(row.get(key), (int, float))]
    return [s for s, _ in rows], [v for _, v in rows]


def _evaluation_series(run: RunRecord, key: str) -> tuple[list[int], list[float]]:
    rows = sorted((e["step"], float(e[key])) for e in run.evaluations if isinstance(e.get(key), (int, float)))
    return [s for s, _ in rows], [v for _, v in rows]


def figures(runs: Sequence[RunRecord]) -> dict[str, bytes]:
    """Figure name -> PNG bytes: one per group of metrics.jsonl curves, and the evaluations over steps."""
    drawn = {name: _plot(name, keys, _metric_series, runs) for name, keys in curve_groups(runs).items()}
    scores = _evaluation_curves(runs)
    if scores:
        drawn["scores over steps (eval.json)"] = _plot("evaluations", scores, _evaluation_series, runs)
    return drawn


def _strip(run: RunRecord) -> list[tuple[int, Path]]:
    if len(run.samples) <= SAMPLE_STRIP:
        return run.samples
    last = len(run.samples) - 1
    picks = sorted({round(i * last / (SAMPLE_STRIP - 1)) for i in range(SAMPLE_STRIP)})
    return [run.samples[i] for i in picks]


def _image_tag(data: bytes, alt: str, mime: str = "image/png") -> str:
    encoded = base64.b64encode(data).decode("ascii")
    return f'<img src="data:{mime};base64,{encoded}" alt="{html.escape(alt)}">'


_MIME = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".webp": "image/webp"}


def _samples_html(run: RunRecord) -> str:
    cells = []
    for step, path in _strip(run):
        if path.suffix == ".txt":
            text = path.read_text(encoding="utf-8", errors="replace").splitlines()[:12]
            body = f"<pre>{html.escape(chr(10).join(text))}</pre>"
        else:
            body = _image_tag(path.read_bytes(), f"{run.name} samples at step {step}", _MIME[path.suffix.lower()])
        cells.append(f"<figure>{body}<figcaption>step {step}</figcaption></figure>")
    return f'<div class="strip">{"".join(cells)}</div>' if cells else "<p>no samples saved</p>"


def final_scores(run: RunRecord) -> dict[str, Any]:
    """The run's last step and its latest evaluation's scores."""
    last = run.metrics[-1]["step"] if run.metrics else None
    latest = max(run.evaluations, key=lambda e: e["step"], default={})
    return {"step": last, **{k: latest[k] for k in SCORE_KEYS if isinstance(latest.get(k), (int, float))}}


def _format(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else html.escape(str(value))


def _scores_table(runs: Sequence[RunRecord]) -> str:
    finals = [final_scores(run) for run in runs]
    keys = ["step", *[k for k in SCORE_KEYS if any(k in f for f in finals)]]
    head = "".join(f"<th>{k}</th>" for k in ["run", "plugin", *keys])
    rows = []
    for run, final in zip(runs, finals, strict=True):
        cells = [html.escape(run.name), html.escape(str(run.config.get("plugin")))]
        cells += [_format(final[k]) if k in final and final[k] is not None else "" for k in keys]
        rows.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    return f"<table><tr>{head}</tr>{''.join(rows)}</table>"


def _warnings_html(run: RunRecord) -> str:
    if not run.warnings:
        return "<p>health: no warnings</p>"
    items = "".join(
        f"<li>step {w['step']}: <b>{html.escape(str(w.get('name')))}</b> {html.escape(str(w.get('evidence', '')))}</li>"
        for w in run.warnings
    )
    return f"<ul class='warnings'>{items}</ul>"


_STYLE = """
body { font-family: sans-serif; margin: 2em; max-width: 1400px; }
img { max-width: 100%; }
.strip { display: flex; flex-wrap: wrap; gap: 8px; }
.strip figure { margin: 0; text-align: center; font-size: 80%; }
.strip img { width: 160px; image-rendering: pixelated; }
pre { background: #f4f4f4; padding: 0.5em; overflow-x: auto; font-size: 80%; }
table { border-collapse: collapse; } td, th { border: 1px solid #ccc; padding: 2px 8px; }
.warnings { color: #a33; }
"""


def render(runs: Sequence[RunRecord], drawn: dict[str, bytes]) -> str:
    """The report's HTML."""
    title = "ganzoo report: " + ", ".join(run.name for run in runs)
    parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"]
    parts.append(f"<style>{_STYLE}</style></head><body><h1>{html.escape(title)}</h1>")
    if len(runs) > 1:
        parts += ["<h2>Final scores</h2>", _scores_table(runs)]
    parts.append("<h2>Curves</h2>")
    parts += [f"<h3>{html.escape(name)}</h3>{_image_tag(png, name)}" for name, png in drawn.items()]
    for run in runs:
        parts.append(f"<h2>{html.escape(run.name)}</h2><p>{html.escape(str(run.directory))}</p>")
        if run.config.get("command"):
            parts.append(f"<pre>{html.escape(run.config['command'])}</pre>")
        parts += [_warnings_html(run), "<h3>Samples over time</h3>", _samples_html(run)]
        if len(runs) == 1:
            parts += ["<h3>Final scores</h3>", _scores_table(runs)]
        shown = {k: run.config.get(k) for k in ("plugin", "data", "config", "train", "base_model") if k in run.config}
        config = html.escape(json.dumps(shown, indent=2))
        parts.append(f"<details><summary>config</summary><pre>{config}</pre></details>")
    parts.append("</body></html>")
    return "\n".join(parts)


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", name).strip("-").lower() or "figure"


def write_report(
    run_dirs: Sequence[str | Path], out: str | Path = "report.html", png_dir: str | Path | None = None
) -> Path:
    """Write the report of `run_dirs` to `out` (and its figures as PNG files in `png_dir`); returns `out`."""
    from ganzoo.engine.checkpoint import write_text_atomic

    if not run_dirs:
        raise UsageError("name at least one run directory to report on")
    runs = [read_run(path) for path in run_dirs]
    drawn = figures(runs)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out, render(runs, drawn))
    if png_dir is not None:
        folder = Path(png_dir)
        folder.mkdir(parents=True, exist_ok=True)
        for name, png in drawn.items():
            (folder / f"{_slug(name)}.png").write_bytes(png)
    return out


__all__ = ["RunRecord", "figures", "final_scores", "read_run", "render", "write_report"]

"""The `ganzoo` command line: parse, call the library, print. User mistakes end in one line and exit code 2.

Heavy imports (torch, timm) happen inside the commands that need them, so `ganzoo --help` and `ganzoo list`
stay quick.
"""

from __future__ import annotations

import shlex
import sys
import warnings
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ganzoo import __version__
from ganzoo.errors import GanzooError, UsageError

if TYPE_CHECKING:
    import torch

    from ganzoo.config import FieldDoc
    from ganzoo.engine.trainer import Trainer

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")
ANIMATION_SUFFIXES = (".png", ".gif")
FRAME_MS = 100
"""How long `sample --interpolate` shows each frame (10 frames a second)."""


def _one_line_warning(message: Warning | str, category: type[Warning], *_: Any, **__: Any) -> None:
    click.echo(f"Warning: {message}", err=True)


def _error(message: str, exit_code: int) -> None:
    """Print an error on one line (whatever the message's own line breaks) and exit."""
    click.echo(f"Error: {' '.join(message.split())}", err=True)
    sys.exit(exit_code)


class GanzooGroup(click.Group):
    """A click group that turns every user error into one line on stderr and a non-zero exit code."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        ctx.meta.setdefault("ganzoo.argv", list(args))  # the top-level arguments, for a run's recorded command
        return super().parse_args(ctx, args)

    def main(self, *args: Any, standalone_mode: bool = True, **kwargs: Any) -> Any:
        previous = warnings.showwarning
        warnings.showwarning = _one_line_warning
        try:
            result = super().main(*args, standalone_mode=False, **kwargs)
        except click.exceptions.Exit as exc:
            sys.exit(exc.exit_code)
        except click.ClickException as exc:
            _error(exc.format_message(), exc.exit_code)
        except GanzooError as exc:
            _error(str(exc), exc.exit_code)
        except OSError as exc:  # the machine's side: an unwritable directory, a full disk, a path through a file
            _error(f"cannot read or write a file: {exc}", 1)
        except (click.exceptions.Abort, KeyboardInterrupt):
            click.echo("Interrupted.", err=True)
            sys.exit(130)
        finally:
            warnings.showwarning = previous
        sys.exit(result if isinstance(result, int) else 0)


def _versions() -> str:
    def version(dist: str) -> str:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            return "not installed"

    deps = ", ".join(f"{d} {version(d)}" for d in ("torch", "timm", "huggingface-hub", "click"))
    return f"ganzoo {__version__} ({deps})"


@click.group(cls=GanzooGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", message=_versions())
def cli() -> None:
    """ganzoo: train, compare, sample and share GANs with one engine and many plugins."""


@cli.command("list")
@click.argument("pattern", default="*")
def list_command(pattern: str) -> None:
    """List the installed plugins (PATTERN is a glob, e.g. 'dc*')."""
    from ganzoo.registry import plugin_statuses

    rows = plugin_statuses(pattern)
    if not rows:
        click.echo(f"no plugin matches {pattern!r}")
        return
    table = []
    for row in rows:
        dists = ", ".join(s.distribution for s in row.sources)
        if row.ok:
            p = row.plugin
            table.append((row.name, p.modality, f"v{p.version}", dists, p.summary()))
        else:
            table.append((row.name, "BROKEN", "", dists, row.error or ""))
    widths = [max(len(cells[i]) for cells in table) for i in range(4)]
    for cells in table:
        click.echo("  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=False)) + "  " + cells[4])


def _format_default(value: Any) -> str:
    return "None" if value is None else repr(value) if isinstance(value, str) else str(value)


def _field_line(doc: FieldDoc, default: Any) -> str:
    """One config field of `ganzoo info`: name, type, default, doc line and what it accepts."""
    accepted = doc.constraints()
    help_text = f"{doc.help} [{accepted}]" if accepted else doc.help
    return f"  {doc.name:<18} {doc.type_name:<22} {_format_default(default):<16} {help_text}"


@cli.command()
@click.argument("name")
def info(name: str) -> None:
    """Show a plugin's description and every config field with its default, doc line, choices and bounds."""
    from ganzoo.config import describe, replace_config
    from ganzoo.engine.config import TrainConfig
    from ganzoo.registry import get_plugin

    plugin = get_plugin(name)
    click.echo(f"{plugin.name} v{plugin.version} ({plugin.modality})")
    click.echo(plugin.description)
    click.echo("\nmodel config (--set KEY=VALUE):")
    for doc in describe(plugin.Config):
        click.echo(_field_line(doc, doc.default))
    train_defaults = replace_config(TrainConfig(), dict(plugin.train_defaults), what="training")
    click.echo("\ntraining config (--set KEY=VALUE, or the flags of `ganzoo train`):")
    for doc in describe(TrainConfig):
        click.echo(_field_line(doc, getattr(train_defaults, doc.name)))


def _diffaugment_policy(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """--diffaugment: checked at once, so a misspelt op fails before any data is loaded."""
    from ganzoo.augment import parse_policy

    if value is not None:
        parse_policy(value)
    return value


def _training_options(function: Callable[..., Any]) -> Callable[..., Any]:
    """The options `train` and `finetune` share."""
    options = [
        click.option("--steps", type=int, default=None, help="iterations of the update schedule"),
        click.option("--epochs", type=float, default=None, help="passes over the data (instead of --steps)"),
        click.option("--batch-size", type=int, default=None, help="images per update step (all ranks together)"),
        click.option(
            "--accumulate", type=click.IntRange(min=1), default=None, help="the batch as N micro-batches (less memory)"
        ),
        click.option("--precision", type=click.Choice(["auto", "fp32", "bf16", "fp16"]), default=None),
        click.option("--device", default=None, help="auto, cpu, cuda or cuda:N"),
        click.option("--set", "set_options", multiple=True, metavar="KEY=VALUE", help="override a config value"),
        click.option("--config", "config_file", type=click.Path(dir_okay=False), default=None, help=".json or .toml"),
        click.option("--out", type=click.Path(file_okay=False), default=None, help="run directory"),
        click.option("--seed", type=int, default=None),
        click.option(
            "--eval-every", type=click.IntRange(min=1), default=None, help="evaluate every N iterations (FID)"
        ),
        click.option(
            "--diffaugment",
            default=None,
            metavar="OPS",
            callback=_diffaugment_policy,
            help="DiffAugment on every discriminator input: color,translation,cutout (any of them)",
        ),
        click.option(
            "--compile",
            is_flag=True,
            default=None,
            help="torch.compile the trained networks (the cache dir: --set compile_cache=DIR)",
        ),
        click.option(
            "--on-divergence",
            type=click.Choice(["stop", "rollback"]),
            default=None,
            help="stop [default], or roll back to the last good checkpoint with lower learning rates and go on",
        ),
        click.option(
            "--augment",
            type=click.Choice(["none", "ada"]),
            default=None,
            help="adaptive augmentation (ADA): its strength follows D's overfitting (ada_target, ada_kimg via --set)",
        ),
    ]
    for option in reversed(options):
        function = option(function)
    return function


def _overrides(config_file: str | None, set_options: tuple[str, ...], **flags: Any) -> dict[str, Any]:
    """Config file, then --set, then the flags given: the overrides of a training run."""
    from ganzoo.config import load_config_file, parse_set_options

    if flags.get("steps") is not None and flags.get("epochs") is not None:
        raise UsageError("give --steps or --epochs, not both")
    overrides: dict[str, Any] = load_config_file(config_file) if config_file else {}
    overrides.update(parse_set_options(set_options))
    overrides.update({k: v for k, v in flags.items() if v is not None})
    if flags.get("epochs") is not None:
        overrides.pop("steps", None)
    return overrides


def _command_line() -> str:
    """The command being run, as a shell would type it (recorded in a new run's config.json)."""
    return shlex.join(["ganzoo", *click.get_current_context().meta.get("ganzoo.argv", [])])


def _fit(trainer: Trainer) -> None:
    """Run a trainer and print where its results are; an interrupt says how to continue."""
    from ganzoo.engine.distributed import from_environment

    try:
        result = trainer.fit()
    except KeyboardInterrupt:
        raise GanzooError(
            f"interrupted at step {trainer.step}; continue with: ganzoo train {trainer.plugin.name} "
            f"--out {trainer.run_dir} --resume"
        ) from None
    if from_environment().is_main:  # under torchrun, one report
        click.echo(f"run: {result.run_dir}")
        click.echo(f"checkpoint: {result.checkpoint}")
        click.echo(f"samples: {result.samples}")
        click.echo(result.health)


@cli.command()
@click.argument("name")
@click.option(
    "--data", "data", default=None, help="data spec: folder:PATH, mnist, ... (default: the plugin's, else mnist-4k)"
)
@_training_options
@click.option("--resume", is_flag=True, help="continue the run in --out (or the newest run of NAME)")
def train(
    name: str,
    data: str | None,
    set_options: tuple[str, ...],
    config_file: str | None,
    out: str | None,
    resume: bool,
    **flags: Any,
) -> None:
    """Train the plugin NAME (see `ganzoo list`).

    With --eval-every N the EMA generator is scored every N iterations (`eval_metrics`, `eval_features`,
    `eval_n`, `eval_data` via --set); the scores go to metrics.jsonl and eval.json, the best weights to
    checkpoints/best. --diffaugment (DiffAugment, Zhao et al. 2020) helps when the data is small.
    """
    from ganzoo.registry import get_plugin

    plugin = get_plugin(name)
    overrides = _overrides(config_file, set_options, **flags)

    from ganzoo.engine.trainer import Trainer, split_overrides

    model_overrides, train_overrides = split_overrides(plugin, overrides)
    record = None if resume else {"command": _command_line()}
    _fit(Trainer(plugin, model_overrides, train_overrides, data=data, out=out, resume=resume, record=record))


@cli.command()
@click.option("--from", "source", required=True, help="the pretrained model: user/repo[@rev], a saved model or a run")
@click.option("--data", "data", required=True, help="data spec to fine-tune on, e.g. 'mnist-4k?classes=5-9&n=100'")
@_training_options
@click.option(
    "--freeze-d", type=click.IntRange(min=0), default=None, help="FreezeD: freeze the first N discriminator blocks"
)
def finetune(
    source: str, data: str, set_options: tuple[str, ...], config_file: str | None, out: str | None, **flags: Any
) -> None:
    """Fine-tune a pretrained model on new data: a new run that starts from SOURCE's generator, discriminator and
    EMA weights with fresh optimizers.

    The architecture is SOURCE's: --set may change training settings only (learning rates, betas, loss,
    penalty weights, training options). A conditional model re-sizes its class embeddings and heads to the
    data's classes (copying each class's rows by class name where the names match, else by index); data at
    another resolution is resized to the model's; --freeze-d says what it froze. The source's Hub repo and
    commit are recorded as `base_model` (config.json, and the card of a push).
    """
    from ganzoo.transfer import prepare_finetune

    overrides = _overrides(config_file, set_options, **flags)
    plan = prepare_finetune(source, data, overrides, out=out, record={"command": _command_line()})
    base = plan.base_model
    origin = f"{base['repo_id']} (commit {base['commit']})" if base.get("repo_id") else str(base["path"])
    click.echo(f"fine-tuning {plan.source.plugin.name} from {origin}")
    for note in plan.notes:
        click.echo(note)
    _fit(plan.trainer)


def _grid_size(ctx: click.Context, param: click.Parameter, value: str | None) -> tuple[int, int] | None:
    if value is None:
        return None
    rows, _, columns = value.lower().partition("x")
    if not (rows.isdigit() and columns.isdigit() and int(rows) > 0 and int(columns) > 0):
        raise click.BadParameter(f"{value!r} is not ROWSxCOLUMNS, e.g. 3x5", ctx, param)
    return int(rows), int(columns)


def _parse_floats(text: str, option: str) -> list[float]:
    """A comma-separated list of numbers, or a usage error naming the option."""
    try:
        return [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise UsageError(f"{option} {text!r}: expected comma-separated numbers, e.g. 0.8,1.0,1.2") from None


def _scores_line(scores: dict[str, Any]) -> str:
    return "  ".join(f"{k} {v:.6g}" for k, v in scores.items() if k != "temperature")


def _save_animation(frames: torch.Tensor, path: Path, per_row: int | None) -> Path:
    """Write (frames, n, C, H, W) images in [-1, 1] as a looping animation of grids (as `save_samples` tiles
    them), FRAME_MS per frame: an animated PNG, or a GIF when `path` ends in .gif. Pillow shows identical
    consecutive frames as one frame that lasts longer."""
    from PIL import Image

    from ganzoo.engine.checkpoint import atomic_path
    from ganzoo.engine.logging import image_grid

    images = []
    for frame in frames:
        grid = image_grid(frame, per_row).mul(255).add(0.5).clamp(0, 255).byte()  # as torchvision's save_image
        images.append(Image.fromarray(grid.permute(1, 2, 0).squeeze(2).numpy()))
    path.parent.mkdir(parents=True, exist_ok=True)
    kind = "GIF" if path.suffix.lower() == ".gif" else "PNG"
    with atomic_path(path) as tmp:
        images[0].save(tmp, format=kind, save_all=True, append_images=images[1:], duration=FRAME_MS, loop=0)
    return path


def _check_sample_options(out: str | None, n: int | None, interpolate: int | None, mix: Any, label: int | None) -> None:
    """The usage errors of `sample` that need no model: conflicting options and --out's file type."""
    if interpolate is not None and mix is not None:
        raise UsageError("--interpolate and --mix draw different pictures; give one of them")
    if mix is not None and (n is not None or label is not None):
        raise UsageError("--mix takes no --n or --label: its grid of unconditional images is --mix ROWSxCOLUMNS")
    accepted = ANIMATION_SUFFIXES if interpolate else IMAGE_SUFFIXES if mix else (*IMAGE_SUFFIXES, ".txt")
    if out is not None and Path(out).suffix.lower() not in accepted:
        kinds = "an animation" if interpolate else "a style-mixing grid" if mix else "samples (images or text)"
        raise UsageError(f"--out {out}: accepted file types are {', '.join(accepted)} for {kinds}")


@cli.command()
@click.argument("source")
@click.option("--n", "n", type=click.IntRange(min=1), default=None, help="samples [64], or --interpolate walks [1]")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option(
    "--out",
    type=click.Path(dir_okay=False),
    default=None,
    help="image or .txt file [default: samples.png, interpolation.png, style-mixing.png]",
)
@click.option("--device", default="cpu", show_default=True)
@click.option("--no-ema", is_flag=True, help="sample the raw generator instead of its EMA")
@click.option("--label", type=int, default=None, help="conditional models: draw this class only")
@click.option("--temperature", type=click.FloatRange(min=0, min_open=True), default=None, help="text models [1.0]")
@click.option("--top-k", type=click.IntRange(min=1), default=None, help="text models: only the k likeliest tokens")
@click.option(
    "--top-p",
    type=click.FloatRange(0, 1, min_open=True),
    default=None,
    help="text models: nucleus sampling, only the likeliest tokens that make up probability p",
)
@click.option(
    "--truncation",
    type=click.FloatRange(0, 1),
    default=None,
    help="models that support it (stylegan2, biggan): psi in [0, 1], 1 as trained, 0 the mean sample",
)
@click.option(
    "--interpolate",
    type=click.IntRange(min=2),
    default=None,
    metavar="FRAMES",
    help="an animation of FRAMES frames looping through latent space (.png: animated PNG, or .gif)",
)
@click.option(
    "--mix",
    is_flag=False,
    flag_value="4x4",
    default=None,
    callback=_grid_size,
    metavar="[ROWSxCOLUMNS]",
    help="style-based models (stylegan2): a style-mixing grid, coarse styles by row, fine by column [4x4]",
)
def sample(
    source: str,
    n: int | None,
    seed: int,
    out: str | None,
    device: str,
    no_ema: bool,
    label: int | None,
    temperature: float | None,
    top_k: int | None,
    top_p: float | None,
    truncation: float | None,
    interpolate: int | None,
    mix: tuple[int, int] | None,
) -> None:
    """Draw samples from a trained model (SOURCE: a run or checkpoint directory, a saved model, or a Hub repo
    user/name[@revision]).

    A conditional model draws --label's class, or without --label all its classes (one column per class). A text
    model prints its samples one per line, or writes them to --out FILE.txt. --interpolate FRAMES writes an
    animation of --n walks (default 1), each a loop of spherical interpolations through 4 latents (keypoint i:
    the latents of --seed + i). --mix draws StyleGAN's style-mixing grid.
    """
    from ganzoo.engine.logging import save_samples
    from ganzoo.engine.precision import resolve_device
    from ganzoo.hub import load_pretrained

    _check_sample_options(out, n, interpolate, mix, label)
    model = load_pretrained(source, device=resolve_device(device))
    if truncation is not None and not model.plugin.truncation:
        raise UsageError(f"{model.plugin.name} does not support --truncation (stylegan2 and biggan do)")
    if model.plugin.modality != "text" and (temperature, top_k, top_p) != (None, None, None):
        raise UsageError(
            f"--temperature, --top-k and --top-p are for text models; {model.plugin.name} is an image model"
        )
    options = {} if truncation is None else {"truncation": truncation}
    if interpolate is not None:
        frames, per_row = model.interpolate(interpolate, n or 1, seed, label, use_ema=not no_ema, **options)
        click.echo(f"animation: {_save_animation(frames, Path(out or 'interpolation.png'), per_row)}")
        return
    if mix is not None:
        grid = model.style_mixing_grid(*mix, seed=seed, use_ema=not no_ema, **options)
        click.echo(f"style mixing: {save_samples(grid, Path(out or 'style-mixing.png'), mix[1] + 1)}")
        return
    n = n or 64
    if model.plugin.modality == "text":
        if label is not None:
            raise UsageError(f"{model.plugin.name} is not a conditional model; it takes no --label")
        if out is not None and Path(out).suffix.lower() != ".txt":
            raise UsageError(f"--out {out}: {model.plugin.name} draws text; write it to a .txt file")
        options = {"temperature": 1.0 if temperature is None else temperature, "top_k": top_k}
        if top_p is not None:
            options["top_p"] = top_p
        samples, per_row = model.sample(n, seed=seed, use_ema=not no_ema, **options), None
        if out is None:
            click.echo("\n".join(samples))
            return
    else:
        samples, per_row = model.sample_grid(n, seed=seed, label=label, use_ema=not no_ema, **options)
    path = save_samples(samples, Path(out or "samples.png"), per_row)
    click.echo(f"samples: {path}")


@cli.command("eval")
@click.argument("source")
@click.option("--data", default=None, help="real data to compare with (default: the model's training data)")
@click.option(
    "--metrics",
    default=None,
    help="images: fid, kid, pr, is, accuracy (default fid,kid,pr); text: bleu, self-bleu (default both)",
)
@click.option("--features", default="digits", show_default=True, help="digits, inception or timm:<model>")
@click.option("--weights", type=click.Path(dir_okay=False), default=None, help="local weights of the extractor")
@click.option("--n", "n", type=click.IntRange(min=2), default=10000, show_default=True, help="generated samples")
@click.option("--batch-size", type=click.IntRange(min=1), default=250, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--device", default="cpu", show_default=True)
@click.option("--no-ema", is_flag=True, help="evaluate the raw generator instead of its EMA")
@click.option(
    "--temperatures",
    default=None,
    metavar="T1,T2,...",
    help="text models: also BLEU-4 / self-BLEU-4 of samples drawn at each temperature (the quality-diversity curve)",
)
@click.option("--json", "json_out", type=click.Path(dir_okay=False), default=None, help="also write the results here")
def eval_command(
    source: str,
    data: str | None,
    metrics: str | None,
    features: str,
    weights: str | None,
    n: int,
    batch_size: int,
    seed: int,
    device: str,
    no_ema: bool,
    temperatures: str | None,
    json_out: str | None,
) -> None:
    """Score a trained model (SOURCE: a run or checkpoint directory, a saved model, or a Hub repo
    user/name[@revision]) against real data.

    Conditional models also get `accuracy` with the digits features; text models are scored with
    BLEU-4 and self-BLEU-4 over their tokens. The results are recorded in the run's eval.json.
    """
    import json

    from ganzoo.engine.checkpoint import write_text_atomic
    from ganzoo.engine.logging import bar_is_readable
    from ganzoo.engine.precision import resolve_device
    from ganzoo.hub import load_pretrained
    from ganzoo.metrics.evaluation import default_metrics, evaluate, is_paired, parse_metrics, record_evaluation

    if metrics is not None:
        parse_metrics(metrics)  # a typo fails before any download
    curve = _parse_floats(temperatures, "--temperatures") if temperatures is not None else None
    model = load_pretrained(source, device=resolve_device(device))
    default = default_metrics(model.plugin.modality, is_paired(model))
    names = list(parse_metrics(metrics if metrics is not None else default))
    if model.conditional and "accuracy" not in names and features == "digits":
        names.append("accuracy")
    shown = bar_is_readable()  # progress bars on a terminal only (their redraws garble logs)
    result = evaluate(
        model,
        data,
        names,
        features,
        n,
        batch_size,
        seed,
        weights,
        use_ema=not no_ema,
        progress=shown,
        temperatures=curve,
    )
    rows = [(k, f"{v:.6g}" if isinstance(v, float) else str(v)) for k, v in result.items() if k != "curve"]
    for point in result.get("curve", []):
        rows.append((f"temperature {point['temperature']:g}", _scores_line(point)))
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        click.echo(f"{key.ljust(width)}  {value}")
    if model.info.get("run_dir"):  # a run's checkpoint: keep the scores with the run
        record_evaluation(
            Path(model.info["run_dir"]), result, step=model.info.get("step"), checkpoint=model.info["checkpoint"]
        )
    if json_out:
        write_text_atomic(Path(json_out), json.dumps(result, indent=2) + "\n")
        click.echo(f"json: {json_out}")


@cli.command()
@click.argument("source")
@click.option("--repo-id", required=True, help="the Hub repo to push to: user/name (created if needed)")
@click.option("--private", is_flag=True, help="create the repo private")
@click.option("--revision", default=None, help="push to this branch (created from main if needed)")
@click.option("--message", default=None, help="commit message")
def push(source: str, repo_id: str, private: bool, revision: str | None, message: str | None) -> None:
    """Upload a trained model (SOURCE: a run or checkpoint directory, or a saved model) to the Hugging Face Hub
    and print the commit URL.

    The repo gets config.json, model.safetensors, a model card (README.md) and samples.png. The token comes from
    HF_TOKEN or `hf auth login`.
    """
    from ganzoo.hub import push_to_hub

    click.echo(push_to_hub(source, repo_id, private=private, revision=revision, commit_message=message))


@cli.command()
@click.argument("query", required=False)
@click.option("--plugin", default=None, help="only models of this plugin, e.g. dcgan")
@click.option("--task", default=None, help="only models of this task, e.g. super-resolution, inpainting or sr4x")
@click.option("--author", default=None, help="only models of this user or organisation")
@click.option("--limit", type=click.IntRange(min=1), default=20, show_default=True)
def search(query: str | None, plugin: str | None, task: str | None, author: str | None, limit: int) -> None:
    """List ganzoo models on the Hub (HF_ENDPOINT), most downloaded first: those whose repo id contains QUERY,
    with their plugin, task, downloads and the scores on their cards."""
    from ganzoo.catalogue import search as search_hub

    entries = search_hub(query, plugin=plugin, task=task, author=author, limit=limit)
    if not entries:
        click.echo("no ganzoo models found")
        return
    rows = [("model", "plugin", "task", "downloads", "scores")]
    for entry in entries:
        scores = ", ".join(f"{k} {v:.4g}" for k, v in entry.scores.items())
        fine_tuned = f" (from {entry.base_model})" if entry.base_model else ""
        rows.append((entry.repo_id + fine_tuned, entry.plugin or "?", entry.task or "?", str(entry.downloads), scores))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    for row in rows:
        click.echo("  ".join(cell.ljust(width) for cell, width in zip(row[:4], widths, strict=True)) + "  " + row[4])


@cli.command()
@click.argument("source")
@click.option("--input", "inputs", required=True, type=click.Path(), help="an image file or a directory of images")
@click.option("--direction", type=click.Choice(["a2b", "b2a"]), default="a2b", show_default=True)
@click.option("--out", required=True, type=click.Path(file_okay=False), help="directory for the translations")
@click.option("--device", default="cpu", show_default=True)
@click.option("--no-ema", is_flag=True, help="use the raw generators instead of their EMA copies")
def translate(source: str, inputs: str, direction: str, out: str, device: str, no_ema: bool) -> None:
    """Translate images with an image-to-image model such as cyclegan (SOURCE: a run, checkpoint, saved model or
    Hub repo).

    Every image under --input is resized to the model's resolution, translated, resized back to its own size and
    written under the same name (and sub-folder) in --out.
    """
    from ganzoo.engine.precision import resolve_device
    from ganzoo.hub import load_pretrained
    from ganzoo.translate import translate as translate_images

    model = load_pretrained(source, device=resolve_device(device))
    written = translate_images(model, inputs, direction=direction, out_dir=out, use_ema=not no_ema)
    click.echo(f"translated {len(written)} image(s) into {out}")


@cli.command()
@click.argument("source")
@click.option("--input", "inputs", required=True, type=click.Path(), help="an image file or a directory of images")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="directory for the outputs")
@click.option("--mask", default=None, type=click.Path(), help="inpainting: a mask image or a directory of masks")
@click.option("--overlap", type=click.IntRange(min=0), default=None, help="tile overlap in input pixels")
@click.option("--batch-size", type=click.IntRange(min=1), default=16, show_default=True, help="tiles at once")
@click.option("--device", default="cpu", show_default=True)
@click.option("--no-ema", is_flag=True, help="use the raw generator instead of its EMA copy")
def enhance(
    source: str,
    inputs: str,
    out: str,
    mask: str | None,
    overlap: int | None,
    batch_size: int,
    device: str,
    no_ema: bool,
) -> None:
    """Enhance images of any size with a paired image-to-image model: super-resolution, denoising, colorization,
    inpainting, pix2pix (SOURCE: a run, checkpoint, saved model or Hub repo).

    Each image under --input is processed in overlapping tiles of the model's input size, blended without seams,
    and written under the same name (and sub-folder) in --out at its size times the model's scale. Inpainting
    fills the nonzero pixels of --mask (a mask image of the same size, or a directory of them under the inputs'
    names), else the images' transparent pixels; known pixels are kept exactly.
    """
    from ganzoo.engine.logging import bar_is_readable
    from ganzoo.engine.precision import resolve_device
    from ganzoo.enhance import enhance as enhance_images
    from ganzoo.hub import load_pretrained

    model = load_pretrained(source, device=resolve_device(device))
    written = enhance_images(
        model,
        inputs,
        out,
        mask=mask,
        overlap=overlap,
        batch_size=batch_size,
        use_ema=not no_ema,
        progress=bar_is_readable(),
    )
    click.echo(f"enhanced {len(written)} image(s) into {out}")


@cli.command()
@click.argument("source")
@click.argument("directory", type=click.Path(file_okay=False))
def save(source: str, directory: str) -> None:
    """Export a trained model (SOURCE: a run, checkpoint, saved model or Hub repo) to DIRECTORY in the Hub layout:
    config.json, model.safetensors, README.md (model card) and samples.png."""
    from ganzoo.hub import save_pretrained

    click.echo(f"saved: {save_pretrained(source, directory)}")


@cli.command()
@click.argument("run", type=click.Path(file_okay=False))
def verify(run: str) -> None:
    """Check every checkpoint of RUN against the SHA-256 of its files recorded in its trainer.json, and print a
    table (newest first); exit 1 when any checkpoint is unusable."""
    from ganzoo.engine.checkpoint import read_trainer_info, usable_checkpoints

    directory = Path(run) / "checkpoints"
    rows = list(usable_checkpoints(directory))
    if not rows:
        raise UsageError(f"{run} holds no checkpoints (looked in {directory})")
    for path, problem in rows:
        step = read_trainer_info(path)["step"] if problem is None else "?"
        click.echo(f"{path.name}  step {step}  {'ok' if problem is None else 'UNUSABLE: ' + problem}")
    bad = sum(problem is not None for _, problem in rows)
    if bad:
        raise GanzooError(f"{bad} of {len(rows)} checkpoints in {directory} are unusable")


@cli.command()
@click.argument("runs", nargs=-1, required=True, type=click.Path(file_okay=False))
@click.option("--out", type=click.Path(dir_okay=False), default="report.html", show_default=True)
@click.option("--png", "png_dir", type=click.Path(file_okay=False), default=None, help="also write the figures here")
def report(runs: tuple[str, ...], out: str, png_dir: str | None) -> None:
    """Write one self-contained HTML report of RUNS (no server or network needed to view it): the command and
    config, loss and diagnostic curves (several runs overlaid), evaluations over steps, health warnings at their
    steps, sample grids over time and, with several runs, a table of their final scores."""
    from ganzoo.report import write_report

    click.echo(f"report: {write_report(list(runs), out, png_dir)}")


@cli.group()
def zoo() -> None:
    """Reference models: each plugin's recipe, trained, scored and saved Hub-ready (`zoo build`), and published
    (`zoo push`)."""


@zoo.command("list")
def zoo_list() -> None:
    """Every installed plugin's reference recipe: the model's name, its data, iterations and overrides."""
    from ganzoo.registry import get_plugin, list_models

    for name in list_models():
        recipe = get_plugin(name).reference_recipe
        if recipe is None:
            click.echo(f"{name}: no reference recipe")
            continue
        parts = [recipe.name, recipe.data, f"{recipe.steps} iterations"]
        parts += [f"--set {k}={v}" for k, v in recipe.overrides.items()]
        click.echo(f"{name}: {'  '.join(parts)}  (scored on {recipe.eval_data or recipe.data})")


@zoo.command("build")
@click.argument("names", nargs=-1)
@click.option("--out", type=click.Path(file_okay=False), default="zoo", show_default=True, help="zoo directory")
@click.option("--steps", type=click.IntRange(min=1), default=None, help="iterations instead of the recipe's")
@click.option("--set", "set_options", multiple=True, metavar="KEY=VALUE", help="override a recipe's config value")
@click.option("--n", "n", type=click.IntRange(min=2), default=None, help="samples scored [the recipe's]")
@click.option("--device", default=None, help="auto, cpu, cuda or cuda:N")
def zoo_build(
    names: tuple[str, ...], out: str, steps: int | None, set_options: tuple[str, ...], n: int | None, device: str | None
) -> None:
    """Train the reference recipe of each plugin NAME (every plugin with one when none is named), score it on its
    held-out data and save it Hub-ready in OUT/<model>, with the scores and the command on its card; OUT/zoo.md
    tables them. An interrupted build resumes from its run in OUT/runs/<model>. --steps and --set make variants,
    and their cards say so."""
    from ganzoo.config import parse_set_options
    from ganzoo.metrics.evaluation import SCORE_KEYS
    from ganzoo.zoo import TABLE_FILE, build

    def said(model: Any) -> None:
        scores = ", ".join(f"{k} {model.scores[k]:.4g}" for k in SCORE_KEYS if k in model.scores)
        click.echo(f"{model.plugin}: {model.directory}  {scores}")

    overrides = parse_set_options(set_options)
    build(list(names), out, on_built=said, steps=steps, overrides=overrides, n=n, device=device)
    click.echo(f"table: {Path(out) / TABLE_FILE}")


@zoo.command("push")
@click.argument("directory", type=click.Path(file_okay=False))
@click.option("--namespace", required=True, help="the Hub user or organisation to publish under")
@click.option("--private", is_flag=True, help="create the repos private")
def zoo_push(directory: str, namespace: str, private: bool) -> None:
    """Upload every model `zoo build` saved in DIRECTORY to NAMESPACE/<model> and print the commit URLs."""
    from ganzoo.zoo import push

    for repo_id, url in push(directory, namespace, private=private):
        click.echo(f"{repo_id}: {url}")


def main() -> None:
    cli(prog_name="ganzoo")


if __name__ == "__main__":
    main()

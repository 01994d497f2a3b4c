"""The zoo of reference weights: `ganzoo zoo build` trains each plugin's reference recipe, scores it and saves a
Hub-ready model; `ganzoo zoo push` publishes them.

A plugin declares its recipe as `GANPlugin.reference_recipe` (a `ganzoo.plugin.Recipe`: data, steps, overrides,
how it is scored). `build(["dcgan"], "zoo")` trains it in `zoo/runs/<recipe name>` (an interrupted build resumes
there, bit-identically on the CPU), scores the EMA model on the recipe's held-out data, records the scores in the
run's eval.json and saves `zoo/<recipe name>` with `save_pretrained`: config.json (with a `zoo` record of the recipe
and the command that made it), model.safetensors, samples and a card whose front matter carries the scores. A build
with `steps` or `overrides` is a variant, and its card says so. `zoo/zoo.md` holds a table of every model in the
directory, the rows of the README's "Pretrained models".
"""

from __future__ import annotations

import dataclasses
import json
import shlex
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ganzoo.errors import UsageError
from ganzoo.metrics.evaluation import SCORE_KEYS
from ganzoo.plugin import GANPlugin, Recipe

TABLE_FILE = "zoo.md"
RUNS = "runs"


@dataclasses.dataclass(frozen=True)
class ZooModel:
    """One built model: its plugin, the saved directory, the run it was trained in, its scores and the command."""

    plugin: str
    directory: Path
    run_dir: Path
    scores: dict[str, Any]
    command: str


def recipe_of(plugin: GANPlugin) -> Recipe:
    """The plugin's reference recipe; a plugin without one is a `UsageError`."""
    recipe = plugin.reference_recipe
    if recipe is None:
        raise UsageError(f"{plugin.name} declares no reference recipe (GANPlugin.reference_recipe): no zoo model")
    return recipe


def _command(name: str, steps: int | None, overrides: Mapping[str, Any]) -> str:
    words = ["ganzoo", "zoo", "build", name]
    if steps is not None:
        words += ["--steps", str(steps)]
    for key, value in overrides.items():
        words += ["--set", f"{key}={value}"]
    return shlex.join(words)


def build_one(
    name: str,
    out: str | Path,
    steps: int | None = None,
    overrides: Mapping[str, Any] | None = None,
    n: int | None = None,
    device: str | None = None,
    progress: bool = True,
) -> ZooModel:
    """Train, score and save one plugin's reference model under `out` (see the module docstring). `steps`,
    `overrides` (`--set` keys, over the recipe's) and `n` (samples scored) make a variant of the recipe."""
    from ganzoo.engine.checkpoint import list_checkpoints
    from ganzoo.engine.trainer import Trainer, split_overrides
    from ganzoo.hub import save_pretrained
    from ganzoo.metrics.evaluation import evaluate, record_evaluation
    from ganzoo.registry import get_plugin

    plugin = get_plugin(name)
    recipe = recipe_of(plugin)
    extra = dict(overrides or {})
    model_overrides, train_overrides = split_overrides(plugin, {**recipe.overrides, **extra})
    train_overrides["steps"] = steps if steps is not None else recipe.steps
    train_overrides.setdefault("progress", progress)
    if device is not None:
        train_overrides["device"] = device
    out = Path(out)
    run_dir = out / RUNS / recipe.name
    command = _command(name, steps, extra)
    record = {
        "zoo": {
            "recipe": recipe.name,
            "command": command,
            "reference": steps is None and not extra,
            "eval_data": recipe.eval_data or recipe.data,
        }
    }
    resume = bool(list_checkpoints(run_dir / "checkpoints"))
    trainer = Trainer(
        plugin,
        model_overrides,  # (resuming: the saved run's must be the same, or the trainer says which key differs)
        train_overrides,
        data=recipe.data,
        out=run_dir,
        resume=resume,
        record=record,
    )
    result = trainer.fit()
    scores = evaluate(
        result.model,
        data=recipe.eval_data or recipe.data,
        metrics=recipe.metrics,
        features=recipe.features,
        n=n or recipe.n,
        progress=progress,
        temperatures=recipe.temperatures,
    )
    record_evaluation(run_dir, scores, step=result.step, checkpoint=str(result.checkpoint))
    directory = save_pretrained(run_dir, out / recipe.name)
    write_table(out)
    return ZooModel(plugin.name, directory, run_dir, scores, command)


def build(
    names: Sequence[str],
    out: str | Path,
    on_built: Callable[[ZooModel], None] | None = None,
    **options: Any,
) -> list[ZooModel]:
    """`build_one` for each plugin of `names` (every installed plugin with a recipe when empty), in order;
    `on_built` is called after each."""
    from ganzoo.registry import get_plugin, list_models

    if not names:
        names = [name for name in list_models() if get_plugin(name).reference_recipe is not None]
    else:
        for name in names:
            recipe_of(get_plugin(name))  # every name is checked before anything trains
    built = []
    for name in names:
        model = build_one(name, out, **options)
        built.append(model)
        if on_built is not None:
            on_built(model)
    return built


def saved_models(directory: str | Path) -> list[Path]:
    """The saved models (directories with a ganzoo config.json) directly under `directory`, by name."""
    from ganzoo.hub import _is_saved_model

    root = Path(directory)
    if not root.is_dir():
        raise UsageError(f"{root} is not a directory of zoo models (make one with `ganzoo zoo build --out {root}`)")
    return sorted(path for path in root.iterdir() if path.is_dir() and _is_saved_model(path))


def _format(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def write_table(directory: str | Path) -> Path:
    """Write `directory/zoo.md`: a markdown table of its saved models, their data, steps, scores and commands."""
    rows = ["| model | plugin | trained on | iterations | scored on | scores | made by |", "|---" * 7 + "|"]
    for path in saved_models(directory):
        record = json.loads((path / "config.json").read_text(encoding="utf-8"))
        evaluation = record.get("evaluation") or {}
        scores = ", ".join(f"{k} {_format(evaluation[k])}" for k in SCORE_KEYS if k in evaluation)
        zoo = record.get("zoo") or {}
        command = f"`{zoo['command']}`" if zoo.get("command") else ""
        scored_on = f"`{evaluation['data']}`" if evaluation.get("data") else ""
        rows.append(
            f"| {path.name} | {record['plugin']} | `{record.get('data')}` | {record.get('steps')} | {scored_on} "
            f"| {scores} | {command} |"
        )
    target = Path(directory) / TABLE_FILE
    target.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return target


def push(directory: str | Path, namespace: str, private: bool = False) -> list[tuple[str, str]]:
    """Upload every saved model under `directory` to `namespace/<its directory name>`; (repo id, commit URL) each."""
    from ganzoo.hub import push_to_hub

    models = saved_models(directory)
    if not models:
        raise UsageError(f"{directory} holds no saved models; build them with `ganzoo zoo build --out {directory}`")
    repos = [(f"{namespace}/{path.name}", path) for path in models]
    return [(repo_id, push_to_hub(path, repo_id, private=private)) for repo_id, path in repos]


__all__ = ["TABLE_FILE", "ZooModel", "build", "build_one", "push", "recipe_of", "saved_models", "write_table"]

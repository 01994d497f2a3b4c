"""`ganzoo zoo`: every built-in plugin's reference recipe is valid; `zoo build` trains, scores and saves a loadable,
pushable model whose card has the scores and the command; `zoo push` publishes a directory of them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from helpers_engine import ToyGAN
from huggingface_hub import ModelCard

import ganzoo
from ganzoo.catalogue import search
from ganzoo.cli import cli
from ganzoo.data import resolve_data
from ganzoo.engine.trainer import split_overrides
from ganzoo.metrics.evaluation import default_metrics, evaluate, parse_metrics
from ganzoo.registry import get_plugin, list_models

BUILT_IN = [name for name in list_models() if get_plugin(name).__module__.startswith("ganzoo_plugins.")]
TINY_DCGAN = ("--set", "g_width=4", "--set", "d_width=4", "--set", "latent_dim=8", "--set", "batch_size=8")


def ganzoo_cli(*args: object) -> Result:
    return CliRunner().invoke(cli, [str(a) for a in args], prog_name="ganzoo")


def ok(result: Result) -> str:
    assert result.exit_code == 0, result.output + repr(result.exc_info)
    return result.stdout


def error_line(result: Result, exit_code: int) -> str:
    assert result.exit_code == exit_code, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    return lines[0]


@pytest.mark.parametrize("name", BUILT_IN)
def test_every_built_in_plugin_has_a_valid_reference_recipe(name):
    plugin = get_plugin(name)
    recipe = plugin.reference_recipe
    assert recipe is not None and recipe.name.startswith(name) and recipe.steps > 0
    split_overrides(plugin, recipe.overrides)  # known keys
    for spec in (recipe.data, recipe.eval_data or recipe.data):
        assert resolve_data(spec).info().modality in (plugin.modality, "image")
    paired = bool(resolve_data(recipe.data).info().extras.get("paired"))
    assert set(parse_metrics(recipe.metrics or default_metrics(plugin.modality, paired)))
    if recipe.eval_data:
        assert "split=test" in recipe.eval_data  # scored on held-out data


def test_zoo_build_saves_a_scored_model_resumes_and_pushes(hub, tmp_path):
    said = ok(ganzoo_cli("zoo", "build", "dcgan", "--steps", 2, *TINY_DCGAN, "--n", 20, "--out", "zoo"))
    directory = Path("zoo/dcgan-mnist")
    assert f"dcgan: {directory}  fid " in said and "table: zoo/zoo.md" in said
    model = ganzoo.load_pretrained(directory)
    record = json.loads((directory / "config.json").read_text())
    assert record["data"] == "mnist-4k?split=train" and record["steps"] == 2
    command = "ganzoo zoo build dcgan --steps 2 --set g_width=4 --set d_width=4 --set latent_dim=8 --set batch_size=8"
    assert record["zoo"] == {
        "recipe": "dcgan-mnist",
        "command": command,
        "reference": False,
        "eval_data": "mnist-4k?split=test",
    }
    scores = record["evaluation"]
    assert scores["data"] == "mnist-4k?split=test" and scores["n"] == 20 and scores["step"] == 2
    again = evaluate(model, data="mnist-4k?split=test", metrics="fid,kid,pr", n=20)
    assert again["fid"] == pytest.approx(scores["fid"])  # the card's score is the saved model's
    card = ModelCard((directory / "README.md").read_text())
    assert {r.metric_type for r in card.data.eval_results} == {"fid", "kid_mean", "kid_std", "precision", "recall"}
    assert f"{command} --out zoo" in card.text and "a variant of the reference recipe `dcgan-mnist`" in card.text
    table = Path("zoo/zoo.md").read_text().splitlines()
    assert table[2].startswith("| dcgan-mnist | dcgan | `mnist-4k?split=train` | 2 | `mnist-4k?split=test` | fid ")
    assert table[2].endswith(f"| `{command}` |")

    ok(ganzoo_cli("zoo", "build", "dcgan", "--steps", 3, *TINY_DCGAN, "--n", 20, "--out", "zoo"))  # resumes
    assert json.loads((directory / "config.json").read_text())["steps"] == 3
    assert len(Path("zoo/zoo.md").read_text().splitlines()) == 3

    pushed = ok(ganzoo_cli("zoo", "push", "zoo", "--namespace", "alice")).splitlines()
    assert len(pushed) == 1 and pushed[0].startswith("alice/dcgan-mnist: http://127.0.0.1:")
    (found,) = search(plugin="dcgan")
    assert found.repo_id == "alice/dcgan-mnist" and set(found.scores) >= {"fid", "kid_mean", "recall"}
    assert ganzoo.load_pretrained("alice/dcgan-mnist").info["record"]["zoo"]["command"] == command


def test_zoo_build_of_a_text_model(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    tiny = ["--set", "embed_dim=4", "--set", "hidden_dim=8", "--set", "d_embed_dim=4", "--set", "d_hidden_dim=4"]
    said = ok(ganzoo_cli("zoo", "build", "lstm-gan", "--steps", 2, *tiny, "--set", "pretrain_steps=1", "--n", 20))
    assert "lstm-gan: zoo/lstm-gan-surnames  bleu4 " in said
    record = json.loads(Path("zoo/lstm-gan-surnames/config.json").read_text())
    assert {"bleu4", "self_bleu4"} <= set(record["evaluation"])
    assert record["evaluation"]["data"] == "surnames?split=test"
    card = ModelCard(Path("zoo/lstm-gan-surnames/README.md").read_text())
    assert {r.metric_type for r in card.data.eval_results} == {"bleu4", "self_bleu4"}
    temperatures = ganzoo.get_plugin("lstm-gan").reference_recipe.temperatures
    assert [point["temperature"] for point in record["evaluation"]["curve"]] == list(temperatures)
    assert "## Quality-diversity curve" in card.text
    for point in record["evaluation"]["curve"]:  # the card records the model's position on the curve
        assert f"| {point['temperature']:g} | {point['bleu4']:.4f} | {point['self_bleu4']:.4f} |" in card.text


def test_zoo_errors_are_one_line(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert "no-such-gan" in error_line(ganzoo_cli("zoo", "build", "no-such-gan"), 2)
    toy = ganzoo.register(ToyGAN(name="toy-zoo-test"), replace=True)
    try:
        line = error_line(ganzoo_cli("zoo", "build", "dcgan", toy.name), 2)
        assert "toy-zoo-test declares no reference recipe" in line
        assert not Path("zoo").exists()  # checked before anything trains
    finally:
        ganzoo.unregister(toy.name)
    Path("empty").mkdir()
    assert "empty holds no saved models" in error_line(ganzoo_cli("zoo", "push", "empty", "--namespace", "alice"), 2)
    assert "is not a directory of zoo models" in error_line(ganzoo_cli("zoo", "push", "nowhere", "--namespace", "a"), 2)
    listed = ok(ganzoo_cli("zoo", "list"))
    assert "dcgan: dcgan-mnist  mnist-4k?split=train  2000 iterations" in listed

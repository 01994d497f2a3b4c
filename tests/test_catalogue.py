"""`ganzoo search` and `ganzoo.catalogue.search` against the loopback Hub server: filters by plugin, task and query,
downloads order, scores and base models read from the cards that ganzoo writes."""

from __future__ import annotations

import time
import types

import pytest
from click.testing import CliRunner
from huggingface_hub import HfApi

import ganzoo
from ganzoo.catalogue import search
from ganzoo.cli import cli
from ganzoo.errors import HubError, UsageError
from ganzoo.hub import model_card
from ganzoo.testing import HubServer

TINY = {"resolution": 28, "channels": 1, "g_width": 4, "d_width": 4, "latent_dim": 8}


def record(plugin: str, modality: str = "image", task: str | None = None, **extra: object) -> dict:
    info = {"extras": {"paired": True, "task": task}} if task else {"extras": {}}
    return {"plugin": plugin, "modality": modality, "data_info": info, "config": {}, **extra}


def upload_card(repo_id: str, card: str, token: str = "tok-alice") -> None:
    api = HfApi(token=token)
    api.create_repo(repo_id, exist_ok=True)
    api.upload_file(path_or_fileobj=card.encode(), path_in_repo="README.md", repo_id=repo_id)


@pytest.fixture
def catalogue(hub):
    """A pushed dcgan (downloaded once), a fine-tune of it with scores, an srgan x4 and an inpainting card, and a
    repo that ganzoo did not make."""
    ganzoo.push_to_hub(ganzoo.create_model("dcgan", **TINY), "alice/digits")
    ganzoo.load_pretrained("alice/digits")  # one download
    scores = {"fid": 1.5, "kid_mean": 0.002, "data": "mnist-4k", "features": "digits", "n": 100}
    tuned = record("dcgan", base_model={"repo_id": "alice/digits", "commit": "a" * 40}, evaluation=scores)
    upload_card("alice/digits-5-9", model_card(tuned, "alice/digits-5-9"))
    upload_card("bob/photos-x4", model_card(record("srgan", "image-to-image", "sr4x")), token="tok-bob")
    upload_card("alice/holes", model_card(record("inpaint", "image-to-image", "inpaint")))
    upload_card("alice/bert", "---\nlibrary_name: transformers\ntags: [gan]\n---\n# not ours\n")
    return hub


def test_search_lists_ganzoo_models_most_downloaded_first(catalogue):
    found = search()
    assert found[0].repo_id == "alice/digits" and found[0].downloads == 1
    assert {e.repo_id for e in found} == {"alice/digits", "alice/digits-5-9", "bob/photos-x4", "alice/holes"}
    by_id = {e.repo_id: e for e in found}
    assert by_id["alice/digits"].plugin == "dcgan" and by_id["alice/digits"].task == "unconditional-image-generation"
    assert by_id["alice/digits-5-9"].scores == {"fid": 1.5, "kid_mean": 0.002}
    assert by_id["alice/digits-5-9"].base_model == "alice/digits" and by_id["alice/digits"].base_model is None
    assert (by_id["bob/photos-x4"].plugin, by_id["bob/photos-x4"].task) == ("srgan", "super-resolution")


def test_search_filters_by_plugin_task_query_author_and_limit(catalogue):
    assert {e.repo_id for e in search(plugin="dcgan")} == {"alice/digits", "alice/digits-5-9"}
    assert [e.repo_id for e in search(task="super-resolution")] == ["bob/photos-x4"]
    assert [e.repo_id for e in search(task="sr4x")] == ["bob/photos-x4"]  # the data's task name works too
    assert [e.repo_id for e in search(task="inpainting", plugin="inpaint")] == ["alice/holes"]
    assert search(task="inpainting", plugin="dcgan") == []
    assert {e.repo_id for e in search("DIGITS")} == {"alice/digits", "alice/digits-5-9"}
    assert [e.repo_id for e in search(author="bob")] == ["bob/photos-x4"]
    assert len(search(limit=2)) == 2
    with pytest.raises(UsageError, match="unknown task 'upscale'; accepted: super-resolution"):
        search(task="upscale")


def test_search_command_prints_a_table_and_one_line_errors(catalogue, monkeypatch):
    result = CliRunner().invoke(cli, ["search", "--plugin", "dcgan"], prog_name="ganzoo")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["model", "plugin", "task", "downloads", "scores"]
    assert lines[1].split()[:4] == ["alice/digits", "dcgan", "unconditional-image-generation", "1"]
    assert "alice/digits-5-9 (from alice/digits)" in lines[2] and "fid 1.5, kid_mean 0.002" in lines[2]
    result = CliRunner().invoke(cli, ["search", "--task", "colorization"], prog_name="ganzoo")
    assert result.exit_code == 0 and result.stdout == "no ganzoo models found\n"
    result = CliRunner().invoke(cli, ["search", "--task", "upscale"], prog_name="ganzoo")
    assert result.exit_code == 2 and result.stderr.startswith("Error: unknown task 'upscale'")

    from huggingface_hub import constants

    with HubServer({}) as closed:
        url = closed.url  # a port that nothing listens on once the block ends
    monkeypatch.setattr(constants, "ENDPOINT", url)
    clock = types.SimpleNamespace(**{**vars(time), "sleep": lambda seconds: None})  # no waits between its retries
    monkeypatch.setattr("huggingface_hub.utils._http.time", clock)
    result = CliRunner().invoke(cli, ["search"], prog_name="ganzoo")
    assert (
        result.exit_code == 1
        and result.stderr == f"Error: cannot reach the Hub at {url}: [Errno 111] Connection refused\n"
    )
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(HubError, match="cannot search the Hub while HF_HUB_OFFLINE=1"):
        search()

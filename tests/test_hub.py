"""Hub publishing and loading end to end, offline: a Hub-compatible server on 127.0.0.1 (ganzoo.testing.HubServer)
and the real huggingface_hub client. Push with `ganzoo push`, load `user/repo[@rev]` into an empty cache, sample;
commits with history, branches, offline loading from the cache, every error case, both upload paths, the card.
"""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner, Result
from helpers_engine import DCGAN_TINY, dcgan_train
from PIL import Image
from safetensors import safe_open
from safetensors.torch import load_file, save_file

import ganzoo
from ganzoo.cli import cli
from ganzoo.errors import HubError, UsageError
from ganzoo.hub import FORMAT_VERSION, model_card, parse_hub_source
from ganzoo.metrics.evaluation import record_evaluation
from ganzoo.model import load_run
from ganzoo.testing import HubServer


def invoke(*args: object) -> Result:
    return CliRunner().invoke(cli, [str(a) for a in args], prog_name="ganzoo")


def assert_ok(result: Result) -> None:
    assert result.exit_code == 0, result.output + repr(result.exception)
    assert "Traceback" not in result.output


def one_line_error(result: Result, exit_code: int, *needles: str) -> str:
    assert result.exit_code == exit_code, result.output + repr(result.exc_info)
    assert isinstance(result.exception, SystemExit), repr(result.exc_info)
    lines = [line for line in result.stderr.splitlines() if line.strip() and not line.startswith("Fetching")]
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    assert "tok-" not in result.output  # the token is never printed
    return lines[0]


def assert_same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert sorted(a) == sorted(b)
    for key in a:
        assert torch.equal(a[key], b[key]), key  # bit-exact


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A few iterations of a tiny DCGAN, with a checkpoint."""
    out = tmp_path_factory.mktemp("hub") / "run"
    config = {**DCGAN_TINY, "g_width": 4, "d_width": 4}
    return ganzoo.Trainer("dcgan", config=config, train=dcgan_train(steps=2), data="mnist-4k", out=out).fit()


@pytest.fixture
def run_dir(trained) -> Path:
    return trained.run_dir


def push(source: object, repo_id: str, *extra: str) -> str:
    result = invoke("push", source, "--repo-id", repo_id, *extra)
    assert_ok(result)
    url = result.stdout.strip()
    assert url.startswith("http://127.0.0.1:") and f"/{repo_id}/commit/" in url, result.stdout
    return url


def commit_of(url: str) -> str:
    return url.rsplit("/", 1)[1]


# ----------------------------------------------------------------------------------------------- round trip


@pytest.mark.parametrize("xet", [True, False], ids=["xet-pipeline", "create-commit"])
def test_push_load_and_sample_round_trip(hub, run_dir, tmp_path, monkeypatch, xet):
    """`ganzoo push` -> load `alice/tiny` into an empty cache -> `ganzoo sample`, weights bit-exact, over both of
    huggingface_hub's upload paths (the xet pipeline when hf_xet is importable, else one create_commit)."""
    from huggingface_hub import HfApi, constants

    if xet:
        import hf_xet  # noqa: F401  (a dependency of huggingface_hub on this platform; its absence must fail)
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", not xet)
    calls = []
    original = HfApi.create_commit
    monkeypatch.setattr(HfApi, "create_commit", lambda self, *a, **k: calls.append(1) or original(self, *a, **k))

    url = push(run_dir, "alice/tiny", "--message", "first upload")
    assert bool(calls) == (not xet)  # the path taken is the one asked for
    files = HfApi().list_repo_files("alice/tiny")
    assert {"config.json", "model.safetensors", "README.md", "samples.png"} <= set(files)
    assert not (Path(constants.HF_HUB_CACHE) / "models--alice--tiny").exists()

    model = ganzoo.load_pretrained("alice/tiny")
    assert_same_weights(model.weights(), load_run(run_dir).weights())
    assert model.info["repo_id"] == "alice/tiny" and model.info["revision"] == "main"
    assert model.info["commit"] == commit_of(url)
    assert model.info["step"] == 2 and model.info["data"] == "mnist-4k"
    snapshot = Path(constants.HF_HUB_CACHE) / "models--alice--tiny" / "snapshots" / commit_of(url)
    assert sorted(os.listdir(snapshot)) == ["config.json", "model.safetensors"]  # only what loading needs

    result = invoke("sample", "hf-hub:alice/tiny", "--n", "4", "--out", tmp_path / "grid.png")
    assert_ok(result)
    assert Image.open(tmp_path / "grid.png").size[0] > 28
    torch.testing.assert_close(ganzoo.load_pretrained("alice/tiny").sample(3, seed=1), model.sample(3, seed=1))


def test_second_push_makes_a_new_commit_and_the_first_sha_still_loads(hub, run_dir):
    model = load_run(run_dir)
    first_url = ganzoo.push_to_hub(model, "alice/history")
    first = {k: v.clone() for k, v in model.weights().items()}
    with torch.no_grad():
        for p in model.nets["generator"].parameters():
            p.add_(1.0)
    second_url = ganzoo.push_to_hub(model, "alice/history", commit_message="more training")
    assert commit_of(second_url) != commit_of(first_url)

    latest = ganzoo.load_pretrained("alice/history")
    assert latest.info["commit"] == commit_of(second_url)
    assert_same_weights(latest.weights(), model.weights())
    old = ganzoo.load_pretrained(f"alice/history@{commit_of(first_url)}")
    assert old.info["commit"] == commit_of(first_url)
    assert_same_weights(old.weights(), first)
    same = ganzoo.load_pretrained("hf-hub:alice/history", revision=commit_of(first_url))
    assert_same_weights(same.weights(), first)


def test_push_to_a_branch(hub, run_dir, tmp_path, monkeypatch):
    url = push(run_dir, "alice/branches", "--revision", "exp/lr-1e-4", "--private")
    model = ganzoo.load_pretrained("alice/branches@exp/lr-1e-4")
    assert model.info["commit"] == commit_of(url) and model.info["revision"] == "exp/lr-1e-4"
    with pytest.raises(HubError, match="holds no ganzoo model"):
        ganzoo.load_pretrained("alice/branches")  # main still has only the repo's first commit
    assert hub.state.repos[("model", "alice/branches")].private
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "bobs-cache"))
    monkeypatch.setenv("HF_TOKEN", "tok-bob")  # a private repo is not found with another user's token
    with pytest.raises(HubError, match="not found"):
        ganzoo.load_pretrained("alice/branches@exp/lr-1e-4")


def test_safetensors_metadata_names_the_plugin_and_reads_through_range_requests(hub, run_dir):
    from huggingface_hub import HfApi

    push(run_dir, "alice/meta")
    repo = HfApi().get_safetensors_metadata("alice/meta")  # HTTP Range reads of the header only
    metadata = repo.files_metadata["model.safetensors"]
    assert metadata.metadata["plugin"] == "dcgan" and metadata.metadata["ganzoo_version"] == ganzoo.__version__
    assert any(key.startswith("generator_ema.") for key in metadata.tensors)
    assert any(method == "GET" and "/resolve/" in path for method, path in hub.state.requests)


# ---------------------------------------------------------------------------------------------------- offline


def _ganzoo_subprocess(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.run(
        [sys.executable, "-m", "ganzoo.cli", *args], env=env, capture_output=True, text=True, timeout=120
    )


def test_offline_loads_from_the_cache_and_says_when_nothing_is_cached(hub, run_dir, tmp_path):
    """huggingface_hub reads HF_HUB_OFFLINE at import: run the offline commands in fresh processes."""
    push(run_dir, "alice/offline")
    ganzoo.load_pretrained("alice/offline")  # online once: now cached
    requests = len(hub.state.requests)

    done = _ganzoo_subprocess("sample", "alice/offline", "--n", "2", "--out", str(tmp_path / "offline.png"))
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "offline.png").is_file()

    failed = _ganzoo_subprocess("sample", "alice/never-downloaded", "--out", str(tmp_path / "x.png"))
    assert failed.returncode == 1
    lines = [line for line in failed.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: offline (HF_HUB_OFFLINE=1)"), failed.stderr
    assert "alice/never-downloaded" in lines[0] and "Traceback" not in failed.stderr
    assert len(hub.state.requests) == requests  # offline means no request at all


# ----------------------------------------------------------------------------------------------------- errors


def test_repo_and_revision_not_found(hub, run_dir, tmp_path):
    one_line_error(invoke("sample", "alice/missing", "--out", tmp_path / "x.png"), 1, "alice/missing", "not found")
    push(run_dir, "alice/revs")
    one_line_error(
        invoke("sample", "alice/revs@no-such-branch", "--out", tmp_path / "x.png"), 1, "revision 'no-such-branch'"
    )
    with pytest.raises(UsageError, match="give one"):
        ganzoo.load_pretrained("alice/revs@main", revision="other")
    with pytest.raises(UsageError, match="hf-hub:user/repo"):
        parse_hub_source("hf-hub:not a repo")
    assert parse_hub_source("runs/x@v1") == ("runs/x", "v1") and parse_hub_source("/abs/path") is None
    # names the Hub refuses are local paths, and a missing one is a one-line error, not a validation traceback
    assert parse_hub_source("runs/dcgan--x") is None and parse_hub_source("runs/x.git") is None
    one_line_error(invoke("sample", "runs/dcgan--x", "--out", tmp_path / "x.png"), 1, "runs/dcgan--x does not exist")


def _edit_saved(run_dir: Path, target: Path, edit_config=None, edit_weights=None) -> Path:
    ganzoo.save_pretrained(run_dir, target)
    if edit_config:
        record = json.loads((target / "config.json").read_text())
        edit_config(record)
        (target / "config.json").write_text(json.dumps(record))
    if edit_weights:
        weights = load_file(target / "model.safetensors")
        edit_weights(weights)
        save_file(weights, target / "model.safetensors")
    return target


def test_plugin_not_installed_names_the_plugin_and_its_distribution(hub, run_dir, tmp_path):
    from huggingface_hub import HfApi

    def other_plugin(record):
        record.update(plugin="stylegan9", plugin_distribution="ganzoo-stylegan9")

    saved = _edit_saved(run_dir, tmp_path / "saved", other_plugin)
    HfApi().create_repo("alice/stylegan9")
    HfApi().upload_folder(repo_id="alice/stylegan9", folder_path=saved)
    line = one_line_error(invoke("sample", "alice/stylegan9", "--out", tmp_path / "x.png"), 1, "'stylegan9'")
    assert "pip install ganzoo-stylegan9" in line and "alice/stylegan9" in line


def test_config_from_a_newer_ganzoo_is_refused(run_dir, tmp_path):
    saved = _edit_saved(run_dir, tmp_path / "saved", lambda r: r.update(format_version=FORMAT_VERSION + 1))
    one_line_error(invoke("sample", saved, "--out", tmp_path / "x.png"), 1, "upgrade ganzoo", f"{FORMAT_VERSION + 1}")


def test_weights_that_do_not_match_are_listed(run_dir, tmp_path):
    def break_weights(weights):
        weights.pop(sorted(k for k in weights if k.startswith("discriminator."))[0])
        weights["generator.extra"] = torch.zeros(2)
        key = next(k for k, v in weights.items() if k.startswith("generator_ema.") and v.dim() == 4)
        weights[key] = torch.zeros(1, 1, 1, 1)

    saved = _edit_saved(run_dir, tmp_path / "saved", edit_weights=break_weights)
    line = one_line_error(invoke("sample", saved, "--out", tmp_path / "x.png"), 1, "do not match the dcgan model")
    assert "missing discriminator." in line and "unexpected generator.extra" in line
    assert "wrong shape generator_ema." in line and "(1, 1, 1, 1)" in line


def test_push_without_a_token_says_how_to_log_in(hub, run_dir, monkeypatch):
    monkeypatch.delenv("HF_TOKEN")
    one_line_error(invoke("push", run_dir, "--repo-id", "alice/x"), 1, "hf auth login", "HF_TOKEN")
    assert not hub.state.repos


def test_push_without_write_access(hub, run_dir, monkeypatch):
    push(run_dir, "alice/owned")
    monkeypatch.setenv("HF_TOKEN", "tok-bob")
    one_line_error(invoke("push", run_dir, "--repo-id", "alice/owned"), 1, "no write access to alice/owned", "403")
    monkeypatch.setenv("HF_TOKEN", "tok-unknown")
    one_line_error(invoke("push", run_dir, "--repo-id", "alice/owned"), 1, "rejected the token", "hf auth login")
    one_line_error(invoke("push", run_dir, "--repo-id", "not a repo"), 2, "user/name")


# ------------------------------------------------------------------------------------------ saving and the card


def test_save_writes_the_hub_layout_and_a_valid_card(trained, run_dir, tmp_path):
    from huggingface_hub import ModelCard

    result = invoke("save", run_dir, tmp_path / "export")
    assert_ok(result)
    target = tmp_path / "export"
    assert sorted(p.name for p in target.iterdir()) == ["README.md", "config.json", "model.safetensors", "samples.png"]
    record = json.loads((target / "config.json").read_text())
    assert record["format_version"] == FORMAT_VERSION and record["plugin"] == "dcgan"
    assert record["plugin_distribution"] == "ganzoo" and record["steps"] == 2 and record["data"] == "mnist-4k"
    assert record["config"]["g_width"] == 4 and record["data_info"]["resolution"] == 28 and "train" in record
    with safe_open(target / "model.safetensors", framework="pt") as handle:
        assert handle.metadata()["plugin"] == "dcgan"
    assert_same_weights(ganzoo.load_pretrained(target).weights(), load_run(run_dir).weights())
    Image.open(target / "samples.png").verify()
    (tmp_path / "probe").mkdir()
    assert target.stat().st_mode == (tmp_path / "probe").stat().st_mode  # a plain directory, not mkdtemp's 0700

    card = ModelCard((target / "README.md").read_text())
    assert card.data.library_name == "ganzoo"
    assert card.data.tags == ["gan", "ganzoo", "dcgan", "unconditional-image-generation", "image"]
    assert card.data.pipeline_tag == "unconditional-image-generation"
    assert card.data.datasets == ["ylecun/mnist"]
    assert card.data.base_model is None and card.data.eval_results is None
    assert "![samples from the EMA generator](samples.png)" in card.text and "ganzoo sample USER/REPO" in card.text
    assert '"g_width": 4' in card.text  # the training config

    from_training = json.loads((ganzoo.save_pretrained(trained.model, tmp_path / "fit") / "config.json").read_text())
    assert from_training["train"] == record["train"] and from_training["steps"] == 2  # a Trainer's model too

    again = ganzoo.save_pretrained(ganzoo.load_pretrained(target), target)  # an earlier save is replaced
    assert again == target and not [p for p in tmp_path.iterdir() if p.name.startswith(".export")]
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    one_line_error(invoke("save", run_dir, tmp_path / "other"), 2, "not an empty directory")


def test_card_carries_the_runs_metrics_and_base_model(run_dir, tmp_path):
    from huggingface_hub import ModelCard

    scores = {"fid": 12.5, "kid_mean": 0.01, "kid_std": 0.001, "n": 100, "features": "digits", "data": "mnist-4k"}
    record_evaluation(run_dir, {**scores, "fid": 99.0}, step=1, checkpoint=None)  # other weights: not carried
    try:
        unscored = ganzoo.save_pretrained(run_dir, tmp_path / "unscored")
        assert "evaluation" not in json.loads((unscored / "config.json").read_text())
        record_evaluation(run_dir, scores, step=2, checkpoint=None)
        target = ganzoo.save_pretrained(run_dir, tmp_path / "scored", repo_id="alice/scored")
    finally:
        (run_dir / "eval.json").unlink()
    card = ModelCard((target / "README.md").read_text())
    results = {r.metric_type: r for r in card.data.eval_results}
    assert results["fid"].metric_value == 12.5 and results["kid_mean"].metric_value == 0.01
    assert results["fid"].task_type == "unconditional-image-generation"
    assert results["fid"].dataset_name == "mnist-4k" and results["fid"].metric_config == "digits"
    assert "| fid | 12.5 |" in card.text and "ganzoo sample alice/scored" in card.text
    # the evaluation travels in config.json, so a re-save of the loaded model keeps it
    resaved = ganzoo.save_pretrained(ganzoo.load_pretrained(target), tmp_path / "resaved")
    assert ModelCard((resaved / "README.md").read_text()).data.eval_results[0].metric_value == 12.5

    record = json.loads((target / "config.json").read_text())
    record["base_model"] = {"repo_id": "alice/digits-0-4", "commit": "a" * 40}
    record["modality"] = "text"
    card = ModelCard(model_card(record))
    assert card.data.base_model == "alice/digits-0-4" and card.data.pipeline_tag == "text-generation"
    assert card.data.base_model_relation == "finetune" and "text-generation" in card.data.tags
    assert "base_model_relation: finetune" in card.content.split("---")[1]  # the Hub reads it from the front matter

    record.update(modality="image-to-image", data_info={"extras": {"paired": True, "task": "sr4x"}})
    record.pop("base_model")
    card = ModelCard(model_card(record))
    assert card.data.tags == ["gan", "ganzoo", "dcgan", "super-resolution", "image-to-image"]
    assert card.data.pipeline_tag == "image-to-image" and card.data.get("base_model_relation") is None


def test_failed_save_leaves_nothing(run_dir, tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr("ganzoo.hub.model_card", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        ganzoo.save_pretrained(run_dir, tmp_path / "half")
    assert list(tmp_path.iterdir()) == []


def test_eval_accepts_a_hub_repo(hub, run_dir, tmp_path):
    push(run_dir, "alice/scored")
    result = invoke(
        "eval", "alice/scored", "--metrics", "fid", "--n", "20", "--data", "mnist-4k?n=40", "--json", "scores.json"
    )
    assert_ok(result)
    assert json.loads((tmp_path / "scores.json").read_text())["fid"] > 0
    assert not (run_dir / "eval.json").exists()  # a Hub model's scores are not written into any run


def test_push_while_offline(hub, run_dir, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)  # read at each request
    one_line_error(invoke("push", run_dir, "--repo-id", "alice/x"), 1, "cannot push while HF_HUB_OFFLINE=1")
    assert not hub.state.requests


def test_unreachable_hub(hub, run_dir, tmp_path, monkeypatch):
    from huggingface_hub import constants

    with HubServer(dict(hub.state.tokens)) as closed:
        url = closed.url  # a port that nothing listens on once the block ends
    monkeypatch.setattr(constants, "ENDPOINT", url)
    monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", url + "/{repo_id}/resolve/{revision}/{filename}")
    one_line_error(invoke("sample", "runs/tiny", "--out", tmp_path / "x.png"), 1, "cannot reach the Hub", "runs/tiny")
    one_line_error(invoke("push", run_dir, "--repo-id", "alice/x"), 1, "cannot reach the Hub")


def test_an_unwritable_save_target_is_one_line(run_dir, tmp_path):
    (tmp_path / "a-file").write_text("not a directory")
    one_line_error(invoke("save", run_dir, tmp_path / "a-file" / "model"), 1, "cannot read or write a file")


# ------------------------------------------------------------------------------- ganzoo.testing.hub on its own


def test_a_new_server_never_repeats_an_earlier_servers_commit_shas():
    """Same repo, same upload, same message on two successive servers: every sha differs (a per-server salt)."""
    from huggingface_hub import HfApi

    shas = []
    for _ in range(2):
        with HubServer({"tok-carol": "carol"}) as server:
            api = HfApi(endpoint=server.url, token="tok-carol")
            api.create_repo("carol/same")
            info = api.upload_file(
                path_or_fileobj=b"same bytes", path_in_repo="a.txt", repo_id="carol/same", commit_message="same"
            )
            assert api.model_info("carol/same").sha == info.oid
            repo = server.state.repos[("model", "carol/same")]
            assert repo.resolve(info.oid).files["a.txt"] == b"same bytes"
            shas.append(list(repo.commits))  # the repo's first commit, then the upload
    first, second = shas
    assert len(first) == len(second) == 2 and len(set(first)) == 2
    assert all(re.fullmatch(r"[0-9a-f]{40}", sha) for sha in first + second)
    assert not set(first) & set(second)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _hub_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "ganzoo.testing.hub", *args]


def _first_line(proc: subprocess.Popen, timeout: float = 60.0) -> str:
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: lines.put(proc.stdout.readline()), daemon=True).start()
    try:
        return lines.get(timeout=timeout)
    except queue.Empty:
        pytest.fail(f"the server printed nothing in {timeout} s")


@pytest.mark.skipif(sys.platform == "win32", reason="SIGTERM is TerminateProcess on Windows")
def test_the_server_runs_from_a_shell_and_stops_cleanly_on_sigterm(tmp_path):
    from huggingface_hub import HfApi, hf_hub_download
    from huggingface_hub.errors import HfHubHTTPError

    port = _free_port()
    proc = subprocess.Popen(
        _hub_command("--port", str(port)), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        line = _first_line(proc)
        url = f"http://127.0.0.1:{port}"
        assert line == f"Hub server at {url} (users: user); export HF_ENDPOINT={url} HF_TOKEN=hf_test\n"

        api = HfApi(endpoint=url, token="hf_test")  # the default token, as printed
        assert api.whoami()["name"] == "user"
        api.create_repo("user/shell")
        info = api.upload_file(path_or_fileobj=b"from a shell", path_in_repo="dir/a.txt", repo_id="user/shell")
        path = hf_hub_download("user/shell", "dir/a.txt", endpoint=url, token="hf_test", cache_dir=tmp_path / "cache")
        assert Path(path).read_bytes() == b"from a shell" and info.oid in path
        with pytest.raises(HfHubHTTPError, match="401"):
            HfApi(endpoint=url, token="hf_other").create_repo("user/other")

        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert out == "" and "Traceback" not in err  # nothing after the one line


def _run_hub(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(_hub_command(*args), capture_output=True, text=True, timeout=60)


def test_a_token_without_user_is_a_one_line_usage_error():
    done = _run_hub("--token", "bad")
    assert done.returncode == 2 and done.stdout == ""
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    assert "--token" in lines[0] and "expected TOKEN=USER, got 'bad'" in lines[0]


def test_a_port_in_use_is_a_one_line_error():
    with HubServer({}) as busy:
        port = busy.server_address[1]
        done = _run_hub("--port", str(port), "--token", "t=u")
    assert done.returncode == 1 and done.stdout == ""
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    assert lines[0].startswith(f"python -m ganzoo.testing.hub: error: cannot listen on 127.0.0.1:{port}: ")

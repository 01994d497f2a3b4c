"""Shared test settings and fixtures: reference statistics are cached in a per-session temporary folder, never in
~/.cache; `hub` serves a Hub-compatible server on 127.0.0.1 (ganzoo.testing.HubServer) to huggingface_hub.
"""

from __future__ import annotations

import pytest

from ganzoo.testing import HubServer

HUB_TOKENS = {"tok-alice": "alice", "tok-bob": "bob"}
"""The `hub` fixture's users by token; HF_TOKEN is alice's."""


@pytest.fixture(autouse=True, scope="session")
def _metrics_cache(tmp_path_factory):
    patch = pytest.MonkeyPatch()
    patch.setenv("GANZOO_METRICS_CACHE", str(tmp_path_factory.mktemp("metrics-cache")))
    yield
    patch.undo()


@pytest.fixture
def hub(tmp_path, monkeypatch):
    """A fresh Hub server that huggingface_hub talks to (here and in subprocesses), an empty cache, alice's token."""
    from huggingface_hub import constants

    home = tmp_path / "hf-home"
    with HubServer(HUB_TOKENS) as server:
        template = server.url + "/{repo_id}/resolve/{revision}/{filename}"
        for name, value in {
            "ENDPOINT": server.url,
            "HUGGINGFACE_CO_URL_TEMPLATE": template,
            "HF_HUB_CACHE": str(home / "hub"),
            "HF_XET_CACHE": str(home / "xet"),
            "HF_TOKEN_PATH": str(home / "token"),
            "HF_STORED_TOKENS_PATH": str(home / "stored_tokens"),
            "HF_HUB_DISABLE_TELEMETRY": True,
        }.items():
            monkeypatch.setattr(constants, name, value)
        for name, value in {
            "HF_ENDPOINT": server.url,
            "HF_HOME": str(home),
            "HF_TOKEN": "tok-alice",
            "HF_HUB_DISABLE_TELEMETRY": "1",
        }.items():
            monkeypatch.setenv(name, value)
        monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
        monkeypatch.chdir(tmp_path)
        yield server

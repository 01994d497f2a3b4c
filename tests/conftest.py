"""Shared test settings: reference statistics are cached in a per-session temporary folder, never in ~/.cache."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True, scope="session")
def _metrics_cache(tmp_path_factory):
    patch = pytest.MonkeyPatch()
    patch.setenv("GANZOO_METRICS_CACHE", str(tmp_path_factory.mktemp("metrics-cache")))
    yield
    patch.undo()

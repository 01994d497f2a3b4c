"""Fake installed distributions for registry tests: a `*.dist-info` directory (METADATA + entry_points.txt) and
module files written into a directory that the test puts on sys.path, where importlib.metadata finds them."""

from __future__ import annotations

import itertools
import sys
import textwrap
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

_counter = itertools.count()

PLUGIN_SOURCE = """\
import dataclasses

from ganzoo import GANPlugin, option


@dataclasses.dataclass
class Config:
    size: int = option(1, "a size", min=1)


class FakePlugin(GANPlugin):
    name = {name!r}
    modality = "image"
    description = "fake plugin {name}"
    version = "0.1"
    Config = Config


plugin = FakePlugin()
"""


def unique_module(prefix: str = "ganzoo_fake_mod") -> str:
    """A module name no other test uses, so sys.modules never hands back another test's module."""
    return f"{prefix}_{next(_counter)}"


def plugin_module_source(name: str) -> str:
    """Source of a module that defines a valid plugin called `name` as `plugin`."""
    return PLUGIN_SOURCE.format(name=name)


def write_distribution(
    root: Path,
    dist_name: str,
    entry_points: Mapping[str, str],
    modules: Mapping[str, str] | None = None,
    version: str = "0.1",
) -> None:
    """Write `dist_name` (METADATA, entry_points.txt in the ganzoo.plugins group) and its modules under `root`."""
    info = root / f"{dist_name.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist_name}\nVersion: {version}\n")
    lines = "".join(f"{name} = {target}\n" for name, target in entry_points.items())
    (info / "entry_points.txt").write_text(f"[ganzoo.plugins]\n{lines}")
    for module, source in (modules or {}).items():
        (root / f"{module}.py").write_text(textwrap.dedent(source))


class FakeDists:
    """Writes fake distributions into one directory on sys.path and forgets their modules afterwards."""

    def __init__(self, root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.root = root
        self.modules: list[str] = []
        root.mkdir(parents=True, exist_ok=True)
        monkeypatch.syspath_prepend(str(root))

    def add(self, dist_name: str, entry_points: Mapping[str, str], modules: Mapping[str, str] | None = None) -> None:
        self.modules.extend(modules or {})
        write_distribution(self.root, dist_name, entry_points, modules)

    def add_plugin(self, dist_name: str, plugin_name: str) -> str:
        """A distribution providing one valid plugin; returns its module name."""
        module = unique_module()
        self.add(dist_name, {plugin_name: f"{module}:plugin"}, {module: plugin_module_source(plugin_name)})
        return module

    def cleanup(self) -> None:
        for module in self.modules:
            sys.modules.pop(module, None)


def fake_dists_fixture(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeDists]:
    """Body of a `fake_dists` fixture: `yield from fake_dists_fixture(tmp_path, monkeypatch)`."""
    dists = FakeDists(tmp_path / "site", monkeypatch)
    try:
        yield dists
    finally:
        dists.cleanup()


def clean_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    """Give the registry empty caches (loaded plugins, runtime registrations) for one test."""
    from ganzoo import registry

    monkeypatch.setattr(registry, "_loaded", {})
    monkeypatch.setattr(registry, "_runtime", {})

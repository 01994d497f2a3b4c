"""The plugin registry: discovery through the `ganzoo.plugins` entry-point group, plus runtime registration.

Entry points are read lazily and a plugin's module is imported only when the plugin is asked for (or when
`ganzoo list` describes it). A plugin that fails to import is reported with its distribution and the error,
and every other plugin stays usable.
"""

from __future__ import annotations

import dataclasses
import difflib
import fnmatch
from collections.abc import Iterable
from importlib import metadata

from ganzoo.errors import PluginError
from ganzoo.plugin import GANPlugin, check_plugin

ENTRY_POINT_GROUP = "ganzoo.plugins"

_runtime: dict[str, GANPlugin] = {}
_loaded: dict[str, GANPlugin] = {}


@dataclasses.dataclass(frozen=True)
class PluginSource:
    """Where a plugin name comes from: an entry point of a distribution, or `register()` at run time."""

    name: str
    distribution: str
    target: str
    entry_point: metadata.EntryPoint | None = None


@dataclasses.dataclass(frozen=True)
class PluginStatus:
    """One row of `ganzoo list`: the plugin when it loads, else why it does not."""

    name: str
    sources: tuple[PluginSource, ...]
    plugin: GANPlugin | None
    error: str | None

    @property
    def ok(self) -> bool:
        return self.plugin is not None


def _entry_point_sources() -> dict[str, list[PluginSource]]:
    found: dict[str, list[PluginSource]] = {}
    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        dist = ep.dist.name if ep.dist is not None else "<unknown distribution>"
        sources = found.setdefault(ep.name, [])
        # The same distribution can be visible twice on sys.path (e.g. an editable install next to a copy).
        if all(s.distribution != dist for s in sources):
            sources.append(PluginSource(ep.name, dist, ep.value, ep))
    return found


def _sources() -> dict[str, list[PluginSource]]:
    found = _entry_point_sources()
    for name, plugin in _runtime.items():
        found[name] = [PluginSource(name, "<registered at run time>", repr(plugin))]
    return found


def register(plugin: GANPlugin, *, replace: bool = False) -> GANPlugin:
    """Make a plugin defined at run time (a notebook, a test) available by its name.

    A name already provided by an installed distribution or an earlier `register()` is an error unless
    `replace=True`. Returns the plugin, so this also works as a one-liner after the definition.
    """
    check_plugin(plugin, f"register({plugin!r})")
    if not replace:
        existing = _runtime.get(plugin.name)
        if existing is not None and existing is not plugin:
            raise PluginError(f"plugin {plugin.name!r} is already registered at run time; pass replace=True")
        installed = _entry_point_sources().get(plugin.name)
        if installed:
            raise PluginError(
                f"plugin {plugin.name!r} is already provided by the distribution {installed[0].distribution}; "
                "pass replace=True to shadow it"
            )
    _runtime[plugin.name] = plugin
    _loaded.pop(plugin.name, None)
    return plugin


def unregister(name: str) -> None:
    """Remove a plugin registered at run time (entry-point plugins cannot be removed)."""
    if _runtime.pop(name, None) is None:
        raise PluginError(f"no plugin named {name!r} was registered at run time")
    _loaded.pop(name, None)


def list_models(pattern: str | Iterable[str] = "*", *, modality: str | None = None) -> list[str]:
    """Names of the available plugins matching a glob pattern (or any of several), sorted.

    Only `modality` filtering imports the plugins; plain listing reads the entry points alone.
    """
    patterns = [pattern] if isinstance(pattern, str) else list(pattern)
    names = sorted(n for n in _sources() if any(fnmatch.fnmatchcase(n, p) for p in patterns))
    if modality is not None:
        names = [n for n in names if (s := _status(n)).ok and s.plugin.modality == modality]
    return names


def _unknown(name: str, known: Iterable[str]) -> PluginError:
    known = sorted(known)
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    return PluginError(f"unknown plugin {name!r}{hint} (available: {', '.join(known) or 'none'})")


def _load(name: str, sources: list[PluginSource]) -> GANPlugin:
    if name in _runtime:
        return _runtime[name]
    if len(sources) > 1:
        claimants = " and ".join(f"{s.distribution} ({s.target})" for s in sources)
        raise PluginError(f"plugin name {name!r} is claimed by two distributions: {claimants}; uninstall one")
    source = sources[0]
    origin = f"plugin {name!r} from the distribution {source.distribution} ({source.target})"
    try:
        obj = source.entry_point.load()
    except Exception as exc:  # a broken third-party plugin must not take the others down
        raise PluginError(f"{origin} failed to import: {type(exc).__name__}: {exc}") from exc
    plugin = check_plugin(obj, origin)
    if plugin.name != name:
        raise PluginError(f"{origin} calls itself {plugin.name!r}; the entry point and the plugin must agree")
    return plugin


def get_plugin(name: str) -> GANPlugin:
    """The plugin registered under `name`; a clear `PluginError` when it is unknown, ambiguous or broken."""
    if name in _loaded:
        return _loaded[name]
    sources = _sources()
    if name not in sources:
        raise _unknown(name, sources)
    plugin = _load(name, sources[name])
    _loaded[name] = plugin
    return plugin


def _status(name: str, sources: list[PluginSource] | None = None) -> PluginStatus:
    sources = sources if sources is not None else _sources()[name]
    try:
        return PluginStatus(name, tuple(sources), get_plugin(name), None)
    except PluginError as exc:
        return PluginStatus(name, tuple(sources), None, str(exc))


def plugin_statuses(pattern: str = "*") -> list[PluginStatus]:
    """Every matching plugin, loaded, with the error of those that are broken or ambiguous."""
    sources = _sources()
    return [_status(n, sources[n]) for n in sorted(sources) if fnmatch.fnmatchcase(n, pattern)]

"""Tools for plugin authors' tests: the conformance kit (`check_plugin`) and an offline Hub server (`HubServer`).

`ganzoo.testing.check_plugin(plugin, data=...)` runs every guarantee the engine makes on tiny widths and a few
steps and reports each failure by name; `HubServer` serves a Hub-compatible API on 127.0.0.1 so Hub round trips
are testable offline (`python -m ganzoo.testing.hub --port N` runs it from a shell).
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "CHECKS": "ganzoo.testing.conformance",
    "CheckResult": "ganzoo.testing.conformance",
    "ConformanceError": "ganzoo.testing.conformance",
    "ConformanceReport": "ganzoo.testing.conformance",
    "check_plugin": "ganzoo.testing.conformance",
    "conformance_tests": "ganzoo.testing.conformance",
    "HubServer": "ganzoo.testing.hub",
}

__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    module_name = _EXPORTS.get(name)
    if module_name is None:
        raise AttributeError(f"module 'ganzoo.testing' has no attribute {name!r}")
    value = getattr(importlib.import_module(module_name), name)
    globals()[name] = value
    return value

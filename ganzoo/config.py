"""Typed, documented config dataclasses: field docs, `--set key=value` parsing, config files, validation.

Plugins and the engine describe their hyper-parameters as dataclasses whose fields are made with `option()`;
this module turns strings from the command line and values from JSON/TOML files into those types, with one-line
errors that name the key and what is accepted.
"""

from __future__ import annotations

import dataclasses
import json
import math
import sys
import types
import typing
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

from ganzoo.errors import UsageError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib


def option(
    default: Any,
    help: str,
    *,
    choices: Iterable[Any] | None = None,
    min: float | None = None,
    max: float | None = None,
) -> Any:
    """A dataclass field with a default, a one-line doc and optional bounds (shown by `ganzoo info`)."""
    metadata = {
        "help": help,
        "choices": tuple(choices) if choices is not None else None,
        "min": min,
        "max": max,
    }
    if isinstance(default, (list, dict, set)):
        return dataclasses.field(default_factory=lambda: type(default)(default), metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


@dataclasses.dataclass(frozen=True)
class FieldDoc:
    """What `ganzoo info` shows for one config field."""

    name: str
    type_name: str
    default: Any
    help: str
    choices: tuple[Any, ...] | None = None
    min: float | None = None
    max: float | None = None

    def constraints(self) -> str:
        """The accepted values in words, e.g. `choices: batch, spectral, none` or `min 0, max 1` ('' if none)."""
        if self.choices is not None:
            return "choices: " + ", ".join(map(str, self.choices))
        bounds = [f"{word} {value:g}" for word, value in (("min", self.min), ("max", self.max)) if value is not None]
        return ", ".join(bounds)


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _type_name(tp: Any) -> str:
    origin = get_origin(tp)
    if origin is Literal:
        return " | ".join(repr(a) for a in get_args(tp))
    if origin in (Union, types.UnionType):
        return " | ".join(_type_name(a) for a in get_args(tp))
    if origin in (tuple, list):
        args = get_args(tp)
        if origin is tuple and args and Ellipsis not in args:
            return f"tuple[{', '.join(_type_name(a) for a in args)}]"
        inner = _type_name(args[0]) if args else "Any"
        return f"tuple[{inner}, ...]" if origin is tuple else f"list[{inner}]"
    if tp is type(None):
        return "None"
    return getattr(tp, "__name__", str(tp))


def _default_of(f: dataclasses.Field) -> Any:
    """A field's default value (calling its factory), or `dataclasses.MISSING` when it has none."""
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return dataclasses.MISSING


def describe(config_cls: type) -> list[FieldDoc]:
    """The fields of a config dataclass with their types, defaults, doc lines, choices and bounds."""
    hints = _hints(config_cls)
    docs = []
    for f in dataclasses.fields(config_cls):
        default = _default_of(f)
        default = None if default is dataclasses.MISSING else default
        meta = f.metadata
        docs.append(
            FieldDoc(
                f.name,
                _type_name(hints[f.name]),
                default,
                meta.get("help", ""),
                meta.get("choices"),
                meta.get("min"),
                meta.get("max"),
            )
        )
    return docs


_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}
_NONE = {"none", "null"}


class _BadValue(Exception):
    pass


def _coerce(tp: Any, value: Any) -> Any:
    """Convert `value` (a string from the command line, or a JSON/TOML value) to type `tp`."""
    origin = get_origin(tp)
    if tp is Any:
        return value
    if tp is type(None):
        if value is None or (isinstance(value, str) and value.lower() in _NONE):
            return None
        raise _BadValue
    if origin in (Union, types.UnionType):
        args = get_args(tp)
        # None first so that "none" is never read as the string "none" for str | None.
        for arg in sorted(args, key=lambda a: a is not type(None)):
            try:
                return _coerce(arg, value)
            except _BadValue:
                continue
        raise _BadValue
    if origin is Literal:
        for choice in get_args(tp):
            if value == choice or (isinstance(value, str) and str(choice) == value):
                return choice
        raise _BadValue
    if origin in (tuple, list):
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                try:
                    value = json.loads(text)
                except json.JSONDecodeError as exc:
                    raise _BadValue from exc
            else:
                value = [part.strip() for part in text.split(",") if part.strip()]
        if not isinstance(value, (list, tuple)):
            raise _BadValue
        args = [a for a in get_args(tp) if a is not Ellipsis]
        if origin is tuple and len(get_args(tp)) > 1 and Ellipsis not in get_args(tp):
            if len(value) != len(args):
                raise _BadValue
            return tuple(_coerce(a, v) for a, v in zip(args, value, strict=True))
        inner = args[0] if args else Any
        items = [_coerce(inner, v) for v in value]
        return tuple(items) if origin is tuple else items
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in _TRUE | _FALSE:
            return value.lower() in _TRUE
        raise _BadValue
    if tp is int:
        if isinstance(value, bool):
            raise _BadValue
        if isinstance(value, int):
            return value
        if isinstance(value, str):
            try:
                return int(value.replace("_", ""))
            except ValueError:
                try:
                    as_float = float(value)
                except ValueError as exc:
                    raise _BadValue from exc
                if as_float.is_integer():
                    return int(as_float)
        raise _BadValue
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise _BadValue
        try:
            result = float(value)
        except ValueError as exc:
            raise _BadValue from exc
        if not math.isfinite(result):  # NaN passes every bound check; inf breaks training later, far from here
            raise _BadValue
        return result
    if tp is str:
        if isinstance(value, str):
            return value
        raise _BadValue
    raise _BadValue


def _check_bounds(name: str, f: dataclasses.Field, value: Any) -> None:
    choices = f.metadata.get("choices")
    if choices is not None and value not in choices:
        raise UsageError(f"{name}={value!r} is not accepted; choose one of: {', '.join(map(str, choices))}")
    low, high = f.metadata.get("min"), f.metadata.get("max")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if low is not None and value < low:
            raise UsageError(f"{name}={value!r} is too small; it must be >= {low}")
        if high is not None and value > high:
            raise UsageError(f"{name}={value!r} is too large; it must be <= {high}")


def replace_config(config: Any, overrides: Mapping[str, Any], *, what: str = "config") -> Any:
    """A copy of `config` with `overrides` applied, each value converted to its field's type and validated.

    Unknown keys and values of the wrong type raise a `UsageError` naming the key and what is accepted.
    """
    fields = {f.name: f for f in dataclasses.fields(config)}
    hints = _hints(type(config))
    converted = {}
    for key, raw in overrides.items():
        if key not in fields:
            raise UsageError(f"unknown {what} key {key!r}; valid keys: {', '.join(sorted(fields))}")
        try:
            value = _coerce(hints[key], raw)
        except _BadValue:
            raise UsageError(f"bad value for {key}: {raw!r} is not a {_type_name(hints[key])}") from None
        _check_bounds(key, fields[key], value)
        converted[key] = value
    return dataclasses.replace(config, **converted)


def validate_config(config: Any) -> None:
    """Check every field of a config against its declared choices and bounds."""
    for f in dataclasses.fields(config):
        _check_bounds(f.name, f, getattr(config, f.name))


def check_defaults(config_cls: type) -> None:
    """Raise a `UsageError` naming the first field whose default is missing, is not of the field's type, or breaks
    its own choices or bounds (checked when a plugin is loaded, so a broken default never reaches `build`)."""
    hints = _hints(config_cls)
    for f in dataclasses.fields(config_cls):
        default = _default_of(f)
        if default is dataclasses.MISSING:
            raise UsageError(f"field {f.name} has no default")
        try:
            value = _coerce(hints[f.name], default)
        except _BadValue:
            value = _BadValue
        widened = isinstance(value, float) and type(default) is int  # 10 for a float field is fine
        if value is _BadValue or (type(value) is not type(default) and not widened):
            raise UsageError(f"the default of {f.name}, {default!r}, is not a {_type_name(hints[f.name])}")
        try:
            _check_bounds(f.name, f, value)
        except UsageError as exc:
            raise UsageError(f"the default {exc}") from None


def config_to_dict(config: Any) -> dict[str, Any]:
    """A JSON-ready dict of a config dataclass (tuples become lists)."""
    return json.loads(json.dumps(dataclasses.asdict(config)))


def parse_set_options(items: Iterable[str]) -> dict[str, str]:
    """Parse `KEY=VALUE` strings from `--set` options."""
    parsed: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise UsageError(f"--set expects KEY=VALUE, got {item!r}")
        parsed[key] = value.strip()
    return parsed


def load_config_file(path: str | Path) -> dict[str, Any]:
    """Read a flat mapping of config keys from a .json or .toml file.

    TOML tables `[model]` and `[train]` are accepted and merged, so a file can group its keys.
    """
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"config file not found: {path}")
    try:
        if path.suffix == ".json":
            data = json.loads(path.read_text(encoding="utf-8"))
        elif path.suffix == ".toml":
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        else:
            raise UsageError(f"config file {path} must end in .json or .toml")
    except (json.JSONDecodeError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot parse config file {path}: {exc}") from None
    if not isinstance(data, dict):
        raise UsageError(f"config file {path} must hold a mapping of keys to values")
    flat: dict[str, Any] = {}
    for key, value in data.items():
        if key in ("model", "train") and isinstance(value, dict):
            flat.update(value)
        else:
            flat[key] = value
    return flat

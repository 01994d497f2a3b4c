"""Config dataclasses: `--set` parsing, type coercion, bounds, config files and `describe`."""

from __future__ import annotations

import dataclasses
import json
from typing import Literal

import pytest

from ganzoo.config import (
    config_to_dict,
    describe,
    load_config_file,
    option,
    parse_set_options,
    replace_config,
    validate_config,
)
from ganzoo.errors import UsageError


@dataclasses.dataclass
class Sample:
    steps: int = option(10, "how many steps", min=1, max=1000)
    lr: float = option(1e-3, "learning rate", min=0)
    flag: bool = option(False, "a switch")
    limit: int | None = option(None, "optional limit", min=0)
    label: str | None = option("x", "optional text")
    betas: tuple[float, float] = option((0.5, 0.999), "Adam betas")
    sizes: tuple[int, ...] = option((1, 2), "any number of sizes")
    names: list[str] = option(["a"], "a list of names")  # noqa: RUF009 (option copies a list default)
    mode: Literal["fast", "slow"] = option("fast", "a literal choice")
    norm: str = option("batch", "a choice", choices=("batch", "spectral", "none"))
    ratio: float = option(0.5, "a fraction", min=0, max=1)


# ---------------------------------------------------------------------------------- parse_set_options


def test_parse_set_options():
    assert parse_set_options(["a=1", " b = two ", "c=x=y", "d="]) == {"a": "1", "b": "two", "c": "x=y", "d": ""}
    assert parse_set_options([]) == {}
    assert parse_set_options(["a=1", "a=2"]) == {"a": "2"}


@pytest.mark.parametrize("item", ["novalue", "=3", " =3"])
def test_parse_set_options_rejects_malformed(item):
    with pytest.raises(UsageError, match="KEY=VALUE") as info:
        parse_set_options([item])
    assert repr(item) in str(info.value)


# ----------------------------------------------------------------------------------- type coercion


@pytest.mark.parametrize(
    ("key", "raw", "expected"),
    [
        ("steps", "12", 12),
        ("steps", "1_000", 1000),
        ("steps", "3.0", 3),
        ("steps", 7, 7),
        ("lr", "1e-4", 1e-4),
        ("lr", "0.25", 0.25),
        ("lr", 2, 2.0),
        ("flag", "true", True),
        ("flag", "yes", True),
        ("flag", "On", True),
        ("flag", "1", True),
        ("flag", "false", False),
        ("flag", "no", False),
        ("flag", "0", False),
        ("flag", True, True),
        ("limit", "none", None),
        ("limit", "None", None),
        ("limit", "null", None),
        ("limit", None, None),
        ("limit", "5", 5),
        ("label", "none", None),
        ("label", "hello", "hello"),
        ("betas", "0.5,0.9", (0.5, 0.9)),
        ("betas", " 0.0 , 0.99 ", (0.0, 0.99)),
        ("betas", "[0.5, 0.9]", (0.5, 0.9)),
        ("betas", [0.1, 0.2], (0.1, 0.2)),
        ("sizes", "3,4,5", (3, 4, 5)),
        ("sizes", "[7]", (7,)),
        ("names", "p,q", ["p", "q"]),
        ("names", '["r"]', ["r"]),
        ("mode", "slow", "slow"),
        ("norm", "spectral", "spectral"),
        ("ratio", "1", 1.0),
    ],
)
def test_replace_config_coerces_types(key, raw, expected):
    config = replace_config(Sample(), {key: raw})
    value = getattr(config, key)
    assert value == expected
    assert type(value) is type(expected)


def test_replace_config_returns_a_copy():
    original = Sample()
    changed = replace_config(original, {"steps": "20", "betas": "0.1,0.2"})
    assert changed.steps == 20 and changed.betas == (0.1, 0.2)
    assert original.steps == 10 and original.betas == (0.5, 0.999)
    assert replace_config(original, {}) == original


def test_list_defaults_are_not_shared():
    a, b = Sample(), Sample()
    a.names.append("z")
    assert b.names == ["a"]


def test_unknown_key_names_the_valid_keys():
    with pytest.raises(UsageError) as info:
        replace_config(Sample(), {"stepz": "1"}, what="dcgan config")
    message = str(info.value)
    assert "unknown dcgan config key 'stepz'" in message
    for name in ("steps", "lr", "flag", "betas", "mode", "norm"):
        assert name in message


@pytest.mark.parametrize(
    ("key", "raw", "type_name"),
    [
        ("steps", "abc", "int"),
        ("steps", "3.5", "int"),
        ("steps", True, "int"),
        ("steps", "", "int"),
        ("lr", "fast", "float"),
        ("lr", False, "float"),
        ("flag", "maybe", "bool"),
        ("limit", "lots", "int | None"),
        ("betas", "0.5", "tuple[float, float]"),
        ("betas", "0.5,0.9,0.99", "tuple[float, float]"),
        ("betas", "[0.5, 0.9", "tuple[float, float]"),
        ("betas", "a,b", "tuple[float, float]"),
        ("sizes", "1,x", "tuple[int, ...]"),
        ("names", 3, "list[str]"),
        ("mode", "medium", "'fast' | 'slow'"),
        ("label", 3, "str | None"),
    ],
)
def test_bad_value_names_the_type(key, raw, type_name):
    with pytest.raises(UsageError) as info:
        replace_config(Sample(), {key: raw})
    message = str(info.value)
    assert message.startswith(f"bad value for {key}: {raw!r}")
    assert message.endswith(f"is not a {type_name}")


def test_choices_are_enforced_and_listed():
    with pytest.raises(UsageError) as info:
        replace_config(Sample(), {"norm": "layer"})
    message = str(info.value)
    assert "norm='layer'" in message
    assert "batch, spectral, none" in message


@pytest.mark.parametrize(
    ("key", "raw", "expected"),
    [
        ("steps", "0", "too small; it must be >= 1"),
        ("steps", "1001", "too large; it must be <= 1000"),
        ("lr", "-0.1", "too small; it must be >= 0"),
        ("ratio", "1.5", "too large; it must be <= 1"),
        ("limit", "-1", "too small; it must be >= 0"),
    ],
)
def test_bounds_are_enforced(key, raw, expected):
    with pytest.raises(UsageError, match=expected) as info:
        replace_config(Sample(), {key: raw})
    assert key in str(info.value)


@pytest.mark.parametrize(
    ("key", "raw"),
    [("lr", "nan"), ("ratio", "nan"), ("lr", float("nan")), ("ratio", "-inf"), ("lr", "inf"), ("lr", float("inf"))],
)
def test_non_finite_floats_are_rejected(key, raw):
    """NaN slips through `value < low` and `value > high` (both False), and inf (`lr_d=inf` has no upper bound)
    passes them: neither must reach the optimizer."""
    with pytest.raises(UsageError, match=f"bad value for {key}: .* is not a float") as info:
        replace_config(Sample(), {key: raw})
    assert key in str(info.value)


def test_bounds_accept_the_limits_and_skip_none():
    config = replace_config(Sample(), {"steps": "1", "ratio": "0", "limit": "none"})
    assert (config.steps, config.ratio, config.limit) == (1, 0.0, None)
    config = replace_config(Sample(), {"steps": "1000", "ratio": "1"})
    assert (config.steps, config.ratio) == (1000, 1.0)


def test_validate_config_checks_every_field():
    validate_config(Sample())
    with pytest.raises(UsageError, match="steps=0"):
        validate_config(dataclasses.replace(Sample(), steps=0))
    with pytest.raises(UsageError, match="norm='layer'"):
        validate_config(dataclasses.replace(Sample(), norm="layer"))


def test_config_to_dict_is_json_ready():
    data = config_to_dict(Sample())
    assert data["betas"] == [0.5, 0.999]
    assert data["sizes"] == [1, 2]
    assert data["limit"] is None
    assert json.loads(json.dumps(data)) == data
    # and it round-trips through replace_config (what resuming and loading a run do)
    assert replace_config(Sample(), data) == Sample()


# ------------------------------------------------------------------------------------------ describe


def test_describe_lists_fields_with_types_defaults_and_help():
    docs = {d.name: d for d in describe(Sample)}
    assert list(docs) == [f.name for f in dataclasses.fields(Sample)]
    assert (docs["steps"].type_name, docs["steps"].default, docs["steps"].help) == ("int", 10, "how many steps")
    assert docs["lr"].type_name == "float"
    assert docs["flag"].type_name == "bool"
    assert docs["limit"].type_name == "int | None" and docs["limit"].default is None
    assert docs["label"].type_name == "str | None"
    assert docs["betas"].type_name == "tuple[float, float]" and docs["betas"].default == (0.5, 0.999)
    assert docs["sizes"].type_name == "tuple[int, ...]"
    assert docs["names"].type_name == "list[str]" and docs["names"].default == ["a"]
    assert docs["mode"].type_name == "'fast' | 'slow'"
    assert docs["norm"].help == "a choice"


def test_describe_gives_choices_and_bounds():
    docs = {d.name: d for d in describe(Sample)}
    assert docs["norm"].choices == ("batch", "spectral", "none")
    assert docs["norm"].constraints() == "choices: batch, spectral, none"
    assert (docs["steps"].min, docs["steps"].max, docs["steps"].choices) == (1, 1000, None)
    assert docs["steps"].constraints() == "min 1, max 1000"
    assert docs["lr"].constraints() == "min 0" and docs["ratio"].constraints() == "min 0, max 1"
    assert docs["flag"].constraints() == "" and (docs["flag"].min, docs["flag"].max) == (None, None)


def test_describe_the_engine_config():
    from ganzoo.engine.config import TrainConfig

    docs = {d.name: d for d in describe(TrainConfig)}
    assert {"steps", "batch_size", "precision", "ema_decay", "progress"} <= set(docs)
    assert all(d.help for d in docs.values())
    assert docs["epochs"].type_name == "float | None"


# -------------------------------------------------------------------------------------- config files


def test_load_json_config(tmp_path):
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"steps": 5, "lr": 0.01, "betas": [0.1, 0.2], "flag": True}))
    loaded = load_config_file(path)
    assert loaded == {"steps": 5, "lr": 0.01, "betas": [0.1, 0.2], "flag": True}
    config = replace_config(Sample(), loaded)
    assert (config.steps, config.lr, config.betas, config.flag) == (5, 0.01, (0.1, 0.2), True)


def test_load_toml_config(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('steps = 5\nlr = 1e-2\nbetas = [0.1, 0.2]\nmode = "slow"\n')
    assert load_config_file(str(path)) == {"steps": 5, "lr": 0.01, "betas": [0.1, 0.2], "mode": "slow"}


def test_load_toml_config_with_model_and_train_tables(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('seed = 3\n\n[model]\nlr_g = 0.001\nd_norm = "spectral"\n\n[train]\nsteps = 7\nprogress = false\n')
    assert load_config_file(path) == {"seed": 3, "lr_g": 0.001, "d_norm": "spectral", "steps": 7, "progress": False}


def test_load_json_config_with_model_and_train_objects(tmp_path):
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"model": {"lr_g": 0.5}, "train": {"steps": 2}}))
    assert load_config_file(path) == {"lr_g": 0.5, "steps": 2}


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("bad.json", "{not json", "cannot parse config file"),
        ("bad.toml", "steps = = 3", "cannot parse config file"),
        ("list.json", "[1, 2]", "must hold a mapping"),
        ("c.yaml", "steps: 3", "must end in .json or .toml"),
        ("binary.json", b"\xff\xfe\x00bad", "cannot parse config file"),
    ],
)
def test_bad_config_files(tmp_path, name, content, expected):
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    with pytest.raises(UsageError, match=expected) as info:
        load_config_file(path)
    assert name in str(info.value)
    assert "\n" not in str(info.value)  # the CLI prints it as one line


def test_missing_config_file(tmp_path):
    with pytest.raises(UsageError, match="config file not found") as info:
        load_config_file(tmp_path / "nope.toml")
    assert "nope.toml" in str(info.value)
    with pytest.raises(UsageError, match="config file not found"):
        load_config_file(tmp_path)  # a directory is not a config file

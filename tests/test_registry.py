"""The plugin registry: entry-point discovery, runtime registration, and its four kinds of error."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import textwrap

import pytest
from helpers_cli_dists import clean_registry, fake_dists_fixture, plugin_module_source, unique_module

import ganzoo
from ganzoo import GANPlugin, option, registry
from ganzoo.errors import PluginError, UsageError


@pytest.fixture(autouse=True)
def _clean_registry(monkeypatch):
    clean_registry(monkeypatch)


@pytest.fixture
def fake_dists(tmp_path, monkeypatch):
    yield from fake_dists_fixture(tmp_path, monkeypatch)


@dataclasses.dataclass
class TinyConfig:
    width: int = option(4, "width of everything", min=1)


def make_plugin(name: str, modality: str = "image") -> GANPlugin:
    cls = type(
        "TinyPlugin",
        (GANPlugin,),
        {"name": name, "modality": modality, "Config": TinyConfig, "description": f"runtime plugin {name}"},
    )
    return cls()


# --------------------------------------------------------------------------------------------- listing


def test_list_models_includes_builtin_dcgan():
    names = ganzoo.list_models()
    assert "dcgan" in names
    assert names == sorted(names)


def test_list_models_glob_filtering():
    dc = ganzoo.list_models("dc*")
    assert "dcgan" in dc
    assert all(n.startswith("dc") for n in dc)
    assert ganzoo.list_models("zz*") == []
    assert ganzoo.list_models(["zz*", "dc*"]) == dc
    assert ganzoo.list_models("dcga?") == ["dcgan"]


def test_list_models_modality_filter():
    assert "dcgan" in ganzoo.list_models(modality="image")
    assert "dcgan" not in ganzoo.list_models(modality="text")


def test_builtin_dcgan_comes_from_the_ganzoo_distribution():
    (status,) = registry.plugin_statuses("dcgan")
    assert status.ok, status.error
    assert [s.distribution for s in status.sources] == ["ganzoo"]
    assert status.plugin.name == "dcgan"
    assert ganzoo.get_plugin("dcgan") is status.plugin


def test_listing_does_not_import_torch():
    code = "import sys, ganzoo.registry as r; [s for s in r.plugin_statuses()]; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert out.stdout.strip() == "False", out.stdout + out.stderr


# ---------------------------------------------------------------------------------- runtime register


def test_register_makes_plugin_visible_and_unregister_removes_it():
    plugin = make_plugin("tiny-runtime")
    assert "tiny-runtime" not in ganzoo.list_models()
    assert ganzoo.register(plugin) is plugin
    assert "tiny-runtime" in ganzoo.list_models()
    assert "tiny-runtime" in ganzoo.list_models("tiny*")
    assert ganzoo.get_plugin("tiny-runtime") is plugin
    (status,) = registry.plugin_statuses("tiny-runtime")
    assert status.ok and status.plugin is plugin
    assert status.sources[0].distribution == "<registered at run time>"

    ganzoo.unregister("tiny-runtime")
    assert "tiny-runtime" not in ganzoo.list_models()
    with pytest.raises(PluginError, match="unknown plugin 'tiny-runtime'"):
        ganzoo.get_plugin("tiny-runtime")


def test_register_same_object_twice_is_fine_but_another_needs_replace():
    first = make_plugin("tiny-twice")
    ganzoo.register(first)
    ganzoo.register(first)  # idempotent
    second = make_plugin("tiny-twice")
    with pytest.raises(PluginError, match=r"already registered.*replace=True"):
        ganzoo.register(second)
    assert ganzoo.get_plugin("tiny-twice") is first
    ganzoo.register(second, replace=True)
    assert ganzoo.get_plugin("tiny-twice") is second


def test_register_name_of_installed_distribution_errors_unless_replace():
    builtin = ganzoo.get_plugin("dcgan")
    shadow = make_plugin("dcgan")
    with pytest.raises(PluginError) as info:
        ganzoo.register(shadow)
    message = str(info.value)
    assert "dcgan" in message and "ganzoo" in message and "replace=True" in message
    assert ganzoo.get_plugin("dcgan") is builtin

    ganzoo.register(shadow, replace=True)
    assert ganzoo.get_plugin("dcgan") is shadow
    assert ganzoo.list_models("dcgan") == ["dcgan"]

    ganzoo.unregister("dcgan")  # the entry point plugin comes back
    restored = ganzoo.get_plugin("dcgan")
    assert restored is not shadow
    assert type(restored).__module__ == "ganzoo_plugins.dcgan"


def test_register_rejects_what_is_not_a_plugin_instance():
    with pytest.raises(PluginError, match=r"not a ganzoo\.GANPlugin instance"):
        ganzoo.register(object())
    with pytest.raises(PluginError, match="class"):
        ganzoo.register(type(make_plugin("tiny-class")))
    with pytest.raises(PluginError, match="modality 'video'"):
        ganzoo.register(make_plugin("tiny-video", modality="video"))
    with pytest.raises(PluginError, match="no name"):
        ganzoo.register(make_plugin(""))
    assert ganzoo.list_models("tiny*") == []


def test_unregister_unknown_name_errors():
    with pytest.raises(PluginError, match="no plugin named 'never-registered'"):
        ganzoo.unregister("never-registered")
    with pytest.raises(PluginError, match="dcgan"):
        ganzoo.unregister("dcgan")  # entry-point plugins cannot be unregistered
    assert "dcgan" in ganzoo.list_models()


# ------------------------------------------------------------------------------------ the four errors


def test_unknown_name_lists_close_matches():
    with pytest.raises(PluginError) as info:
        ganzoo.get_plugin("dcgen")
    message = str(info.value)
    assert "unknown plugin 'dcgen'" in message
    assert "did you mean dcgan" in message
    assert isinstance(info.value, UsageError) and info.value.exit_code == 2


def test_unknown_name_without_close_match_lists_available():
    with pytest.raises(PluginError) as info:
        ganzoo.get_plugin("zzzzzzzz")
    message = str(info.value)
    assert "did you mean" not in message
    assert "available:" in message and "dcgan" in message


def test_plugin_from_installed_distribution_is_discovered(fake_dists):
    fake_dists.add_plugin("ganzoo-fake-good", "fake-good")
    assert "fake-good" in ganzoo.list_models()
    plugin = ganzoo.get_plugin("fake-good")
    assert plugin.name == "fake-good"
    (status,) = registry.plugin_statuses("fake-good")
    assert status.ok
    assert [s.distribution for s in status.sources] == ["ganzoo-fake-good"]
    assert "dcgan" in ganzoo.list_models()


def test_two_distributions_claiming_one_name(fake_dists):
    fake_dists.add_plugin("ganzoo-fake-alpha", "twin")
    fake_dists.add_plugin("ganzoo-fake-beta", "twin")
    assert ganzoo.list_models("twin") == ["twin"]
    with pytest.raises(PluginError) as info:
        ganzoo.get_plugin("twin")
    message = str(info.value)
    assert "ganzoo-fake-alpha" in message and "ganzoo-fake-beta" in message
    assert "twin" in message

    statuses = {s.name: s for s in registry.plugin_statuses()}
    assert not statuses["twin"].ok
    assert "ganzoo-fake-alpha" in statuses["twin"].error and "ganzoo-fake-beta" in statuses["twin"].error
    assert {s.distribution for s in statuses["twin"].sources} == {"ganzoo-fake-alpha", "ganzoo-fake-beta"}
    assert statuses["dcgan"].ok
    assert ganzoo.get_plugin("dcgan").name == "dcgan"


@pytest.mark.parametrize(
    ("source", "attribute", "expected"),
    [
        ("raise ImportError('needs the package frobnicate')\n", "plugin", ["ImportError", "frobnicate"]),
        ("def broken(:\n", "plugin", ["SyntaxError"]),
        ("x = 1 / 0\n", "plugin", ["ZeroDivisionError"]),
        ("other = 1\n", "plugin", ["AttributeError"]),
    ],
    ids=["import-error", "syntax-error", "runtime-error", "missing-attribute"],
)
def test_broken_plugin_is_reported_and_others_still_work(fake_dists, source, attribute, expected):
    module = unique_module()
    fake_dists.add("ganzoo-fake-broken", {"broken": f"{module}:{attribute}"}, {module: source})
    fake_dists.add_plugin("ganzoo-fake-fine", "fine")

    assert {"broken", "fine", "dcgan"} <= set(ganzoo.list_models())
    statuses = {s.name: s for s in registry.plugin_statuses()}
    broken = statuses["broken"]
    assert not broken.ok and broken.plugin is None
    assert "ganzoo-fake-broken" in broken.error
    assert "failed to import" in broken.error
    for text in expected:
        assert text in broken.error
    assert statuses["dcgan"].ok and statuses["fine"].ok

    assert ganzoo.get_plugin("dcgan").name == "dcgan"
    assert ganzoo.get_plugin("fine").name == "fine"
    with pytest.raises(PluginError, match="ganzoo-fake-broken"):
        ganzoo.get_plugin("broken")
    # modality filtering loads plugins: the broken one is skipped, not fatal
    assert "broken" not in ganzoo.list_models(modality="image")
    assert "dcgan" in ganzoo.list_models(modality="image")


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("plugin = 42\n", "is a int, not a ganzoo.GANPlugin instance"),
        (
            textwrap.dedent(
                """\
                import dataclasses
                from ganzoo import GANPlugin

                @dataclasses.dataclass
                class Config:
                    pass

                class plugin(GANPlugin):
                    name = "notplugin"
                    Config = Config
                """
            ),
            "is the class plugin, not a plugin instance",
        ),
        (
            textwrap.dedent(
                """\
                from ganzoo import GANPlugin

                class P(GANPlugin):
                    name = "notplugin"
                    Config = dict

                plugin = P()
                """
            ),
            "Config must be a dataclass",
        ),
    ],
    ids=["int", "class", "config-not-dataclass"],
)
def test_entry_point_object_that_is_not_a_plugin(fake_dists, source, expected):
    module = unique_module()
    fake_dists.add("ganzoo-fake-notplugin", {"notplugin": f"{module}:plugin"}, {module: source})
    with pytest.raises(PluginError) as info:
        ganzoo.get_plugin("notplugin")
    assert expected in str(info.value)
    assert "ganzoo-fake-notplugin" in str(info.value)
    (status,) = registry.plugin_statuses("notplugin")
    assert not status.ok and expected in status.error
    assert ganzoo.get_plugin("dcgan").name == "dcgan"


def test_entry_point_name_must_match_plugin_name(fake_dists):
    module = unique_module()
    fake_dists.add("ganzoo-fake-mismatch", {"alias": f"{module}:plugin"}, {module: plugin_module_source("real-name")})
    with pytest.raises(PluginError, match="calls itself 'real-name'"):
        ganzoo.get_plugin("alias")


BAD_DEFAULT_SOURCE = """\
import dataclasses

from ganzoo import GANPlugin, option


@dataclasses.dataclass
class Config:
    width: int = option(8, "a width", min=1)
    {field}


class BadDefault(GANPlugin):
    name = "bad-default"
    Config = Config


plugin = BadDefault()
"""


@pytest.mark.parametrize(
    ("field", "expected"),
    [
        ('latent_dim: int = option("64", "size of z", min=1)', "the default of latent_dim, '64', is not a int"),
        ('lr: float = option(-1e-4, "learning rate", min=0)', "the default lr=-0.0001 is too small; it must be >= 0"),
        ('norm: str = option("batchnorm", "norm", choices=("batch", "none"))', "the default norm='batchnorm' is not"),
        ('betas: tuple[float, float] = option((0.5,), "Adam betas")', "the default of betas, (0.5,), is not a tuple"),
        ("depth: int = dataclasses.field(default=None)", "the default of depth, None, is not a int"),
    ],
    ids=["wrong-type", "below-min", "not-a-choice", "wrong-length", "none-for-int"],
)
def test_a_broken_default_marks_the_plugin_broken_in_the_listing(fake_dists, field, expected):
    module = unique_module()
    fake_dists.add(
        "ganzoo-fake-default", {"bad-default": f"{module}:plugin"}, {module: BAD_DEFAULT_SOURCE.format(field=field)}
    )
    (status,) = registry.plugin_statuses("bad-default")
    assert not status.ok and "has a broken config" in status.error and expected in status.error
    assert "ganzoo-fake-default" in status.error
    with pytest.raises(PluginError, match="has a broken config"):
        ganzoo.create_model("bad-default")
    assert ganzoo.get_plugin("dcgan").name == "dcgan"


def test_defaults_of_the_right_type_pass_and_an_int_for_a_float_is_fine():
    from ganzoo.config import check_defaults

    @dataclasses.dataclass
    class Fine:
        weight: float = ganzoo.option(10, "an int for a float field", min=0)
        sizes: tuple[int, ...] = ganzoo.option((2, 3), "widths")
        name: str | None = ganzoo.option(None, "optional")

    check_defaults(Fine)
    for plugin in ("dcgan", "wgan-gp", "cgan", "cyclegan", "lstm-gan"):
        check_defaults(ganzoo.get_plugin(plugin).Config)


def test_a_saved_model_whose_plugin_is_installed_but_broken_says_so(fake_dists):
    from ganzoo.errors import GanzooError
    from ganzoo.model import model_from_run_config

    module = unique_module()
    fake_dists.add("ganzoo-fake-broken", {"broken": f"{module}:plugin"}, {module: "x = 1 / 0\n"})
    saved = {"plugin": "broken", "plugin_distribution": "ganzoo-fake-broken", "config": {}}
    with pytest.raises(GanzooError) as caught:
        model_from_run_config(saved, "run/config.json")
    message = str(caught.value)
    assert message.startswith("run/config.json needs the plugin 'broken', which is installed but broken:")
    assert "ZeroDivisionError" in message and "pip install" not in message
    with pytest.raises(GanzooError, match=r"'absent' \(its config.json says the plugin comes from ganzoo-absent: pip"):
        model_from_run_config({"plugin": "absent", "plugin_distribution": "ganzoo-absent"}, "run/config.json")

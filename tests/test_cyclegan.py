"""The CycleGAN plugin: network shapes and structure for every configuration, the losses against hand-computed
values, the image pool, training through the engine (default data, sample grids, EMA, the learning-rate decay,
cycle loss going down, checkpoints and resume with the pools), sampling triplets and `ganzoo.translate`; content
preservation: the frozen classifiers (`ganzoo.metrics.classifiers`: shipped names and safetensors files of
ganzoo's digit CNN or a timm model), the semantic consistency loss (zero for a mapping the classifier cannot tell
from the identity, positive when the class flips, frozen through training), the cycle noise, the
feature-space cycle loss and the shared-latent loss."""

from __future__ import annotations

import json
import types
import warnings

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from helpers_engine import ToyGAN, toy_data, toy_train
from PIL import Image
from safetensors.torch import load_file, save_file
from torch import nn

import ganzoo
from ganzoo import DataInfo, Trainer, UsageError
from ganzoo.cli import cli
from ganzoo.data import resolve_data
from ganzoo.engine.trainer import lr_factor
from ganzoo.losses import semantic_consistency
from ganzoo.metrics.classifiers import classifier_metadata, load_classifier
from ganzoo.translate import translate
from ganzoo_plugins.cyclegan import CycleGANConfig, discriminator_a_loss, generators_loss, semantic_loss
from ganzoo_plugins.cyclegan.networks import (
    CycleMemory,
    ImagePool,
    InstanceNorm,
    PatchDiscriminator,
    ResidualBlock,
    ResnetGenerator,
    patch_output_size,
)

TINY = {"g_width": 4, "d_width": 4, "residual_blocks": 1, "examples": 4, "pool_size": 6}
GREY = DataInfo("image-to-image", channels=1, resolution=28)


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """One intra-op thread: these networks are tiny, and on a shared 2-core machine two threads that wait on
    each other make every convolution many times slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def quiet(**settings):
    """A short, quiet fp32 CPU run of batch 4 without samples or checkpoints on the way."""
    base = {
        "steps": 2,
        "batch_size": 4,
        "device": "cpu",
        "precision": "fp32",
        "progress": False,
        "tensorboard": False,
        "log_every": 1,
        "sample_every": 1000,
        "sample_grid": 12,
        "checkpoint_every": 1000,
    }
    return {**base, **settings}


# ------------------------------------------------------------------------------------------------ networks


@pytest.mark.parametrize("resolution", [28, 32, 64])
@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("blocks", [0, 2])
def test_shapes_for_every_configuration(resolution, channels, blocks):
    model = ganzoo.create_model(
        "cyclegan", data_info=GREY, resolution=resolution, channels=channels, **{**TINY, "residual_blocks": blocks}
    )
    x = torch.rand(2, channels, resolution, resolution) * 2 - 1
    with torch.no_grad():
        for role in ("generator_ab", "generator_ba"):
            y = model.nets[role](x)
            assert y.shape == x.shape and y.min() >= -1 and y.max() <= 1
            assert sum(isinstance(m, ResidualBlock) for m in model.nets[role].modules()) == blocks
        side = patch_output_size(resolution, model.config.d_layers)
        for role in ("discriminator_a", "discriminator_b"):
            assert model.nets[role](x).shape == (2, 1, side, side)
    memory = model.nets["memory"]
    assert memory.pool_a.images.shape == (TINY["pool_size"], channels, resolution, resolution)


@pytest.mark.parametrize(("resolution", "blocks", "d_layers"), [(28, 2, 2), (32, 2, 2), (64, 6, 3), (128, 6, 3)])
def test_defaults_follow_the_resolution(resolution, blocks, d_layers):
    model = ganzoo.create_model("cyclegan", data_info=GREY, resolution=resolution, g_width=2, d_width=2)
    assert (model.config.residual_blocks, model.config.d_layers) == (blocks, d_layers)
    assert sum(isinstance(m, ResidualBlock) for m in model.nets["generator_ab"].modules()) == blocks


def test_resolution_and_channels_come_from_the_data():
    config = ganzoo.get_plugin("cyclegan").resolve_config(CycleGANConfig(), DataInfo("image-to-image"))
    assert (config.resolution, config.channels, config.residual_blocks, config.d_layers) == (256, 3, 9, 3)
    model = ganzoo.create_model("cyclegan", data_info=GREY, **TINY)
    assert (model.config.resolution, model.config.channels) == (28, 1)


def test_generator_follows_johnson_et_al():
    g = ResnetGenerator(3, 8, 2)
    convs = [m for m in g.modules() if isinstance(m, nn.Conv2d)]
    assert convs[0].kernel_size == (7, 7) and convs[0].out_channels == 8  # c7s1-8
    assert [c.stride for c in convs[1:3]] == [(2, 2), (2, 2)] and convs[2].out_channels == 32  # d16, d32
    ups = [m for m in g.modules() if isinstance(m, nn.ConvTranspose2d)]
    assert [(u.stride, u.out_channels) for u in ups] == [((2, 2), 16), ((2, 2), 8)]  # u16, u8
    assert convs[-1].kernel_size == (7, 7) and convs[-1].out_channels == 3  # c7s1-3
    assert isinstance(list(g.modules())[-1], nn.Tanh)
    assert any(isinstance(m, nn.ReflectionPad2d) for m in g.modules())
    assert not any(isinstance(m, (nn.BatchNorm2d, nn.InstanceNorm2d)) for m in g.modules())
    with torch.no_grad():  # instance norm: every channel of every image normalised on its own
        hidden = g.net[:3](torch.randn(2, 3, 16, 16) * 5 + 3)
    assert torch.allclose(hidden.mean(dim=(2, 3)), torch.zeros(2, 8), atol=1e-5)
    assert torch.allclose(hidden.var(dim=(2, 3), unbiased=False), torch.ones(2, 8), atol=1e-3)


def test_patchgan_with_three_layers_sees_70x70_patches():
    d = PatchDiscriminator(1, 4, 3)
    for index, module in enumerate(d.net):  # instance norm's statistics span the image: take it out
        if isinstance(module, InstanceNorm):
            d.net[index] = nn.Identity()
    x = torch.randn(1, 1, 128, 128, requires_grad=True)
    d(x)[0, 0, 5, 5].backward()
    rows = x.grad[0, 0].abs().sum(dim=1).nonzero().flatten()
    cols = x.grad[0, 0].abs().sum(dim=0).nonzero().flatten()
    assert int(rows.max() - rows.min()) + 1 == int(cols.max() - cols.min()) + 1 == 70


def test_single_domain_data_is_a_clear_error(tmp_path):
    with pytest.raises(
        UsageError, match=r"cyclegan needs two unpaired image domains, and this data is image data; accepted: unp"
    ):
        Trainer("cyclegan", TINY, quiet(steps=1), data="mnist-4k", out=tmp_path / "run").fit()


def test_invalid_configs_are_usage_errors():
    with pytest.raises(UsageError, match="multiple of 4"):
        ganzoo.create_model("cyclegan", data_info=GREY, resolution=30)
    with pytest.raises(UsageError, match="d_layers=5 is too deep for 28 px"):
        ganzoo.create_model("cyclegan", data_info=GREY, d_layers=5)


# ------------------------------------------------------------------------------------------------ losses


class Affine(nn.Module):
    def __init__(self, scale: float, shift: float) -> None:
        super().__init__()
        self.scale, self.shift = scale, shift

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale + self.shift


class ConstantD(nn.Module):
    def __init__(self, value: float) -> None:
        super().__init__()
        self.value = value

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.full((len(x), 1, 2, 2), self.value) + 0 * x.mean()


def _hand_nets(pool_size=0):
    return {
        "generator_ab": Affine(0.5, 0.0),
        "generator_ba": Affine(1.0, 0.25),
        "discriminator_a": ConstantD(0.5),
        "discriminator_b": ConstantD(-1.0),
        "memory": CycleMemory(pool_size, 2, 1, 2),
    }


def _ctx(**config):
    return types.SimpleNamespace(config=CycleGANConfig(**config), device=torch.device("cpu"))


@pytest.mark.parametrize("lambda_identity", [0.5, 0.0])
def test_generator_losses_by_hand(lambda_identity):
    a, b = torch.full((2, 1, 2, 2), 0.8), torch.full((2, 1, 2, 2), -0.6)
    nets = _hand_nets()
    loss, logs = generators_loss(nets, {"image_a": a, "image_b": b}, _ctx(lambda_identity=lambda_identity))
    # G_ab(x) = x/2, G_ba(x) = x + 1/4: a -> 0.4 -> 0.65 (|0.65 - 0.8| = 0.15); b -> -0.35 -> -0.175 (0.425)
    assert float(logs["cycle_a"]) == pytest.approx(0.15)
    assert float(logs["cycle_b"]) == pytest.approx(0.425)
    # least squares as in the paper: (D(G(x)) - 1)^2 with D_b = -1 on G_ab's output, D_a = 0.5 on G_ba's
    assert float(logs["g_adversarial_ab"]) == pytest.approx(4.0)
    assert float(logs["g_adversarial_ba"]) == pytest.approx(0.25)
    expected = 4.25 + 10 * (0.15 + 0.425)
    if lambda_identity:
        # identity: |G_ba(a) - a| = 0.25, |G_ab(b) - b| = 0.3, weighted 10 * 0.5
        assert float(logs["identity_a"]) == pytest.approx(0.25)
        assert float(logs["identity_b"]) == pytest.approx(0.3)
        expected += 5 * (0.25 + 0.3)
    else:
        assert "identity_a" not in logs
    assert float(loss) == pytest.approx(expected)
    assert torch.equal(nets["memory"].take("fake_b"), a * 0.5)  # handed to the discriminator updates
    assert torch.equal(nets["memory"].take("real_a"), a)


def test_discriminator_loss_by_hand():
    a, b = torch.full((2, 1, 2, 2), 0.8), torch.full((2, 1, 2, 2), -0.6)
    nets = _hand_nets()
    generators_loss(nets, {"image_a": a, "image_b": b}, _ctx())
    loss, logs = discriminator_a_loss(nets, {}, _ctx())
    # D_a = 0.5 on real and fake: 0.5 (0.5 - 1)^2 + 0.5 * 0.5^2
    assert float(loss) == pytest.approx(0.25)
    assert float(logs["d_a_real"]) == float(logs["d_a_fake"]) == 0.5


def test_discriminator_before_generator_is_an_error():
    with pytest.raises(RuntimeError, match="generator update must run first"):
        discriminator_a_loss(_hand_nets(), {}, _ctx())


# ------------------------------------------------------------------------------------------------ image pool


def test_image_pool_fills_then_swaps_half_the_time():
    pool = ImagePool(4, 1, 2)
    first = torch.arange(4.0).view(4, 1, 1, 1).expand(4, 1, 2, 2)
    assert torch.equal(pool.query(first), first)  # filling: every image is stored and returned
    assert torch.equal(pool.images, first) and int(pool.count) == 4
    generator = torch.Generator().manual_seed(0)
    swaps = 0
    for value in range(10, 210):
        image = torch.full((1, 1, 2, 2), float(value))
        before = pool.images.clone()
        out = pool.query(image, generator=generator)
        if torch.equal(out, image):  # returned as is: the pool is unchanged
            assert torch.equal(pool.images, before)
        else:  # returned a stored image, and the new one took its slot
            swaps += 1
            slot = int((before == out[0]).flatten(1).all(dim=1).nonzero())
            assert torch.equal(pool.images[slot], image[0])
            assert torch.equal(
                torch.cat([pool.images[:slot], pool.images[slot + 1 :]]), torch.cat([before[:slot], before[slot + 1 :]])
            )
    assert 80 <= swaps <= 120


def test_empty_pool_returns_the_images():
    images = torch.randn(3, 1, 2, 2)
    assert torch.equal(ImagePool(0, 1, 2).query(images), images)


# ------------------------------------------------------------------------------------------------ training


@pytest.fixture(scope="module")
def cyclegan_run(tmp_path_factory):
    """A tiny run on the default data (the plugin's own, digits-8x8-to-mnist) with an EMA and a sample grid."""
    out = tmp_path_factory.mktemp("cyclegan") / "run"
    Trainer("cyclegan", TINY, quiet(steps=3, sample_every=3, checkpoint_every=3, ema_decay=0.9), out=out).fit()
    return out


def test_default_data_roles_grid_and_ema(cyclegan_run):
    saved = json.loads((cyclegan_run / "config.json").read_text())
    assert saved["data"] == "digits-8x8-to-mnist"
    assert saved["data_info"]["modality"] == "image-to-image"
    assert saved["train"]["lr_schedule"] == "linear-decay"
    weights = load_file(cyclegan_run / "checkpoints" / "step-000003" / "model.safetensors")
    roles = {key.partition(".")[0] for key in weights}
    assert roles == {
        "generator_ab",
        "generator_ba",
        "discriminator_a",
        "discriminator_b",
        "memory",
        "generator_ab_ema",
        "generator_ba_ema",
    }
    assert int(weights["memory.pool_a.count"]) == TINY["pool_size"] and int(weights["memory.examples_count"]) == 4
    with Image.open(cyclegan_run / "samples" / "step-000003.png") as grid:
        # 12 images: two rows of a, a->b, a->b->a, b, b->a, b->a->b at 28 px with 2 px padding
        assert grid.size == (6 * 30 + 2, 2 * 30 + 2)
    lines = [json.loads(line) for line in (cyclegan_run / "metrics.jsonl").read_text().splitlines()]
    assert {"loss/generators", "loss/discriminator_a", "loss/discriminator_b", "cycle_a"} <= set(lines[0])
    assert "identity_b" not in lines[0]  # the identity loss is off by default (lambda_identity 0)


def test_sample_gives_triplets_of_the_stored_examples(cyclegan_run):
    model = ganzoo.load_pretrained(cyclegan_run)
    samples = model.sample(12, seed=0)
    assert samples.shape == (12, 1, 28, 28)
    real_a, real_b = model.nets["memory"].examples()
    g_ab, g_ba = (model.ema[r].eval() for r in ("generator_ab", "generator_ba"))
    rows = samples.view(2, 6, 1, 28, 28)
    with torch.no_grad():
        for row in rows:
            assert any(torch.equal(row[0], image) for image in real_a)
            assert torch.allclose(row[1], g_ab(row[0][None])[0], atol=1e-6)
            assert torch.allclose(row[2], g_ba(row[1][None])[0], atol=1e-6)
            assert any(torch.equal(row[3], image) for image in real_b)
            assert torch.allclose(row[4], g_ba(row[3][None])[0], atol=1e-6)
    assert model.sample(100, seed=0).shape[0] == 6 * 4  # at most one row per stored example
    with pytest.raises(UsageError, match="takes no condition"):
        model.sample(6, condition=torch.zeros(1))


def test_sample_grids_have_one_triplet_pair_per_row(cyclegan_run):
    model = ganzoo.load_pretrained(cyclegan_run)
    samples, per_row = model.sample_grid(12, seed=0)
    assert per_row == 6 and samples.shape[0] == 12
    assert ganzoo.create_model("dcgan").sample_grid(4, seed=0)[1] is None  # other plugins: a square grid


def test_plugins_that_do_not_translate_say_so():
    dcgan = ganzoo.create_model("dcgan")
    with pytest.raises(UsageError, match="dcgan does not translate images"):
        dcgan.plugin.translate(dcgan.nets, torch.zeros(1, 3, 64, 64), "a2b")


def test_a_fresh_model_has_no_examples():
    with pytest.raises(UsageError, match="no stored examples yet"):
        ganzoo.create_model("cyclegan", data_info=GREY, **TINY).sample(6)


def test_short_training_lowers_the_cycle_loss(tmp_path):
    config = {**TINY, "g_width": 8, "lr": 2e-3}
    train = quiet(steps=40, log_every=10, lr_schedule="constant")
    Trainer("cyclegan", config, train, data="digits-8x8-to-mnist?split=train", out=tmp_path / "run").fit()
    lines = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    cycle = [line["cycle_a"] + line["cycle_b"] for line in lines]
    assert cycle[-1] < 0.6 * cycle[0], cycle


def test_fp16_keeps_one_grad_scaler_per_update(tmp_path):
    """The generators' update (one loss for both generators) and each discriminator's have their own GradScaler:
    at the start the scaled fp16 gradients overflow, and each scaler skips and halves on its own."""
    from ganzoo.engine.checkpoint import load_training_state

    result = Trainer("cyclegan", TINY, quiet(steps=2, precision="fp16"), out=tmp_path / "run").fit()
    state, _ = load_training_state(result.checkpoint)
    scales = {name: scaler["scale"] for name, scaler in state["scalers"].items()}
    assert scales == {"generators": 2.0**14, "discriminator_a": 2.0**15, "discriminator_b": 2.0**15}
    lines = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert lines[0]["amp/skipped/generators"] == lines[1]["amp/skipped/generators"] == 1.0
    assert "amp/skipped/discriminator_a" not in lines[1] and lines[1]["loss/discriminator_a"] > 0


# ------------------------------------------------------------------------------------- learning-rate schedule


def test_lr_factor():
    assert [lr_factor(t, 4, "constant", 0.5) for t in range(4)] == [1.0] * 4
    assert [lr_factor(t, 4, "linear-decay", 0.5) for t in range(4)] == [1.0, 1.0, 1.0, 0.5]
    assert [lr_factor(t, 5, "linear-decay", 0.0) for t in range(5)] == [1.0, 0.8, 0.6, 0.4, 0.2]


@pytest.mark.parametrize(("schedule", "factors"), [("constant", [1, 1, 1, 1]), ("linear-decay", [1, 1, 1, 0.5])])
def test_engine_applies_the_lr_schedule_to_every_optimizer(tmp_path, schedule, factors):
    plugin = ToyGAN(snapshot=False)
    train = toy_train(steps=4, lr_schedule=schedule, lr_decay_start=0.5)
    Trainer(plugin, config={"lr": 0.01}, train=train, data=toy_data(), out=tmp_path / "run").fit()
    lines = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    for role in ("generator", "discriminator"):
        assert [line[f"lr/{role}"] for line in lines] == pytest.approx([0.01 * f for f in factors])


# ------------------------------------------------------------------------------------------------ translate


@pytest.fixture
def inputs(tmp_path):
    root = tmp_path / "in"
    (root / "sub").mkdir(parents=True)
    Image.new("L", (40, 30), 90).save(root / "wide.png")
    Image.new("RGB", (17, 50), (200, 10, 10)).save(root / "sub" / "tall.jpg")
    (root / "notes.txt").write_text("not an image")
    return root


def test_translate_keeps_names_and_sizes(cyclegan_run, inputs, tmp_path):
    written = translate(str(cyclegan_run), inputs, direction="b2a", out_dir=tmp_path / "out")
    assert written == [tmp_path / "out" / "sub" / "tall.jpg", tmp_path / "out" / "wide.png"]
    with Image.open(written[0]) as tall, Image.open(written[1]) as wide:
        assert (tall.size, tall.format, tall.mode) == ((17, 50), "JPEG", "L")
        assert (wide.size, wide.format) == ((40, 30), "PNG")
    single = translate(ganzoo.load_pretrained(cyclegan_run), inputs / "wide.png", out_dir=tmp_path / "one")
    assert single == [tmp_path / "one" / "wide.png"]


def test_translate_runs_the_generator_of_the_direction(cyclegan_run, tmp_path):
    model = ganzoo.load_pretrained(cyclegan_run)
    pixels = (torch.rand(28, 28) * 255).round().to(torch.uint8)
    Image.fromarray(pixels.numpy(), "L").save(tmp_path / "x.png")
    for direction, role in (("a2b", "generator_ab"), ("b2a", "generator_ba")):
        (path,) = translate(model, tmp_path / "x.png", direction, tmp_path / direction)
        with torch.no_grad():
            expected = model.ema[role].eval()(pixels.float().div(127.5).sub(1)[None, None])
        expected = expected.clamp(-1, 1).add(1).mul(127.5).round()[0, 0]
        with Image.open(path) as image:
            got = torch.from_numpy(np.asarray(image, dtype=np.float32))
        assert (got - expected).abs().max() <= 1  # same size: the resizes are no-ops


def test_translate_bad_inputs(cyclegan_run, inputs, tmp_path):
    model = ganzoo.load_pretrained(cyclegan_run)
    with pytest.raises(UsageError, match="input not found"):
        translate(model, tmp_path / "nothing.png", out_dir=tmp_path / "o")
    with pytest.raises(UsageError, match=r"is not an image file; accepted suffixes: \.png"):
        translate(model, inputs / "notes.txt", out_dir=tmp_path / "o")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UsageError, match="no images found under"):
        translate(model, tmp_path / "empty", out_dir=tmp_path / "o")
    with pytest.raises(UsageError, match="unknown direction 'a2c'; accepted: a2b, b2a"):
        translate(model, inputs, direction="a2c", out_dir=tmp_path / "o")
    with pytest.raises(UsageError, match="is the input directory"):
        translate(model, inputs, out_dir=inputs)
    with pytest.raises(UsageError, match=r"wide\.png into .* would overwrite it"):
        translate(model, inputs / "wide.png", out_dir=inputs)
    (inputs / "broken.png").write_bytes(b"\x89PNG garbage")
    with pytest.raises(UsageError, match=r"cannot read the image .*broken\.png"):
        translate(model, inputs / "broken.png", out_dir=tmp_path / "o")
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        written = translate(model, inputs, out_dir=tmp_path / "o")
    assert len(written) == 2 and "skipped 1 unreadable image file(s)" in str(record[0].message)
    dcgan = ganzoo.create_model("dcgan", resolution=28, channels=1, g_width=4, d_width=4, latent_dim=4)
    with pytest.raises(UsageError, match=r"dcgan is not an image-to-image model \(image\); translate needs one"):
        translate(dcgan, inputs, out_dir=tmp_path / "o")


def test_translate_command(cyclegan_run, inputs, tmp_path):
    runner = CliRunner()
    out = tmp_path / "out"
    result = runner.invoke(
        cli, ["translate", str(cyclegan_run), "--input", str(inputs), "--direction", "b2a", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert "translated 2 image(s)" in result.output
    assert sorted(p.name for p in out.rglob("*") if p.is_file()) == ["tall.jpg", "wide.png"]
    bad = runner.invoke(cli, ["translate", str(cyclegan_run), "--input", str(tmp_path / "none"), "--out", str(out)])
    assert bad.exit_code != 0 and "input not found" in bad.output and "Traceback" not in bad.output
    dcgan = tmp_path / "dcgan"
    Trainer("dcgan", {"g_width": 4, "d_width": 4}, quiet(steps=1), out=dcgan).fit()
    wrong = runner.invoke(cli, ["translate", str(dcgan), "--input", str(inputs), "--out", str(out)])
    assert wrong.exit_code != 0 and "not an image-to-image model" in wrong.output


@pytest.fixture(scope="module")
def uci_test() -> tuple[torch.Tensor, torch.Tensor]:
    data = resolve_data("uci-digits-8x8?split=test").load(resolution=28, channels=1)
    return data.images.float() / 127.5 - 1, data.labels


PAIR_TRAIN = "digits-8x8-to-mnist?split=train"


def test_evaluation_scores_translations_against_the_other_domain(cyclegan_run):
    """`ganzoo eval` / the zoo on two-domain data: A->B translations of domain A's first n images against domain
    B's images, label preservation as accuracy, the same B->A under *_b2a keys; one-domain data is refused."""
    from ganzoo.metrics import stats
    from ganzoo.metrics.evaluation import evaluate
    from ganzoo.metrics.features import get_features

    model = ganzoo.load_pretrained(cyclegan_run)
    data = "digits-8x8-to-mnist?split=test"
    scores = evaluate(model, data, "fid,kid,accuracy", n=20)
    assert scores["n"] == 20 and scores["n_b2a"] == 20 and scores["features"] == "digits"
    assert {"fid", "kid_mean", "accuracy", "fid_b2a", "accuracy_b2a"} <= set(scores) and "precision" not in scores
    domains = resolve_data(data).load(resolution=28, channels=1)
    sources = domains.a.images[:20].float() / 127.5 - 1
    translated = model.translate(sources, "a2b")
    nets = model.sampling_nets()
    for net in nets.values():
        net.eval()
    with torch.no_grad():
        assert torch.allclose(translated, model.plugin.translate(nets, sources, "a2b"))
    features, logits = get_features("digits").extract(translated)
    assert scores["accuracy"] == pytest.approx(float((logits.argmax(1) == domains.a.labels[:20]).double().mean()))
    real = get_features("digits").extract(domains.b.images.float() / 127.5 - 1)[0]
    assert scores["fid"] == pytest.approx(stats.frechet_distance_of(features, real), rel=1e-6)
    with pytest.raises(UsageError, match="scored on two domains"):
        evaluate(model, "mnist-4k?split=test", "fid", n=20)


# ------------------------------------------------------------------------------------------------ content preservation


def test_the_shipped_uci_classifier_reads_its_domain(uci_test):
    images, labels = uci_test
    classifier = load_classifier("uci-digits")
    with torch.no_grad():
        accuracy = float((classifier(images).argmax(1) == labels).float().mean())
    metadata = classifier_metadata("uci-digits")
    assert accuracy == pytest.approx(float(metadata["test_accuracy"]), abs=0.002) and accuracy > 0.97
    assert metadata["train_data"] == "uci-digits-8x8?split=train"  # never the test split
    assert not any(p.requires_grad for p in classifier.parameters())


def test_the_shipped_domain_b_classifier_is_not_the_judge():
    """`mnist-resnet` reads MNIST as well as the `digits` judge but is another network (timm's test_resnet, another
    seed), trained on the training split only."""
    data = resolve_data("mnist-4k?split=test").load(resolution=28, channels=1)
    images, labels = data.images.float() / 127.5 - 1, data.labels
    classifier = load_classifier("mnist-resnet")
    with torch.no_grad():
        accuracy = float((classifier(images).argmax(1) == labels).float().mean())
    metadata, judge = classifier_metadata("mnist-resnet"), classifier_metadata("digits")
    assert accuracy == pytest.approx(float(metadata["test_accuracy"]), abs=0.002) and accuracy > 0.98
    assert metadata["train_data"] == "mnist-4k?split=train"
    assert metadata["architecture"] == "timm:test_resnet" != judge["architecture"]
    assert metadata["seed"] != judge["seed"]


def test_classifiers_stay_in_eval_mode_and_are_shared():
    classifier = load_classifier("digits")
    classifier.train()
    assert not classifier.training and not classifier.net.training
    assert load_classifier("digits") is classifier


def test_a_timm_classifier_from_a_safetensors_file(tmp_path):
    import timm

    net = timm.create_model("test_resnet", pretrained=False, num_classes=4, in_chans=1)
    path = tmp_path / "clf.safetensors"
    metadata = {"architecture": "timm:test_resnet", "num_classes": "4", "in_chans": "1", "input_size": "32,32"}
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(path), metadata=metadata)
    classifier = load_classifier(str(path))
    logits = classifier(torch.rand(3, 1, 28, 28) * 2 - 1)  # resized to 32 px, normalised as timm's config says
    assert logits.shape == (3, 4) and logits.dtype == torch.float32
    net.eval()
    x = torch.nn.functional.interpolate(torch.full((1, 1, 28, 28), 0.5), size=(32, 32), mode="bilinear", antialias=True)
    mean, std = net.pretrained_cfg["mean"][0], net.pretrained_cfg["std"][0]
    with torch.no_grad():
        expected = net(((x + 1) / 2 - mean) / std)
    assert torch.allclose(classifier(torch.full((1, 1, 28, 28), 0.5)), expected, atol=1e-5)


def test_unusable_classifiers_are_usage_errors(tmp_path):
    accepted = "accepted: digits, uci-digits, mnist-resnet"
    with pytest.raises(UsageError, match=f"neither a shipped one nor a file; {accepted}"):
        load_classifier(str(tmp_path / "missing.safetensors"))
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"not safetensors")
    with pytest.raises(UsageError, match="not a readable safetensors file"):
        load_classifier(str(garbage))
    unlabelled = tmp_path / "unlabelled.safetensors"
    save_file({"w": torch.zeros(2)}, str(unlabelled))
    with pytest.raises(UsageError, match="architecture='' is not known; accepted: DigitsClassifier or timm:NAME"):
        load_classifier(str(unlabelled))
    wrong = tmp_path / "wrong.safetensors"
    save_file({"w": torch.zeros(2)}, str(wrong), metadata={"architecture": "DigitsClassifier"})
    with pytest.raises(UsageError, match="do not fit DigitsClassifier"):
        load_classifier(str(wrong))


def test_semantic_loss_is_zero_for_the_identity_and_positive_when_labels_flip(uci_test):
    images, labels = uci_test
    config = CycleGANConfig(semantic="uci-digits")
    threes, eights = images[labels == 3][:16], images[labels == 8][:16]
    # the identity mapping (and any mapping the classifier cannot tell from it): exactly zero
    assert float(semantic_loss(config, "cpu", threes, threes, eights, eights)) == 0.0
    flipped = float(semantic_loss(config, "cpu", threes, eights, eights, threes))
    assert flipped > 1.0  # nats: the classifier is confident on both sets
    both = CycleGANConfig(semantic="uci-digits", semantic_b="uci-digits")
    assert float(semantic_loss(both, "cpu", threes, eights, eights, threes)) > 1.5 * flipped  # two directions


def test_semantic_consistency_is_a_kl_divergence():
    source, translated = torch.tensor([[2.0, 0.0], [0.0, 1.0]]), torch.tensor([[0.0, 0.0], [1.0, 0.0]])
    p, q = torch.softmax(source, 1), torch.softmax(translated, 1)
    expected = (p * (p.log() - q.log())).sum(1).mean()
    assert float(semantic_consistency(source, translated)) == pytest.approx(float(expected))
    translated.requires_grad_(True)
    semantic_consistency(source, translated).backward()
    assert translated.grad.abs().sum() > 0  # the translation gets the gradient; the source side is a constant


def _scaling_nets(scale_ab: float = 1.0, scale_ba: float = 1.0) -> dict:
    return {
        "generator_ab": Affine(scale_ab, 0.0),
        "generator_ba": Affine(scale_ba, 0.0),
        "discriminator_a": PatchDiscriminator(1, 4, 2),
        "discriminator_b": PatchDiscriminator(1, 4, 2),
        "memory": CycleMemory(0, 2, 1, 28),
    }


def test_feature_cycle_and_noise_terms(uci_test):
    images = uci_test[0][:4]
    batch = {"image_a": images, "image_b": images.flip(2)}
    _, logs = generators_loss(_scaling_nets(), batch, _ctx(lambda_feature_cycle=1.0, lambda_identity=0))
    assert float(logs["feature_cycle"]) == 0.0 and float(logs["cycle_a"]) == 0.0  # exact cycles
    _, logs = generators_loss(_scaling_nets(0.5, 1.5), batch, _ctx(lambda_feature_cycle=1.0, lambda_identity=0))
    assert float(logs["feature_cycle"]) > 0.0
    torch.manual_seed(0)
    _, noisy = generators_loss(_scaling_nets(), batch, _ctx(cycle_noise=0.2, lambda_identity=0))
    assert float(noisy["cycle_a"]) == pytest.approx(0.2 * (2 / torch.pi) ** 0.5, rel=0.05)  # E|N(0, 0.2^2)|
    assert "feature_cycle" not in noisy and "semantic" not in noisy


class Coded(Affine):
    """An affine generator whose code is its input: encode is the identity, decode the affine map."""

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def decode(self, code: torch.Tensor) -> torch.Tensor:
        return self(code)


def test_the_generator_decodes_its_code():
    generator = ResnetGenerator(1, 4, 2)
    x = torch.randn(2, 1, 28, 28)
    code = generator.encode(x)
    assert code.shape == (2, 16, 7, 7)  # 4w channels at a quarter of the size
    assert torch.equal(generator.decode(code), generator(x))


def test_shared_latent_term_by_hand():
    a, b = torch.full((2, 1, 2, 2), 0.8), torch.full((2, 1, 2, 2), -0.6)
    nets = {**_hand_nets(), "generator_ab": Coded(0.5, 0.0), "generator_ba": Coded(1.0, 0.25)}
    with_latent, logs = generators_loss(nets, {"image_a": a, "image_b": b}, _ctx(lambda_latent=2.0))
    without, plain = generators_loss(_hand_nets(), {"image_a": a, "image_b": b}, _ctx())
    # codes: a's is 0.8, G_ba's of a->b = 0.4 is 0.4 (|0.4 - 0.8| / 0.8 = 0.5); b's -0.6, of b->a -0.35 (0.25 / 0.6)
    assert float(logs["latent"]) == pytest.approx(0.5 + 0.25 / 0.6)
    assert float(with_latent) == pytest.approx(float(without) + 2.0 * float(logs["latent"]))
    assert {k: float(v) for k, v in plain.items()} == {k: float(v) for k, v in logs.items() if k != "latent"}
    same = {**_hand_nets(), "generator_ab": Coded(1.0, 0.0), "generator_ba": Coded(1.0, 0.0)}
    _, logs = generators_loss(same, {"image_a": a, "image_b": b}, _ctx(lambda_latent=1.0))
    assert float(logs["latent"]) == 0.0  # a translation coded as its source


def test_semantic_term_in_the_generators_loss(uci_test):
    images = uci_test[0][:4]
    batch = {"image_a": images, "image_b": images}
    _, logs = generators_loss(_scaling_nets(), batch, _ctx(semantic="uci-digits", lambda_identity=0))
    assert float(logs["semantic"]) == 0.0
    torch.manual_seed(0)  # the same discriminators for both losses
    with_semantic, logs = generators_loss(
        _scaling_nets(-1.0, 1.0), batch, _ctx(semantic="uci-digits", lambda_semantic=2.0)
    )
    torch.manual_seed(0)
    without, _ = generators_loss(_scaling_nets(-1.0, 1.0), batch, _ctx())
    assert float(logs["semantic"]) > 0
    assert float(with_semantic.detach()) == pytest.approx(float(without.detach()) + 2.0 * float(logs["semantic"]))


def test_training_with_the_semantic_loss_keeps_the_classifier_frozen(tmp_path):
    classifier = load_classifier("uci-digits")
    before = {k: v.clone() for k, v in classifier.state_dict().items()}
    config = {
        **TINY,
        "semantic": "uci-digits",
        "semantic_b": "digits",
        "cycle_noise": 0.1,
        "lambda_feature_cycle": 1,
        "lambda_latent": 1,
    }
    Trainer("cyclegan", config, quiet(steps=3), data=PAIR_TRAIN, out=tmp_path / "run").fit()
    after = classifier.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # weights and batch-norm statistics
    lines = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert all(line["semantic"] > 0 and line["feature_cycle"] > 0 and line["latent"] > 0 for line in lines)
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert saved["config"]["semantic"] == "uci-digits"


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"semantic": "no-such-classifier"}, "neither a shipped one nor a file"),
        ({"semantic_b": "digits"}, "semantic_b needs semantic"),
    ],
)
def test_bad_semantic_settings_fail_before_the_run_starts(tmp_path, config, message):
    with pytest.raises(UsageError, match=message):
        Trainer("cyclegan", {**TINY, **config}, quiet(), data=PAIR_TRAIN, out=tmp_path / "run").fit()
    assert not (tmp_path / "run" / "metrics.jsonl").exists()


def test_a_classifier_of_other_channels_is_refused(tmp_path):
    model = ganzoo.create_model(
        "cyclegan", data_info=resolve_data(PAIR_TRAIN).info(), channels=3, semantic="digits", **TINY
    )
    with pytest.raises(UsageError, match="reads 1-channel images; this model's have 3"):
        model.plugin.optimizers(model.config)

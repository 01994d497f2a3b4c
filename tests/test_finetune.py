"""Fine-tuning (ganzoo/transfer.py, `ganzoo finetune`): end to end through a local Hub server (train -> push ->
finetune --from user/repo in an empty cache -> sample -> push with base_model in the card); the run starts from
the source's weights (EMA included); architecture overrides are refused; FreezeD keeps the frozen blocks
bit-identical (also across a resume), the command says what it froze, and every built-in plugin declares its
blocks in order; a cGAN is re-headed to another number of classes with its rows mapped by class name (by index
when no name matches), and the note says which; data at another resolution is resized, and it is said.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner, Result
from helpers_engine import ToyGAN, toy_data, toy_train
from PIL import Image

import ganzoo
from ganzoo.cli import cli
from ganzoo.data import resolve_data
from ganzoo.data.sources import TensorImageSource
from ganzoo.errors import GanzooError, UsageError
from ganzoo.model import load_run
from ganzoo.text.corpus import VocabularySource
from ganzoo.transfer import class_rows, prepare_finetune, transfer_weights

TINY = {"g_width": 4, "d_width": 4, "latent_dim": 8}
QUIET = {"batch_size": 8, "progress": False, "tensorboard": False, "device": "cpu", "sample_grid": 4}
FROZEN_LR = ("--set", "lr_g=0", "--set", "lr_d=0")


def ganzoo_cli(*args: object) -> Result:
    return CliRunner().invoke(cli, [str(a) for a in args], prog_name="ganzoo")


def succeeded(result: Result) -> str:
    assert result.exit_code == 0, result.output + repr(result.exc_info)
    return result.stdout


def failed(result: Result, exit_code: int, *needles: str) -> str:
    """The single `Error:` line of a failed command, checked for the exit code and each needle."""
    assert result.exit_code == exit_code and isinstance(result.exception, SystemExit), result.output
    errors = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(errors) == 1 and errors[0].startswith("Error: "), result.stderr
    assert all(needle in errors[0] for needle in needles), errors[0]
    return errors[0]


def parameters(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: p.detach().clone() for k, p in module.named_parameters()}


def assert_equal(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert sorted(a) == sorted(b)
    for key in a:
        assert torch.equal(a[key], b[key]), key


def fit(plugin: str, out: Path, data: str = "mnist-4k?n=32", steps: int = 2, **config: object) -> Path:
    train = {**QUIET, "steps": steps}
    return ganzoo.Trainer(plugin, {**TINY, **config}, train, data=data, out=out).fit().run_dir


@pytest.fixture(scope="module")
def dcgan_run(tmp_path_factory) -> Path:
    return fit("dcgan", tmp_path_factory.mktemp("source") / "dcgan")


@pytest.fixture(scope="module")
def cgan_run(tmp_path_factory) -> Path:
    config = {"g_conditioning": "concat", "d_norm": "spectral"}  # an embedding in G, spectral norm's vectors in D
    return fit("cgan", tmp_path_factory.mktemp("source") / "cgan", data="mnist-4k?n=40", **config)


# ---------------------------------------------------------------------------------------------- end to end


@pytest.mark.slow
def test_train_push_finetune_sample_and_push_again(hub, tmp_path):
    from huggingface_hub import ModelCard, constants

    succeeded(
        ganzoo_cli(
            "train",
            "dcgan",
            "--steps",
            2,
            "--batch-size",
            8,
            "--data",
            "mnist-4k?n=32",
            *(f"--set={k}={v}" for k, v in {**TINY, "progress": "false"}.items()),
            "--out",
            "source",
        )
    )
    url = succeeded(ganzoo_cli("push", "source", "--repo-id", "alice/digits")).strip()
    commit = url.rsplit("/", 1)[1]
    assert not (Path(constants.HF_HUB_CACHE) / "models--alice--digits").exists()  # an empty cache

    out = succeeded(
        ganzoo_cli(
            "finetune",
            "--from",
            "alice/digits",
            "--data",
            "mnist-4k?classes=5-9&n=24",
            "--steps",
            1,
            "--batch-size",
            8,
            *FROZEN_LR,
            "--set",
            "progress=false",
            "--out",
            "tuned",
        )
    )
    assert f"fine-tuning dcgan from alice/digits (commit {commit})" in out and "run: tuned" in out
    record = json.loads(Path("tuned/config.json").read_text())
    assert record["base_model"] == {"repo_id": "alice/digits", "commit": commit}
    assert record["config"]["g_width"] == 4 and record["data"] == "mnist-4k?classes=5-9&n=24"
    source, tuned = load_run("source"), load_run("tuned")
    for role in ("generator", "discriminator"):  # learning rate 0: still the source's weights
        assert_equal(parameters(tuned.nets[role]), parameters(source.nets[role]))

    succeeded(ganzoo_cli("sample", "tuned", "--n", 4, "--out", "tuned.png"))
    assert Image.open("tuned.png").size[0] > 28
    second = succeeded(ganzoo_cli("push", "tuned", "--repo-id", "alice/digits-5-9")).strip()
    assert "/alice/digits-5-9/commit/" in second
    card = ModelCard.load("alice/digits-5-9")
    assert card.data.base_model == "alice/digits" and f"Fine-tuned from `alice/digits` (commit `{commit}`)" in card.text
    assert ganzoo.load_pretrained("alice/digits-5-9").info["record"]["base_model"]["commit"] == commit


def test_the_run_starts_from_the_source_weights_ema_included(dcgan_run, tmp_path):
    source = load_run(dcgan_run)
    assert not torch.equal(source.ema["generator"].project.weight, source.nets["generator"].project.weight)
    plan = prepare_finetune(dcgan_run, "mnist-4k?n=16", {**QUIET, "steps": 1}, out=tmp_path / "run")
    loaded = {}
    initialise = plan.trainer.init

    def snapshot(model):
        initialise(model)
        loaded.update({k: v.clone() for k, v in model.weights().items()})

    plan.trainer.init = snapshot
    result = plan.trainer.fit()
    assert_equal(loaded, source.weights())  # every network, the EMA copy and the buffers, at step 0
    assert result.step == 1 and not torch.equal(
        result.model.nets["generator"].project.weight, source.nets["generator"].project.weight
    )  # fresh optimizers at the source's learning rates: it trains
    assert plan.base_model == {"path": str(dcgan_run.resolve()), "step": 2}
    # dcgan's fine-tuning recipe (its finetune_defaults) freezes D's first block; --set freeze_d=0 turns it off
    assert plan.notes == ["freeze-d: froze the first 1 of 3 discriminator blocks (68 parameters)"]
    assert plan.trainer.train_config.freeze_d == 1
    assert prepare_finetune(dcgan_run, "mnist-4k?n=16", {"freeze_d": 0}).trainer.train_config.freeze_d == 0
    assert json.loads((tmp_path / "run" / "config.json").read_text())["base_model"] == plan.base_model


# ------------------------------------------------------------------------------------------------- settings


def test_training_settings_may_change_and_the_architecture_may_not(dcgan_run, cgan_run, tmp_path):
    line = failed(
        ganzoo_cli("finetune", "--from", dcgan_run, "--data", "mnist-4k", "--set", "d_width=8"),
        2,
        "d_width is part of the dcgan architecture",
        "d_width=4",
    )
    assert "learning rates" in line
    failed(ganzoo_cli("finetune", "--from", dcgan_run, "--data", "mnist-4k", "--set", "d_norm=spectral"), 2, "d_norm")
    failed(ganzoo_cli("finetune", "--from", dcgan_run, "--data", "mnist-4k", "--set", "resolution=64"), 2, "resolution")
    failed(
        ganzoo_cli("finetune", "--from", cgan_run, "--data", "mnist-4k", "--set", "num_classes=3"),
        2,
        "num_classes",
        "from --data",
    )
    failed(ganzoo_cli("finetune", "--from", dcgan_run, "--data", "mnist-4k", "--set", "widht=8"), 2, "'widht'")
    assert not list(tmp_path.iterdir())

    plan = prepare_finetune(dcgan_run, "mnist-4k", {"lr_d": "1e-4", "loss": "hinge", "r1_gamma": 1, "steps": 5})
    config = plan.trainer.model_overrides
    assert config["lr_d"] == 1e-4 and config["loss"] == "hinge" and config["r1_gamma"] == 1
    assert config["d_width"] == 4 and config["resolution"] == 28 and plan.trainer.train_config.steps == 5


def test_freeze_d_keeps_the_frozen_blocks_says_so_and_resume_keeps_freezing(dcgan_run, tmp_path):
    out = tmp_path / "frozen"
    said = succeeded(
        ganzoo_cli(
            "finetune",
            "--from",
            dcgan_run,
            "--data",
            "mnist-4k?n=16",
            "--freeze-d",
            2,
            "--diffaugment",
            "translation",
            "--steps",
            2,
            "--batch-size",
            8,
            "--set",
            "progress=false",
            "--out",
            out,
        )
    )
    source, tuned = load_run(dcgan_run), load_run(out)
    frozen = sum(p.numel() for block in source.nets["discriminator"].blocks[:2] for p in block.parameters())
    assert f"freeze-d: froze the first 2 of 3 discriminator blocks ({frozen:,} parameters)\n" in said
    blocks = {"blocks.0.", "blocks.1."}
    before, after = parameters(source.nets["discriminator"]), parameters(tuned.nets["discriminator"])
    for key in before:
        assert torch.equal(before[key], after[key]) == any(key.startswith(b) for b in blocks), key
    record = json.loads((out / "config.json").read_text())
    assert record["train"]["freeze_d"] == 2 and record["train"]["diffaugment"] == "translation"

    succeeded(ganzoo_cli("train", "dcgan", "--out", out, "--resume", "--steps", 3))
    resumed = parameters(load_run(out).nets["discriminator"])
    assert all(torch.equal(resumed[k], before[k]) for k in before if k.startswith(tuple(blocks)))
    assert json.loads((out / "config.json").read_text())["base_model"] == record["base_model"]

    failed(
        ganzoo_cli("finetune", "--from", dcgan_run, "--data", "mnist-4k", "--freeze-d", 4), 2, "freeze_d=4", "3 blocks"
    )
    failed(ganzoo_cli("finetune", "--from", dcgan_run, "--data", "mnist-4k", "--freeze-d", 3), 2, "nothing to train")
    model = prepare_finetune(dcgan_run, "mnist-4k?n=8", {**QUIET, "steps": 1, "freeze_d": 1}).trainer.fit().model
    first, rest = model.nets["discriminator"].blocks[0], model.nets["discriminator"].blocks[1:]
    assert all(p.grad is None and not p.requires_grad for p in first.parameters())  # no gradient is even computed
    assert all(p.grad is not None for p in rest.parameters())
    with pytest.raises(UsageError, match="declares none"):
        ganzoo.Trainer(ToyGAN(), train=toy_train(freeze_d=1), data=toy_data(), out=tmp_path / "toy").fit()


@pytest.mark.parametrize(
    ("plugin", "config", "role"),
    [
        ("dcgan", {}, "discriminator"),
        ("dcgan", {"d_norm": "spectral"}, "discriminator"),
        ("wgan-gp", {}, "critic"),
        ("wgan-gp", {"backbone": "resnet"}, "critic"),
        ("cgan", {"num_classes": 3}, "discriminator"),
        ("cgan", {"num_classes": 3, "d_conditioning": "concat", "class_weight": 0}, "discriminator"),
    ],
)
def test_built_in_plugins_declare_their_discriminator_blocks_in_order(plugin, config, role):
    model = ganzoo.create_model(plugin, resolution=28, channels=1, **TINY, **config)
    blocks = list(model.plugin.frozen_d_blocks(model.nets))
    assert len(blocks) >= 2
    owned = {id(m) for m in model.nets[role].modules()}
    assert all(id(block) in owned for block in blocks)
    order: list[int] = []
    for index, block in enumerate(blocks):
        block.register_forward_hook(lambda module, args, output, index=index: order.append(index))
    images = torch.zeros(2, 1, 28, 28)
    model.nets[role](images, torch.tensor([0, 1])) if plugin == "cgan" else model.nets[role](images)
    assert order == list(range(len(blocks)))  # input to output


# ------------------------------------------------------------------------------------------ classes and data


def test_cgan_is_reheaded_to_the_new_classes(cgan_run, tmp_path):
    out = succeeded(
        ganzoo_cli(
            "finetune",
            "--from",
            cgan_run,
            "--data",
            "mnist-4k?classes=5-9&n=20",
            "--steps",
            1,
            "--batch-size",
            8,
            *FROZEN_LR,
            "--set",
            "progress=false",
            "--out",
            tmp_path / "five",
        )
    )
    assert "re-heading cgan from 10 to 5 classes by class name" in out
    assert "the source's rows 5-9 copied to rows 0-4" in out
    assert "generator.embed.weight" in out and "discriminator.embed.parametrizations.weight.original" in out
    source, tuned = load_run(cgan_run), load_run(tmp_path / "five")
    assert "class_names" not in source.data_info.extras  # the digits' classes are named by their numbers
    assert tuned.config.num_classes == 5 and tuned.data_info.num_classes == 5
    assert tuned.data_info.extras["class_names"] == ["5", "6", "7", "8", "9"]
    for role in ("generator", "discriminator"):
        old, new = parameters(source.nets[role]), parameters(tuned.nets[role])
        for key, tensor in new.items():
            if tensor.shape == old[key].shape:
                assert torch.equal(tensor, old[key]), key  # shared weights kept
            else:
                assert tensor.shape[0] == 5 and old[key].shape[0] == 10, key
                assert torch.equal(tensor, old[key][5:]), key  # new class i is the source's digit 5 + i
    assert "generator_ema.embed.weight" in out and tuned.ema["generator"].embed.weight.shape[0] == 5
    succeeded(ganzoo_cli("sample", tmp_path / "five", "--label", 4, "--n", 2, "--out", tmp_path / "four.png"))


def test_cgan_is_reheaded_by_index_when_no_class_name_matches(cgan_run, tmp_path):
    def read():
        return torch.randint(0, 256, (12, 1, 28, 28), dtype=torch.uint8), torch.arange(12) % 3

    names = {"class_names": ["x", "y", "z"]}
    info = ganzoo.DataInfo(channels=1, resolution=28, num_classes=3, num_samples=12, extras=names)
    overrides = {**QUIET, "steps": 1, "lr_g": 0, "lr_d": 0}
    plan = prepare_finetune(cgan_run, TensorImageSource("xyz", read, info), overrides, out=tmp_path / "xyz")
    (note,) = plan.notes
    assert "re-heading cgan from 10 to 3 classes by index" in note and "with rows 0-2 copied from the source" in note
    source, tuned = load_run(cgan_run), plan.trainer.fit().model
    assert torch.equal(tuned.nets["generator"].embed.weight, source.nets["generator"].embed.weight[:3])


def test_class_rows_by_name_and_by_index():
    assert class_rows([str(i) for i in range(10)], ["5", "6", "7", "8", "9"]) == ([5, 6, 7, 8, 9], True)
    assert class_rows(["cat", "dog"], ["dog", "bird", "cat"]) == ([1, None, 0], True)  # a new class starts fresh
    assert class_rows(["cat", "dog"], ["x", "y", "z"]) == ([0, 1, None], False)
    assert class_rows(["0", "1", "2"], ["a"]) == ([0], False)


def test_transfer_weights_maps_class_rows_after_other_entries():
    """Rows by class name in embeddings and heads, and in label input channels after the image channels."""
    embed = torch.arange(6.0).view(3, 2)  # 3 classes
    conv = torch.arange(2 * 4.0).view(2, 4, 1, 1)  # 1 image channel, then 3 label channels
    target = {"d.embed": torch.zeros(2, 2), "d.conv": torch.zeros(2, 3, 1, 1)}  # 2 classes
    weights, resized = transfer_weights({"d.embed": embed, "d.conv": conv}, target, class_change=-1, rows=[2, 0])
    assert sorted(resized) == ["d.conv", "d.embed"]
    assert torch.equal(weights["d.embed"], embed[[2, 0]])
    assert torch.equal(weights["d.conv"], conv[:, [0, 3, 1]])  # the image channel kept, then classes 2 and 0
    grown, _ = transfer_weights({"d.embed": embed}, {"d.embed": torch.full((4, 2), -1.0)}, 1, rows=[None, 1, 2, 0])
    assert torch.equal(grown["d.embed"], torch.stack([torch.full((2,), -1.0), embed[1], embed[2], embed[0]]))


def test_re_heading_follows_the_plugins_class_field(cgan_run, tmp_path, monkeypatch):
    """A plugin that names no class field is not re-headed: the model keeps 10 classes, which 5-class data
    cannot train (the plugin's own error), instead of a silent re-sizing."""
    monkeypatch.setattr(type(load_run(cgan_run).plugin), "num_classes_field", None)
    with pytest.raises(UsageError, match="num_classes=10 but the data has 5 classes"):
        prepare_finetune(cgan_run, "mnist-4k?classes=5-9&n=20", {"steps": 1, **QUIET}, tmp_path / "run").trainer.fit()


def test_transfer_weights_grows_classes_and_lists_what_does_not_fit():
    source = {"g.embed": torch.ones(3, 2), "g.w": torch.full((4,), 2.0), "g_ema.embed": torch.ones(3, 2)}
    target = {"g.embed": torch.zeros(5, 2), "g.w": torch.zeros(4)}
    weights, resized = transfer_weights(source, target, class_change=2)
    assert resized == ["g.embed"] and torch.equal(weights["g.w"], source["g.w"])
    assert torch.equal(weights["g.embed"], torch.tensor([[1.0, 1]] * 3 + [[0.0, 0]] * 2))  # new rows: fresh init
    with pytest.raises(GanzooError) as info:
        transfer_weights({"g.embed": torch.ones(3, 3), "g.extra": torch.ones(1)}, target, class_change=2)
    message = str(info.value)
    assert "g.embed (3, 3) (the new model has (5, 2))" in message and "unexpected g.extra" in message
    assert "missing g.w" in message


def test_data_at_another_resolution_is_resized_and_said(dcgan_run, tmp_path):
    def read():
        return torch.randint(0, 256, (16, 3, 32, 32), dtype=torch.uint8), None

    info = ganzoo.DataInfo(channels=3, resolution=32, num_samples=16)
    plan = prepare_finetune(
        dcgan_run, TensorImageSource("rgb-32", read, info), {**QUIET, "steps": 1}, out=tmp_path / "rgb"
    )
    assert plan.notes[:2] == [
        "the images of rgb-32 (32 px) are resized to the model's 28 px",
        "the images of rgb-32 (3 channels) are converted to the model's 1",
    ]
    shapes = []
    initialise = plan.trainer.init

    def watch_inputs(model):
        initialise(model)
        model.nets["discriminator"].register_forward_pre_hook(lambda module, args: shapes.append(args[0].shape))

    plan.trainer.init = watch_inputs
    result = plan.trainer.fit()
    assert shapes and all(shape[1:] == (1, 28, 28) for shape in shapes)  # what D saw: the model's size
    assert result.model.sample(2).shape == (2, 1, 28, 28)

    folder = tmp_path / "pictures"
    folder.mkdir()
    for index in range(8):
        Image.new("L", (40, 40), color=index * 30).save(folder / f"{index}.png")
    out = succeeded(
        ganzoo_cli(
            "finetune",
            "--from",
            dcgan_run,
            "--data",
            f"folder:{folder}",
            "--steps",
            1,
            "--batch-size",
            4,
            "--set",
            "progress=false",
            "--out",
            tmp_path / "folder-run",
        )
    )
    assert f"the images of folder:{folder} (of their own sizes) are resized to the model's 28 px" in out


def test_a_cyclegan_keeps_its_networks_and_starts_its_pools_afresh(tmp_path):
    tiny = {"g_width": 4, "d_width": 4, "residual_blocks": 1, "examples": 4, "pool_size": 6}
    train = {**QUIET, "steps": 2, "batch_size": 4}
    source = ganzoo.Trainer("cyclegan", tiny, train, out=tmp_path / "source").fit().model
    assert int(source.nets["memory"].pool_a.count) == 6  # two batches of 4: the source's pool is full
    overrides = {**QUIET, "steps": 1, "batch_size": 4, "lr": 0.0}  # lr 0: the networks stay the source's
    finetune = prepare_finetune(source, "digits-8x8-to-mnist?split=test", overrides, tmp_path / "run")
    seen = {}
    finetune.trainer.callbacks.append(lambda trainer, step: seen.update(model=trainer.model))
    finetune.trainer.fit()
    model = seen["model"]
    # one iteration later the pool holds this run's first batch only, and the examples come from the new data
    assert int(model.nets["memory"].pool_a.count) == 4
    assert not torch.equal(model.nets["memory"].examples_a, source.nets["memory"].examples_a)
    for role in ("generator_ab", "generator_ba", "discriminator_a", "discriminator_b"):
        assert_equal(parameters(model.nets[role]), parameters(source.nets[role]))


TEXT_TINY = {"embed_dim": 4, "hidden_dim": 8, "d_embed_dim": 4, "d_hidden_dim": 4, "pretrain_steps": 1}


def test_text_models_fine_tune_in_the_source_vocabulary_and_resume_in_it(tmp_path):
    source_text, target_text = tmp_path / "names.txt", tmp_path / "other.txt"
    source_text.write_text("ANNA\nBOB\nCARL\nDORA\n" * 4, encoding="utf-8")
    target_text.write_text("ZOÉ\nNOA\nBO\nÉLAN\nCARLOTTA\n" * 3, encoding="utf-8")  # Z, É, T unknown; CARLOTTA > 4
    train = {**QUIET, "steps": 1}
    run = ganzoo.Trainer("lstm-gan", TEXT_TINY, train, data=f"text:{source_text}", out=tmp_path / "src").fit()
    source = load_run(run.run_dir)

    with pytest.warns(UserWarning, match=r"15 tokens of text:.*other\.txt \(3 distinct: 'É', 'T', 'Z'\)") as said:
        overrides = {**train, "freeze_d": 1, "pretrain_steps": 0}
        plan = prepare_finetune(run.run_dir, f"text:{target_text}", overrides, out=tmp_path / "ft")
        tuned = plan.trainer.fit().model
    assert sum("vocabulary" in str(w.message) for w in said) == 1  # one warning
    assert plan.trainer.model_overrides["lr_mle"] == 1e-4  # lstm-gan's fine-tuning recipe
    overridden = prepare_finetune(run.run_dir, f"text:{target_text}", {"lr_mle": 5e-3})  # --set overrides it
    assert overridden.trainer.model_overrides["lr_mle"] == 5e-3
    assert "freeze-d: froze the first 1 of 3 discriminator blocks" in plan.notes[-1]
    assert tuned.data_info.extras["vocab"] == source.data_info.extras["vocab"]
    assert tuned.data_info.extras["max_length"] == source.data_info.extras["max_length"] == 4
    embed = "discriminator.embed.weight"
    assert torch.equal(tuned.weights()[embed], source.weights()[embed])  # frozen
    assert not torch.equal(tuned.weights()["discriminator.out.weight"], source.weights()["discriminator.out.weight"])
    with pytest.warns(UserWarning):  # the run reads the new names with the source's ids
        encoded = VocabularySource(resolve_data(f"text:{target_text}"), source.data_info).load().decode(5)
    assert encoded == ["<unk>O<unk>", "NOA", "BO", "<unk>LAN", "CARL"]

    resumed = ganzoo.Trainer("lstm-gan", train={**train, "steps": 2}, out=tmp_path / "ft", resume=True).fit()
    assert resumed.model.data_info.extras["vocab"] == source.data_info.extras["vocab"]

    with pytest.raises(UsageError, match="tokenizer cannot be set when fine-tuning lstm-gan"):
        prepare_finetune(run.run_dir, f"text:{target_text}", {"tokenizer": "word"})
    with pytest.raises(UsageError, match="a text model reads text data"):
        prepare_finetune(run.run_dir, "mnist-4k?n=8")

"""Gradient accumulation (`--accumulate N`): N micro-batches, one optimizer step, the same training as the whole
batch at once for plugins without batch-coupled layers (batch norm); batch sizes it cannot split are refused."""

from __future__ import annotations

import pytest
import torch
from click.testing import CliRunner
from helpers_engine import ToyGAN, toy_data, toy_train

import ganzoo
from ganzoo.cli import cli
from ganzoo.errors import UsageError

TEXT_TINY = {"embed_dim": 4, "hidden_dim": 8, "d_embed_dim": 4, "d_hidden_dim": 4}


def weights_of(result: ganzoo.engine.trainer.TrainResult) -> dict[str, torch.Tensor]:
    return result.model.weights()


def assert_close(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert sorted(a) == sorted(b)
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-5, atol=1e-6, msg=key)


@pytest.mark.parametrize("parts", [2, 4])
def test_accumulating_micro_batches_trains_like_the_whole_batch(tmp_path, parts):
    whole = ganzoo.Trainer(ToyGAN(), train=toy_train(steps=6, batch_size=16), data=toy_data(), out=tmp_path / "a").fit()
    cut = toy_train(steps=6, batch_size=16, accumulate=parts)
    split = ganzoo.Trainer(ToyGAN(), train=cut, data=toy_data(), out=tmp_path / "b").fit()
    assert_close(weights_of(whole), weights_of(split))


def test_a_real_plugins_noise_free_update_accumulates_exactly(tmp_path):
    """lstm-gan's MLE phase (teacher forcing: no noise). Its adversarial updates sample token by token, so their
    noise comes in another order when cut into micro-batches: the same distribution, not the same numbers."""
    corpus = tmp_path / "names.txt"
    corpus.write_text("ANNA\nBOB\nCARL\nDORA\nEVE\nFRED\nGUS\nHAL\n" * 4)
    config = {**TEXT_TINY, "pretrain_steps": 5}
    settings = {"steps": 5, "batch_size": 16, "progress": False, "tensorboard": False, "precision": "fp32"}
    data = f"text:{corpus}"
    a = ganzoo.Trainer("lstm-gan", config, settings, data=data, out=tmp_path / "a").fit()
    b = ganzoo.Trainer("lstm-gan", config, {**settings, "accumulate": 4}, data=data, out=tmp_path / "b").fit()
    assert_close(weights_of(a), weights_of(b))


def test_a_batch_that_does_not_split_is_refused(tmp_path):
    with pytest.raises(UsageError, match="accumulate=3 must divide into equal micro-batches"):
        ganzoo.Trainer(ToyGAN(), train=toy_train(batch_size=16, accumulate=3), data=toy_data(), out=tmp_path).fit()
    args = ["train", "dcgan", "--accumulate", "0", "--steps", "1"]
    result = CliRunner().invoke(cli, args, prog_name="ganzoo")
    assert result.exit_code == 2 and "--accumulate" in result.stderr

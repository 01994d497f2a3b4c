"""The contract's rules on classes: the engine fills `num_classes` from labelled data, one plugin can be
conditional on labelled data and unconditional otherwise, and a conditional model without labels is refused
before anything is written."""

from __future__ import annotations

import dataclasses

import pytest
from helpers_engine import ToyConfig, ToyGAN, toy_data, toy_train

import ganzoo
from ganzoo import DataInfo, Trainer, UsageError, option

LABELLED = DataInfo("image", channels=1, resolution=8, num_classes=10)
UNLABELLED = DataInfo("image", channels=1, resolution=8)


@dataclasses.dataclass
class OptionalClassesConfig(ToyConfig):
    num_classes: int | None = option(None, "classes (default: the data's; 0: unconditional)", min=0)


class OptionallyConditional(ToyGAN):
    """Conditional when its `num_classes` holds a positive number (R3GAN-style: one entry point for both)."""

    Config = OptionalClassesConfig


class AlwaysConditional(ToyGAN):
    """Says it is conditional but has no class field and checks nothing itself (the old ZeroDivisionError)."""

    conditional = True


def test_the_engine_fills_num_classes_from_labelled_data_and_the_model_becomes_conditional():
    plugin = OptionallyConditional("optional-classes", snapshot=False)
    labelled = ganzoo.create_model(plugin, data_info=LABELLED)
    assert labelled.config.num_classes == 10 and labelled.conditional and labelled.num_classes == 10
    samples, per_row = labelled.sample_grid(16, seed=0)
    assert len(samples) == 16 and per_row == 10  # one column per class, n samples whatever the classes
    unlabelled = ganzoo.create_model(plugin, data_info=UNLABELLED)
    assert unlabelled.config.num_classes is None and not unlabelled.conditional and unlabelled.num_classes == 0
    assert unlabelled.sample_grid(4, seed=0)[1] is None
    turned_off = ganzoo.create_model(plugin, data_info=LABELLED, num_classes=0)
    assert not turned_off.conditional
    chosen = ganzoo.create_model(plugin, data_info=UNLABELLED, num_classes=3)  # set by the user: conditional
    assert chosen.conditional and chosen.num_classes == 3


def test_a_conditional_model_on_unlabelled_data_is_refused_before_training(tmp_path):
    run_dir = tmp_path / "run"
    plugin = AlwaysConditional("always-conditional", snapshot=False)
    with pytest.raises(UsageError, match="always-conditional is a class-conditional model and this data has no la"):
        Trainer(plugin, train=toy_train(steps=2), data=toy_data(), out=run_dir).fit()
    assert not run_dir.exists() and plugin.calls == []
    with pytest.raises(UsageError, match="class-conditional model and this data has no labels"):
        ganzoo.create_model(plugin, data_info=UNLABELLED)

"""`--set compile=true`: the trained networks run through torch.compile (inductor) with the checkpoint layout
unchanged and the same training as eager to float rounding; without a C++ compiler on the CPU, one clear error."""

from __future__ import annotations

import pytest
import torch
from helpers_engine import ToyGAN, toy_data, toy_train

import ganzoo
from ganzoo.engine import checkpoint as ckpt
from ganzoo.errors import UsageError

pytestmark = pytest.mark.slow  # inductor compiles C++ kernels: tens of seconds


def test_a_compiled_run_trains_like_an_eager_one_and_saves_the_same_layout(tmp_path):
    ganzoo.Trainer(ToyGAN(), train=toy_train(steps=3), data=toy_data(), out=tmp_path / "eager").fit()
    settings = toy_train(steps=3, compile=True, compile_cache=str(tmp_path / "inductor"))
    compiled = ganzoo.Trainer(ToyGAN(), train=settings, data=toy_data(), out=tmp_path / "compiled").fit()
    saved_eager = ckpt.load_weights(tmp_path / "eager" / "checkpoints" / "step-000003")
    saved_compiled = ckpt.load_weights(tmp_path / "compiled" / "checkpoints" / "step-000003")
    assert sorted(saved_eager) == sorted(saved_compiled)  # no _orig_mod. prefixes
    for key in saved_eager:
        torch.testing.assert_close(saved_compiled[key], saved_eager[key], rtol=1e-4, atol=1e-5, msg=key)
    assert any((tmp_path / "inductor").iterdir())  # the cache directory was used
    assert compiled.model.nets["generator"]._compiled_call_impl is not None


def test_without_a_cpp_compiler_the_error_says_so(tmp_path, monkeypatch):
    monkeypatch.setattr("shutil.which", lambda name: None)
    trainer = ganzoo.Trainer(ToyGAN(), train=toy_train(compile=True), data=toy_data(), out=tmp_path / "run")
    with pytest.raises(UsageError, match="compile=true on the CPU needs a C\\+\\+ compiler"):
        trainer.fit()

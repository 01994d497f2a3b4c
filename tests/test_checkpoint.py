"""Checkpoints: pickle-free state round trips, atomic writes, retention, bit-identical resume, resume errors."""

from __future__ import annotations

import json
import os
import pickle
import random

import numpy as np
import pytest
import torch
from helpers_engine import DCGAN_TINY, StopAfter, ToyGAN, dcgan_train, toy_data, toy_train
from safetensors import safe_open
from safetensors.torch import load_file, save_file

import ganzoo
import ganzoo.data.sources
from ganzoo import Trainer, UsageError
from ganzoo.engine import checkpoint as ckpt


def assert_same(a, b, path="state"):
    """Exact structural equality: same container types, same keys, tensors and arrays equal in dtype and value."""
    assert type(a) is type(b), f"{path}: {type(a).__name__} != {type(b).__name__}"
    if isinstance(a, torch.Tensor):
        assert a.dtype == b.dtype and a.shape == b.shape, f"{path}: {a.dtype}{tuple(a.shape)} vs {b.dtype}"
        assert torch.equal(a, b), f"{path}: tensors differ"
    elif isinstance(a, np.ndarray):
        assert a.dtype == b.dtype, f"{path}: {a.dtype} != {b.dtype}"
        assert np.array_equal(a, b), f"{path}: arrays differ"
    elif isinstance(a, dict):
        assert list(a) == list(b), f"{path}: keys {list(a)} != {list(b)}"
        for key in a:
            assert_same(a[key], b[key], f"{path}[{key!r}]")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), f"{path}: length {len(a)} != {len(b)}"
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_same(x, y, f"{path}[{i}]")
    else:
        assert a == b, f"{path}: {a!r} != {b!r}"


def _round_trip(state, tmp_path):
    """flatten -> a real safetensors file with the skeleton as JSON metadata -> unflatten."""
    tensors, skeleton = ckpt.flatten_state(state)
    path = tmp_path / "state.safetensors"
    save_file(tensors, path, {"skeleton": json.dumps(skeleton)})
    with safe_open(path, framework="pt") as handle:
        loaded_skeleton = json.loads(handle.metadata()["skeleton"])
        loaded = {k: handle.get_tensor(k) for k in handle.keys()}  # noqa: SIM118
    return ckpt.unflatten_state(loaded, loaded_skeleton)


# -------------------------------------------------------------------------------------------- flatten state


def test_adam_state_dict_round_trips_exactly(tmp_path):
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 1))
    opt = torch.optim.Adam(net.parameters(), lr=1e-3, betas=(0.5, 0.999))
    for _ in range(3):
        opt.zero_grad()
        net(torch.randn(5, 3)).pow(2).mean().backward()
        opt.step()
    state = opt.state_dict()
    restored = _round_trip(state, tmp_path)
    assert_same(state, restored)
    assert all(isinstance(k, int) for k in restored["state"])
    assert isinstance(restored["param_groups"][0]["betas"], tuple)

    # and an optimizer accepts it and continues exactly as the original
    twin_net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 1))
    twin_net.load_state_dict(net.state_dict())
    twin = torch.optim.Adam(twin_net.parameters())
    twin.load_state_dict(restored)
    x = torch.randn(5, 3)
    for model, optimizer in ((net, opt), (twin_net, twin)):
        optimizer.zero_grad()
        model(x).pow(2).mean().backward()
        optimizer.step()
    assert all(torch.equal(p, q) for p, q in zip(net.parameters(), twin_net.parameters(), strict=True))


def test_grad_scaler_state_round_trips_exactly(tmp_path):
    scaler = torch.amp.GradScaler("cpu", init_scale=1024.0, growth_interval=3)
    param = torch.nn.Parameter(torch.ones(2))
    opt = torch.optim.SGD([param], lr=0.1)
    for _ in range(2):
        opt.zero_grad()
        scaler.scale(param.sum()).backward()
        scaler.step(opt)
        scaler.update()
    state = scaler.state_dict()
    assert state["scale"] == 1024.0 and state["_growth_tracker"] == 2
    restored = _round_trip(state, tmp_path)
    assert_same(state, restored)
    fresh = torch.amp.GradScaler("cpu")
    fresh.load_state_dict(restored)
    assert fresh.state_dict() == state


def test_python_and_numpy_rng_states_round_trip_exactly(tmp_path):
    random.seed(7)
    random.random()
    np.random.seed(7)
    np.random.standard_normal()  # sets the cached gaussian
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": [torch.get_rng_state()]}
    restored = _round_trip(state, tmp_path)
    assert_same(state, restored)

    expected = (random.random(), np.random.random(), np.random.standard_normal())
    random.setstate(restored["python"])
    np.random.set_state(restored["numpy"])
    assert (random.random(), np.random.random(), np.random.standard_normal()) == expected


def test_mixed_values_round_trip(tmp_path):
    state = {
        "none": None,
        "flag": True,
        "int": 3,
        "float": 0.25,
        "text": "adam",
        1: ("a", [1, 2.5, None]),
        "half": torch.arange(4, dtype=torch.float16),
        "bf16": torch.ones(2, 2, dtype=torch.bfloat16),
        "long": torch.tensor(5),
        "array_f32": np.linspace(0, 1, 5, dtype=np.float32),
        "array_u8": np.arange(3, dtype=np.uint8),
    }
    assert_same(state, _round_trip(state, tmp_path))


def test_flatten_rejects_unstorable_values():
    with pytest.raises(TypeError, match="set"):
        ckpt.flatten_state({"bad": {1, 2}})


# ---------------------------------------------------------------------------------------- files on disk


@pytest.fixture
def registered_toy():
    plugin = ganzoo.register(ToyGAN(name="toy-checkpoint-test", snapshot=False), replace=True)
    yield plugin
    ganzoo.unregister(plugin.name)


def test_checkpoint_files_are_safetensors_and_load_without_pickle(tmp_path, monkeypatch, registered_toy):
    result = Trainer(
        registered_toy, train=toy_train(steps=2, ema_decay=0.9), data=toy_data(), out=tmp_path / "run"
    ).fit()
    checkpoint = result.checkpoint
    assert sorted(p.name for p in checkpoint.iterdir()) == ["model.safetensors", "state.safetensors", "trainer.json"]
    with safe_open(checkpoint / "model.safetensors", framework="pt") as handle:
        keys = set(handle.keys())
        assert handle.metadata()["plugin"] == "toy-checkpoint-test"
    assert {"generator.fc.weight", "discriminator.conv.weight", "generator_ema.fc.weight"} <= keys
    with safe_open(checkpoint / "state.safetensors", framework="pt") as handle:
        assert "skeleton" in handle.metadata()
    assert not [p for p in result.run_dir.rglob("*") if p.suffix in (".pt", ".pth", ".pkl", ".bin", ".ckpt")]

    def no_pickle(*args, **kwargs):
        raise AssertionError("pickle was used to load a checkpoint")

    monkeypatch.setattr(pickle, "load", no_pickle)
    monkeypatch.setattr(pickle, "loads", no_pickle)
    monkeypatch.setattr(torch, "load", no_pickle)
    state, info = ckpt.load_training_state(checkpoint)
    assert set(state) == {"optimizers", "scalers", "skips", "rng"}
    assert info["step"] == 2
    model = ganzoo.load_pretrained(result.run_dir)
    for key, tensor in load_file(checkpoint / "model.safetensors").items():
        assert torch.equal(model.weights()[key], tensor)


def test_failed_checkpoint_write_leaves_previous_checkpoint_intact(tmp_path, monkeypatch, registered_toy):
    writes = []
    real_save_file = ckpt.save_file

    def flaky_save_file(tensors, filename, metadata=None):
        writes.append(str(filename))
        if len(writes) == 4:  # the second checkpoint: model.safetensors is written, state.safetensors fails
            raise OSError("disk full (simulated)")
        return real_save_file(tensors, filename, metadata)

    monkeypatch.setattr(ckpt, "save_file", flaky_save_file)
    run_dir = tmp_path / "run"
    trainer = Trainer(registered_toy, train=toy_train(steps=4, checkpoint_every=2), data=toy_data(), out=run_dir)
    with pytest.raises(OSError, match="disk full"):
        trainer.fit()
    assert writes[2].endswith("model.safetensors") and writes[3].endswith("state.safetensors")
    assert ".tmp-step-000004" in writes[3]

    checkpoints = run_dir / "checkpoints"
    assert sorted(p.name for p in checkpoints.iterdir()) == ["latest", "step-000002"]
    assert not list(checkpoints.glob(".tmp-*"))
    assert (checkpoints / "latest").read_text().strip() == "step-000002"
    monkeypatch.undo()
    model = ganzoo.load_pretrained(run_dir)
    assert model.info["step"] == 2
    assert model.info["checkpoint"] == str(checkpoints / "step-000002")


@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o077, 0o600)])
def test_weight_files_follow_the_umask(tmp_path, registered_toy, umask, mode):
    """safetensors writes a private temporary file and renames it (mode 0600); ours follow the umask like
    config.json: checkpoints, checkpoints/best and save_pretrained directories."""
    previous = os.umask(umask)
    try:
        result = Trainer(registered_toy, train=toy_train(steps=1), data=toy_data(), out=tmp_path / "run").fit()
        best = ckpt.save_weights_dir(tmp_path / "best", result.model.weights(), {"step": 1}, {"plugin": "toy"})
        saved = ganzoo.save_pretrained(result.model, tmp_path / "saved")
    finally:
        os.umask(previous)
    files = [*result.checkpoint.iterdir(), *best.iterdir(), *saved.iterdir(), result.run_dir / "config.json"]
    assert {"model.safetensors", "state.safetensors", "trainer.json", "README.md"} <= {p.name for p in files}
    assert {str(p): os.stat(p).st_mode & 0o777 for p in files} == {str(p): mode for p in files}


def test_keep_checkpoints_keeps_the_newest(tmp_path):
    result = Trainer(
        ToyGAN(snapshot=False),
        train=toy_train(steps=6, checkpoint_every=1, keep_checkpoints=2),
        data=toy_data(),
        out=tmp_path / "run",
    ).fit()
    checkpoints = result.run_dir / "checkpoints"
    assert [p.name for p in ckpt.list_checkpoints(checkpoints)] == ["step-000005", "step-000006"]
    assert sorted(p.name for p in checkpoints.iterdir()) == ["latest", "step-000005", "step-000006"]
    assert ckpt.latest_checkpoint(checkpoints) == checkpoints / "step-000006"
    assert ckpt.find_checkpoint(result.run_dir) == checkpoints / "step-000006"


# ------------------------------------------------------------------------------------------------- resume


def _final_state(checkpoint):
    weights = load_file(checkpoint / "model.safetensors")
    state, info = ckpt.load_training_state(checkpoint)
    return weights, state, info


@pytest.mark.parametrize("precision", ["fp32", pytest.param("fp16", marks=pytest.mark.slow)])  # fp16 is slow on CPU
def test_resume_is_bit_identical(tmp_path, precision):
    train = dcgan_train(steps=12, checkpoint_every=4, precision=precision, ema_decay=0.9)
    a = Trainer("dcgan", config=DCGAN_TINY, train=train, data="mnist-4k", out=tmp_path / "a").fit()
    assert a.step == 12

    b_dir = tmp_path / "b"
    with pytest.raises(KeyboardInterrupt):
        Trainer("dcgan", config=DCGAN_TINY, train=train, data="mnist-4k", out=b_dir, callbacks=[StopAfter(6)]).fit()
    assert ckpt.latest_checkpoint(b_dir / "checkpoints") == b_dir / "checkpoints" / "step-000004"
    b = Trainer("dcgan", config=DCGAN_TINY, train=train, data="mnist-4k", out=b_dir, resume=True).fit()
    assert b.step == 12
    assert a.checkpoint.name == b.checkpoint.name == "step-000012"

    weights_a, state_a, info_a = _final_state(a.checkpoint)
    weights_b, state_b, info_b = _final_state(b.checkpoint)
    assert any(k.startswith("generator_ema.") for k in weights_a)
    assert weights_a.keys() == weights_b.keys()
    differing = [k for k in weights_a if not torch.equal(weights_a[k], weights_b[k])]
    assert not differing, f"{len(differing)} of {len(weights_a)} tensors differ after resume, e.g. {differing[:3]}"
    assert_same(state_a["optimizers"], state_b["optimizers"], "optimizers")
    assert_same(state_a["scalers"], state_b["scalers"], "scalers")
    if precision == "fp16":
        assert set(state_a["scalers"]) == {"discriminator", "generator"}
        assert all("scale" in s for s in state_a["scalers"].values())
    assert_same(state_a["rng"], state_b["rng"], "rng")
    # (the files' checksums may differ: safetensors writes its metadata keys in no fixed order)
    assert {k: v for k, v in info_a.items() if k != "files"} == {k: v for k, v in info_b.items() if k != "files"}


@pytest.fixture
def toy_data_spec(monkeypatch):
    """The toy data under a registered spec name, so that a resumed run can find it again."""
    monkeypatch.setitem(ganzoo.data.sources._NAMED, "toy-data", lambda spec: toy_data())
    return "toy-data"


def test_resume_continues_from_latest_checkpoint_and_appends_metrics(tmp_path, registered_toy, toy_data_spec):
    run_dir = tmp_path / "run"
    train = toy_train(steps=6, checkpoint_every=2, log_every=1)
    with pytest.raises(KeyboardInterrupt):
        Trainer(registered_toy, train=train, data=toy_data_spec, out=run_dir, callbacks=[StopAfter(3)]).fit()
    registered_toy.calls.clear()
    result = Trainer(registered_toy, train=train, out=run_dir, resume=True).fit()
    assert result.step == 6
    # it restarted after step 2 (the newest checkpoint), so iterations 3..6 ran (0-based ctx.step 2..5)
    assert sorted({c["step"] for c in registered_toy.calls}) == [2, 3, 4, 5]
    steps = [json.loads(line)["step"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4, 5, 6]  # the step-3 line logged before the interruption was dropped


def test_resume_with_the_same_data_source_object(tmp_path):
    """`Trainer(data=...)` accepts a DataSource; resuming with the same source must work too."""
    run_dir = tmp_path / "run"
    source = toy_data()
    train = toy_train(steps=4, checkpoint_every=2)
    with pytest.raises(KeyboardInterrupt):
        Trainer(ToyGAN(snapshot=False), train=train, data=source, out=run_dir, callbacks=[StopAfter(3)]).fit()
    result = Trainer(ToyGAN(snapshot=False), train=train, data=source, out=run_dir, resume=True).fit()
    assert result.step == 4


def test_resume_with_changed_model_override_is_a_usage_error(tmp_path):
    run_dir = tmp_path / "run"
    Trainer("dcgan", config=DCGAN_TINY, train=dcgan_train(steps=1), data="mnist-4k", out=run_dir).fit()
    changed = {**DCGAN_TINY, "g_width": 16}
    with pytest.raises(UsageError, match="g_width"):
        Trainer("dcgan", config=changed, train=dcgan_train(steps=2), data="mnist-4k", out=run_dir, resume=True).fit()
    with pytest.raises(UsageError, match="data"):
        Trainer("dcgan", config=DCGAN_TINY, train=dcgan_train(steps=2), data="cifar10", out=run_dir, resume=True).fit()
    # the same overrides are accepted
    result = Trainer("dcgan", config=DCGAN_TINY, train=dcgan_train(steps=2), out=run_dir, resume=True).fit()
    assert result.step == 2


def test_fresh_run_into_a_directory_with_checkpoints_is_a_usage_error(tmp_path):
    run_dir = tmp_path / "run"
    Trainer(ToyGAN(snapshot=False), train=toy_train(steps=1), data=toy_data(), out=run_dir).fit()
    with pytest.raises(UsageError, match="already holds checkpoints"):
        Trainer(ToyGAN(snapshot=False), train=toy_train(steps=1), data=toy_data(), out=run_dir).fit()
    assert [p.name for p in ckpt.list_checkpoints(run_dir / "checkpoints")] == ["step-000001"]


def test_resume_without_a_run_is_a_usage_error(tmp_path):
    with pytest.raises(UsageError, match=r"config\.json"):
        Trainer(ToyGAN(snapshot=False), train=toy_train(), data=toy_data(), out=tmp_path / "none", resume=True).fit()

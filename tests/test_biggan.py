"""The biggan plugin: shapes, the hierarchical latent, self-attention, orthogonal regularisation (by hand and
against finite differences), and the conformance kit (class re-heading included)."""

from __future__ import annotations

import json

import pytest
import torch
from helpers_engine import dcgan_train
from torch import nn

import ganzoo
from ganzoo import DataInfo, Trainer
from ganzoo.testing import conformance_tests
from ganzoo_plugins.biggan.networks import SelfAttention, orthogonal_penalty

TINY = {"latent_dim": 8, "shared_dim": 4, "g_width": 8, "d_width": 8}
DIGITS = DataInfo("image", channels=1, resolution=28, num_classes=10)

test_conformance = conformance_tests("biggan", "mnist-4k?n=256", TINY)


@pytest.mark.parametrize(("resolution", "channels"), [(32, 1), (64, 3)])
def test_shapes_the_latent_chunks_and_the_blocks(resolution, channels):
    model = ganzoo.create_model("biggan", data_info=DIGITS, resolution=resolution, channels=channels, **TINY)
    g, d = model.nets["generator"], model.nets["discriminator"]
    assert model.config.num_classes == 10 and model.conditional
    assert g.chunks == resolution.bit_length() - 2 and len(g.blocks) == g.chunks - 1  # one chunk per block + input
    labels = torch.tensor([0, 3, 9])
    images = model.sample(3, seed=0, condition=labels)
    assert images.shape == (3, channels, resolution, resolution) and images.abs().max() <= 1
    assert d(images, labels).shape == (3,)
    assert len(model.plugin.frozen_d_blocks(model.nets)) == len(d.blocks) == resolution.bit_length() - 3
    assert "16" in g.attention and len(d.attention) == 1
    assert ganzoo.create_model("biggan", data_info=DIGITS, **TINY).config.resolution == 32  # 28 px rounded up


def test_every_block_sees_its_own_chunk_of_z():
    model = ganzoo.create_model("biggan", data_info=DIGITS, **TINY)
    g = model.nets["generator"].eval()
    z, labels = torch.randn(2, 8), torch.tensor([1, 1])
    with torch.no_grad():
        base = g(z, labels)
        for chunk in range(g.chunks):  # changing any one chunk changes the image
            moved = z.clone()
            moved[:, chunk * g.chunk : (chunk + 1) * g.chunk] += 1.0
            assert not torch.allclose(g(moved, labels), base)
        assert not torch.allclose(g(z, torch.tensor([2, 2])), base)  # and so does the class


def test_self_attention_starts_as_the_identity():
    attention = SelfAttention(16)
    x = torch.randn(2, 16, 8, 8)
    assert torch.equal(attention(x), x)
    with torch.no_grad():
        attention.gate.fill_(1.0)
    assert not torch.allclose(attention(x), x)


def test_orthogonal_penalty_by_hand_and_against_finite_differences():
    net = nn.Linear(3, 2, bias=False)
    with torch.no_grad():
        net.weight.copy_(torch.tensor([[1.0, 2.0, 0.0], [0.0, 1.0, 1.0]]))  # off-diagonal of W W^T: 2 and 2
    assert orthogonal_penalty(net).item() == pytest.approx(8.0)
    with torch.no_grad():
        net.weight.copy_(torch.tensor([[3.0, 0.0, 0.0], [0.0, 0.0, 5.0]]))  # orthogonal rows, any norms: 0
    assert orthogonal_penalty(net).item() == 0.0
    conv = nn.Conv2d(2, 3, 3).double()
    weight = conv.weight

    def penalty(w: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            weight.copy_(w)
        return orthogonal_penalty(conv)

    analytic = torch.autograd.grad(orthogonal_penalty(conv), weight)[0]
    start = weight.detach().clone()
    for index in [(0, 0, 0, 0), (1, 1, 2, 1), (2, 0, 1, 2)]:
        step = torch.zeros_like(start)
        step[index] = 1e-6
        numeric = (penalty(start + step) - penalty(start - step)) / 2e-6
        assert analytic[index].item() == pytest.approx(numeric.item(), rel=1e-5, abs=1e-8)


def test_training_logs_the_orthogonal_penalty_and_two_d_updates(tmp_path):
    out = tmp_path / "run"
    Trainer("biggan", TINY, dcgan_train(steps=2, log_every=1), data="mnist-4k?n=64", out=out).fit()
    lines = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert all(line["ortho_penalty"] > 0 for line in lines)
    assert json.loads((out / "config.json").read_text())["config"]["d_steps"] == 2
    assert [
        s.repeats for s in ganzoo.get_plugin("biggan").schedule(ganzoo.create_model("biggan", DIGITS, **TINY).config)
    ] == [2, 1]


class _Weights:
    """Stands in for a module: `orthogonal_penalty` reads `named_parameters()` only, so gradcheck can feed it
    float64 tensors of its own."""

    def __init__(self, **tensors: torch.Tensor) -> None:
        self.tensors = tensors

    def named_parameters(self):
        return iter(self.tensors.items())


def test_orthogonal_penalty_gradcheck_over_several_weights_on_the_raw_weights_under_spectral_norm():
    from ganzoo_plugins.biggan.networks import snlinear

    torch.manual_seed(0)
    conv, linear = torch.randn(3, 2, 3, 3, dtype=torch.float64), torch.randn(4, 5, dtype=torch.float64)
    embed, bias = torch.randn(6, 4, dtype=torch.float64), torch.randn(4, dtype=torch.float64)
    inputs = tuple(t.requires_grad_(True) for t in (conv, linear, embed, bias))

    def penalty(conv, linear, embed, bias):  # embeddings and 1-d tensors are left out
        return orthogonal_penalty(_Weights(conv=conv, linear=linear, embed=embed, bias=bias))

    assert torch.autograd.gradcheck(penalty, inputs, eps=1e-6, atol=1e-6)
    conv_grad, linear_grad, embed_grad, bias_grad = torch.autograd.grad(penalty(*inputs), inputs, allow_unused=True)
    assert embed_grad is None and bias_grad is None
    for weight, grad in ((conv, conv_grad), (linear, linear_grad)):  # the closed form 4 (W W^T * (1 - I)) W
        w = weight.detach().flatten(1)
        off = (w @ w.t()) * (1 - torch.eye(len(w), dtype=w.dtype))
        assert torch.allclose(grad.flatten(1), 4 * off @ w)

    layer = snlinear(5, 4)  # spectral norm divides the weight by sigma; the penalty sees the raw weight
    with torch.no_grad():
        layer.parametrizations.weight.original.copy_(3 * torch.randn(4, 5))
    raw = layer.parametrizations.weight.original
    assert orthogonal_penalty(layer).item() == pytest.approx(orthogonal_penalty(_Weights(w=raw)).item(), rel=1e-6)
    assert orthogonal_penalty(layer).item() > 10 * orthogonal_penalty(_Weights(w=layer.weight.detach())).item()
    (grad,) = torch.autograd.grad(orthogonal_penalty(layer), raw)
    assert grad.abs().sum() > 0

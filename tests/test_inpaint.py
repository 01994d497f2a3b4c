"""The inpaint plugin: shapes, gated convolutions, the L1 split between holes and known pixels, exact known
pixels in its outputs, a generator whose gradient survives outputs far out of range, and the conformance kit on
tiny widths."""

from __future__ import annotations

import pytest
import torch

import ganzoo
from ganzoo import DataInfo, StepContext
from ganzoo.testing import conformance_tests
from ganzoo_plugins.inpaint.networks import GatedConv2d

TINY = {"g_width": 4, "d_width": 4, "d_layers": 2, "dilated": 1}
PAIRS = DataInfo(
    modality="image-to-image", channels=1, resolution=28, extras={"paired": True, "task": "inpaint", "mask": True}
)

test_conformance = conformance_tests("inpaint", "mnist-4k?n=64&task=inpaint", TINY)


def _batch(n: int = 3, channels: int = 1, size: int = 28) -> dict[str, torch.Tensor]:
    target = torch.rand(n, channels, size, size, generator=torch.Generator().manual_seed(0)) * 2 - 1
    mask = torch.zeros(n, 1, size, size)
    mask[:, :, 8:20, 6:18] = 1
    return {"source": target * (1 - mask), "target": target, "mask": mask}


@pytest.mark.parametrize(("size", "channels"), [(28, 1), (64, 3)])
def test_shapes_and_known_pixels_kept(size, channels):
    info = DataInfo(**{**PAIRS.to_dict(), "channels": channels, "resolution": size})
    model = ganzoo.create_model("inpaint", data_info=info, **TINY)
    batch = _batch(2, channels, size)
    scores = model.nets["discriminator"](torch.cat([batch["target"], batch["mask"]], dim=1))
    assert scores.shape[0] == 2 and scores.ndim == 2
    filled = model.enhance(batch["source"], batch["mask"])
    assert filled.shape == (2, channels, size, size)
    known = batch["mask"].expand_as(filled) == 0
    assert torch.equal(filled[known], batch["source"][known])
    assert not torch.equal(filled[~known], batch["source"][~known])


def test_a_gated_convolution_is_elu_features_times_a_sigmoid_gate():
    layer = GatedConv2d(2, 3)
    x = torch.randn(4, 2, 8, 8)
    features, gate = layer.conv(x).chunk(2, dim=1)
    assert torch.allclose(layer(x), torch.nn.functional.elu(features) * torch.sigmoid(gate))


def test_the_generator_loss_weighs_holes_and_known_pixels_apart():
    """An output exact on the known pixels and wrong in the hole has zero valid-L1 and a positive hole-L1."""
    plugin = ganzoo.get_plugin("inpaint")
    model = ganzoo.create_model("inpaint", data_info=PAIRS, **TINY)
    batch = _batch()
    plugin.generate = lambda nets, source, mask: batch["target"] * (1 - mask) + 0.5 * mask  # type: ignore[method-assign]
    try:
        ctx = StepContext(0, torch.device("cpu"), "fp32", model.config, PAIRS, 3)
        _, logs = plugin.g_loss(model.nets, batch, ctx)
    finally:
        del plugin.generate
    expected = (0.5 - batch["target"]).abs()[batch["mask"].bool().expand_as(batch["target"])].mean()
    assert logs["l1_valid"] == 0 and logs["l1_hole"] == pytest.approx(expected.item(), rel=1e-5)


def test_the_generator_keeps_its_gradient_where_its_output_is_far_out_of_range():
    """Far below -1 the output is -1 and the L1 gradient still reaches every layer. With the tanh it had, such a
    generator (where digits training drove it within 100 iterations) got exactly zero gradient and stayed black."""
    model = ganzoo.create_model("inpaint", data_info=PAIRS, **TINY)
    generator = model.nets["generator"]
    with torch.no_grad():
        generator.decoder[-1].bias.fill_(-50.0)
    batch = _batch()
    output = generator(batch["source"], batch["mask"])
    assert torch.equal(output, torch.full_like(output, -1.0))
    (output - batch["target"]).abs().mean().backward()
    assert generator.decoder[-1].bias.grad.item() < 0  # a descent step raises the outputs towards the targets
    assert generator.encoder[0].conv.weight.grad.abs().sum() > 0

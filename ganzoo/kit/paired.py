"""The plugin kit for paired image-to-image GANs (pix2pix, super-resolution, inpainting): all but the networks and
the two loss functions.

`PairedImageGAN` is a `GANPlugin` for one generator (role `generator`), one discriminator (role `d_role`) and the
`examples` role, which trains nothing: it keeps the first training pairs (uint8 buffers, saved with the weights) for
sample grids. A plugin sets its class attributes (name, Config, `tasks`), writes `build_networks`, `d_loss` and
`g_loss` (both get a batch of pairs: `source`, `target`, and `mask` for inpainting), and inherits:

- `resolve_config`: paired data of one of `tasks` only (anything else is refused in one line); the config fields
  it has among `resolution`, `channels`, `source_channels` and `scale` are filled from the data;
- `schedule`: the discriminator update, then the generator update, each on a batch of pairs;
- `optimizers`: Adam with `lr_g` / `lr_d` (or one `lr`) and `betas`;
- `enhance(nets, source, mask)`: the generator's output (`generate`), with the known pixels of an inpainting
  source kept exactly (`composite`); `translate(nets, images, "a2b")` is the same for `ganzoo translate`;
- `sample`: rows of (input shown at the output's size, output, target) from the stored pairs;
- `frozen_d_blocks`: the discriminator's `blocks`.

This module does not import torch at import time (so `ganzoo list` stays fast); the modules and tensor helpers it
uses are in `ganzoo.kit.pairs`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from ganzoo.errors import UsageError
from ganzoo.kit import adam_optimizers
from ganzoo.plugin import DataInfo, GANPlugin, OptimizerSpec, StepContext, UpdateStep

if TYPE_CHECKING:
    import torch
    from torch import nn

EXAMPLES = 8
"""Training pairs kept for sample grids."""


class PairedImageGAN(GANPlugin):
    """A paired image-to-image GAN: subclass it and write `build_networks`, `d_loss` and `g_loss`."""

    modality: ClassVar[str] = "image-to-image"
    tasks: ClassVar[tuple[str, ...]] = ()
    """The data tasks (`extras["task"]` of paired data) the model learns: sr2x, sr4x, inpaint, denoise, colorize,
    paired (pairs from disk)."""
    default_resolution: ClassVar[int] = 64
    d_role: ClassVar[str] = "discriminator"
    grid_columns: ClassVar[int | None] = 3
    default_data: ClassVar[str | None] = None
    train_defaults: ClassVar[Mapping[str, Any]] = {"steps": 2000, "batch_size": 16, "ema_decay": 0.999}

    def build_networks(self, config: Any, data_info: DataInfo) -> dict[str, nn.Module]:
        """The generator and the discriminator (roles `generator` and `d_role`)."""
        raise NotImplementedError(f"plugin {self.name!r} does not implement build_networks()")

    def d_loss(self, nets: Mapping[str, nn.Module], batch: Mapping[str, Any], ctx: StepContext) -> Any:
        raise NotImplementedError(f"plugin {self.name!r} does not implement d_loss()")

    def g_loss(self, nets: Mapping[str, nn.Module], batch: Mapping[str, Any], ctx: StepContext) -> Any:
        raise NotImplementedError(f"plugin {self.name!r} does not implement g_loss()")

    def generate(self, nets: Mapping[str, nn.Module], source: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """The generator's raw output for `source` (and `mask`, inpainting); default: `generator(source)`, or
        `generator(source, mask)` when a mask is given."""
        g = nets["generator"]
        return g(source) if mask is None else g(source, mask)

    def resolve_config(self, config: Any, data_info: DataInfo) -> Any:
        extras = data_info.extras
        task = extras.get("task")
        if data_info.modality != "image-to-image" or not extras.get("paired") or task not in self.tasks:
            kind = f"task={task}" if extras.get("paired") else f"{data_info.modality} data"
            examples = {"sr2x": "photos?task=sr2x", "sr4x": "photos?task=sr4x", "paired": "paired:ROOT"}
            accepted = ", ".join(examples.get(t, f"photos?task={t}") for t in self.tasks)
            raise UsageError(f"{self.name} learns pairs of {', '.join(self.tasks)}, not {kind}; accepted: {accepted}")
        filled: dict[str, Any] = {}
        if hasattr(config, "resolution"):
            filled["resolution"] = config.resolution or data_info.resolution or self.default_resolution
        if hasattr(config, "channels"):
            filled["channels"] = config.channels or data_info.channels or 3
        if hasattr(config, "source_channels"):
            # degradations are made from the target at the model's channels (colorize: its luma); pairs from disk
            # keep their sources' own channels
            own = extras.get("source_channels") if task == "paired" else None
            filled["source_channels"] = 1 if task == "colorize" else own or filled.get("channels", config.channels) or 3
        if hasattr(config, "scale"):
            filled["scale"] = int(extras.get("scale") or 1)
        return dataclasses.replace(config, **filled)

    def validate(self, config: Any) -> None:
        resolution, scale = getattr(config, "resolution", None), getattr(config, "scale", 1) or 1
        if resolution is not None and resolution % scale:
            raise UsageError(f"{self.name} resolution={resolution} must be a multiple of the scale {scale}")

    def build(self, config: Any, data_info: DataInfo) -> dict[str, nn.Module]:
        from ganzoo.kit.pairs import PairExamples

        nets = self.build_networks(config, data_info)
        resolution, scale = config.resolution, getattr(config, "scale", 1) or 1
        source_channels = getattr(config, "source_channels", config.channels)
        source_shape = (source_channels, resolution // scale, resolution // scale)
        nets["examples"] = PairExamples(EXAMPLES, source_shape, (config.channels, resolution, resolution))
        return nets

    def schedule(self, config: Any) -> list[UpdateStep]:
        return [
            UpdateStep(self.d_role, (self.d_role,), self._remembering_d_loss),
            UpdateStep("generator", ("generator",), self.g_loss),
        ]

    def _remembering_d_loss(self, nets: Mapping[str, nn.Module], batch: Mapping[str, Any], ctx: StepContext) -> Any:
        nets["examples"].remember(batch)
        return self.d_loss(nets, batch, ctx)

    def optimizers(self, config: Any) -> dict[str, OptimizerSpec]:
        return adam_optimizers(config, self.d_role)

    def enhance(
        self, nets: Mapping[str, nn.Module], source: torch.Tensor, mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        from ganzoo.kit.pairs import composite

        device = next(nets["generator"].parameters()).device
        source = source.to(device)
        mask = None if mask is None else mask.to(device)
        return composite(self.generate(nets, source, mask), source, mask).clamp(-1, 1)

    def translate(self, nets: Mapping[str, nn.Module], images: torch.Tensor, direction: str) -> torch.Tensor:
        if direction != "a2b":
            raise UsageError(f"{self.name} translates one way (a2b, source to target), not {direction}")
        if bool(nets["examples"].masked):
            raise UsageError(f"this {self.name} fills holes given by a mask: use ganzoo enhance with --mask")
        return self.enhance(nets, images)

    def sample(
        self,
        nets: Mapping[str, nn.Module],
        n: int,
        condition: Any = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Rows of three images from the stored training pairs: the input (at the output's size), the output and
        the target; max(1, n // 3) rows (at most the pairs kept), picked by `generator`."""
        import torch

        from ganzoo.kit.pairs import shown_at

        if condition is not None:
            raise UsageError(f"{self.name} enhances given images and takes no condition")
        pairs = nets["examples"].pairs()
        if len(pairs["source"]) == 0:
            raise UsageError(f"this {self.name} has no stored pairs yet (they are kept from the first training batch)")
        rows = min(max(1, n // 3), len(pairs["source"]))
        pick = torch.randperm(len(pairs["source"]), generator=generator, device=pairs["source"].device)[:rows]
        source, target = pairs["source"][pick], pairs["target"][pick]
        output = self.enhance(nets, source, pairs["mask"][pick] if "mask" in pairs else None)
        shown = shown_at(source, target.shape[-1], target.shape[1])
        return torch.stack([shown, output.to(target.device), target], dim=1).flatten(0, 1)

    def frozen_d_blocks(self, nets: Mapping[str, nn.Module]) -> list[nn.Module]:
        return list(getattr(nets[self.d_role], "blocks", ()))


__all__ = ["EXAMPLES", "PairedImageGAN"]

"""`GANModel`: a plugin, its resolved config and its networks (EMA copies included), ready to sample.

`create_model` builds a fresh one; `load_run` rebuilds one from a run directory or a checkpoint (`ganzoo.hub`'s
`load_pretrained` is the public entry point that also takes Hub repos). Loading never runs code from the files:
the plugin named in config.json must be installed.
"""

from __future__ import annotations

import contextlib
import dataclasses
import re
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ganzoo import __version__
from ganzoo.config import config_to_dict, replace_config, validate_config
from ganzoo.engine.checkpoint import (
    TRAINER_FILE,
    find_checkpoint,
    load_weights,
    read_json,
    read_trainer_info,
    split_roles,
)
from ganzoo.errors import GanzooError, PluginError, UsageError
from ganzoo.kit import slerp
from ganzoo.plugin import DataInfo, GANPlugin
from ganzoo.registry import get_plugin, list_models

CONFIG_FILE = "config.json"
EMA_SUFFIX = "_ema"


@dataclasses.dataclass
class GANModel:
    plugin: GANPlugin
    config: Any
    data_info: DataInfo
    nets: dict[str, nn.Module]
    ema: dict[str, nn.Module] = dataclasses.field(default_factory=dict)
    info: dict[str, Any] = dataclasses.field(default_factory=dict)
    """What is known of the model's origin: `source`, `step`, `data` (spec); from a run `checkpoint` and `run_dir`;
    from the Hub `repo_id`, `revision` and the resolved `commit`; `record`, the config.json it was rebuilt from."""

    @property
    def conditional(self) -> bool:
        """Whether this model samples by class (`GANPlugin.is_conditional` of its config)."""
        return self.plugin.is_conditional(self.config)

    @property
    def num_classes(self) -> int:
        """The classes a conditional model draws from (the data's, else its config's); 0 when unconditional."""
        if not self.conditional:
            return 0
        field = self.plugin.num_classes_field
        return self.data_info.num_classes or (getattr(self.config, field, None) if field else None) or 0

    @property
    def device(self) -> torch.device:
        return next(p.device for net in self.nets.values() for p in net.parameters())

    def to(self, device: torch.device | str) -> GANModel:
        for module in [*self.nets.values(), *self.ema.values()]:
            module.to(device)
        return self

    def sampling_nets(self, use_ema: bool = True) -> dict[str, nn.Module]:
        """The networks with each generator replaced by its EMA copy (when there is one and `use_ema`)."""
        nets = dict(self.nets)
        if use_ema:
            nets.update(self.ema)
        return nets

    @contextlib.contextmanager
    def _sampling(self, use_ema: bool) -> Iterator[dict[str, nn.Module]]:
        """The sampling networks in eval mode for the block, then back in the modes they were in."""
        nets = self.sampling_nets(use_ema)
        modes = {role: net.training for role, net in nets.items()}
        for net in nets.values():
            net.eval()
        try:
            yield nets
        finally:
            for role, net in nets.items():
                net.train(modes[role])

    def _generator(self, seed: int | None) -> torch.Generator | None:
        return None if seed is None else torch.Generator(device=self.device).manual_seed(seed)

    @torch.no_grad()
    def sample(
        self, n: int, seed: int | None = None, condition: Any = None, use_ema: bool = True, **options: Any
    ) -> torch.Tensor | list[str]:
        """n samples from the (EMA) generator in eval mode; images in [-1, 1] on the CPU, or strings. `options`
        go to the plugin's `sample` (text: `temperature`, `top_k`, `top_p`)."""
        with self._sampling(use_ema) as nets:
            out = self.plugin.sample(nets, n, condition=condition, generator=self._generator(seed), **options)
        return out.float().cpu() if isinstance(out, torch.Tensor) else out

    @torch.no_grad()
    def enhance(self, source: torch.Tensor, mask: torch.Tensor | None = None, use_ema: bool = True) -> torch.Tensor:
        """A paired image-to-image model's outputs for `source` (and `mask`) in eval mode, on the CPU (the plugin's
        `enhance`: e.g. the enlarged, denoised or filled images)."""
        with self._sampling(use_ema) as nets:
            out = self.plugin.enhance(nets, source.to(self.device), None if mask is None else mask.to(self.device))
        return out.float().cpu()

    @torch.no_grad()
    def translate(self, images: torch.Tensor, direction: str = "a2b", use_ema: bool = True) -> torch.Tensor:
        """An unpaired image-to-image model's translations of `images` (one domain's, in [-1, 1], at the model's
        resolution) to the other domain (`direction` a2b or b2a) in eval mode, on the CPU."""
        with self._sampling(use_ema) as nets:
            out = self.plugin.translate(nets, images.to(self.device), direction)
        return out.float().cpu()

    def _grid_condition(self, n: int, label: int | None) -> tuple[torch.Tensor | None, int | None]:
        """The labels of n grid images and the images per row: for a conditional model, `label`'s class (a
        free layout), or without one the classes cycling 0, 1, ..., K-1 (one column per class); otherwise no
        labels, in rows of the plugin's `grid_columns`."""
        classes = self.num_classes
        if not self.conditional:
            if label is not None:
                raise UsageError(f"{self.plugin.name} is not a conditional model; it takes no label")
            return None, self.plugin.grid_columns
        if label is None:
            return (torch.arange(n) % classes).to(self.device), min(n, classes)
        if not 0 <= label < classes:
            names = [str(name) for name in self.data_info.extras.get("class_names") or []]
            renamed = names and names != [str(i) for i in range(classes)]
            named = f" ({', '.join(f'{i}: {name}' for i, name in enumerate(names))})" if renamed else ""
            raise UsageError(f"label {label} is not one of the model's classes 0-{classes - 1}{named}")
        return torch.full((n,), label, dtype=torch.long, device=self.device), None

    def sample_grid(
        self, n: int, seed: int | None = None, label: int | None = None, use_ema: bool = True, **options: Any
    ) -> tuple[torch.Tensor | list[str], int | None]:
        """n samples for a grid and its images per row: for a conditional model, `label`'s class only, or (no
        label) one column per class (the labels cycle 0, 1, ..., K-1); otherwise in rows of the plugin's
        `grid_columns` (None: a square grid). `options` go to `sample` (e.g. `truncation`)."""
        condition, per_row = self._grid_condition(n, label)
        return self.sample(n, seed=seed, condition=condition, use_ema=use_ema, **options), per_row

    @torch.no_grad()
    def interpolate(
        self,
        frames: int,
        n: int = 1,
        seed: int = 0,
        label: int | None = None,
        keypoints: int = 4,
        use_ema: bool = True,
        **options: Any,
    ) -> tuple[torch.Tensor, int | None]:
        """An animation through latent space, (frames, n, C, H, W) in [-1, 1] on the CPU, and its images per row
        (as `sample_grid`'s, whose `label` it takes: each walk keeps its class). Each of the n walks is a loop of
        spherical interpolations (`ganzoo.kit.slerp`) through `keypoints` latents (at most `frames`): keypoint i
        holds the latents `sample(n, seed=seed + i)` draws, so frame 0 is `sample_grid(n, seed, label)`, and every
        frame draws its other randomness (stylegan2's noise inputs) as frame 0 does, so only the latents move.
        `options` go to the plugin's `latents` and `synthesize` (e.g. `truncation`)."""
        if frames < 2 or keypoints < 2:
            raise UsageError(f"an interpolation needs 2 frames and 2 keypoints or more, got {frames} and {keypoints}")
        condition, per_row = self._grid_condition(n, label)
        with self._sampling(use_ema) as nets:
            if self.plugin.latent_size(nets) is None:
                raise UsageError(
                    f"{self.plugin.name} draws its samples from no latent to interpolate; --interpolate needs an "
                    "image GAN such as dcgan or stylegan2"
                )
            generators = [self._generator(seed + i) for i in range(min(keypoints, frames))]
            keys = [self.plugin.latents(nets, n, generator, **options) for generator in generators]
            first, noise = generators[0], generators[0].get_state()
            images = []
            for z in _loop(keys, frames):
                first.set_state(noise)
                images.append(self.plugin.synthesize(nets, z, condition, first, **options).float().cpu())
        return torch.stack(images), per_row

    @torch.no_grad()
    def style_mixing_grid(
        self, rows: int = 4, columns: int = 4, seed: int = 0, use_ema: bool = True, **options: Any
    ) -> torch.Tensor:
        """StyleGAN's style-mixing figure (Karras et al. 2019, figure 3) as (rows + 1) (columns + 1) images in
        [-1, 1] on the CPU, `columns + 1` per row: a blank corner, the column sources along the top, then each row
        source followed by its mixes (its coarse styles with each column's fine ones; `GANPlugin.mix_styles`).
        `options` go to `mix_styles` (e.g. `truncation`)."""
        if rows < 1 or columns < 1:
            raise UsageError(f"a style-mixing grid needs a row and a column at least, got {rows}x{columns}")
        with self._sampling(use_ema) as nets:
            row_sources, column_sources, mixes = self.plugin.mix_styles(
                nets, rows, columns, self._generator(seed), **options
            )
        header = torch.cat([torch.ones_like(column_sources[:1]), column_sources])  # white corner
        body = torch.cat([row_sources[:, None], mixes], dim=1).flatten(0, 1)
        return torch.cat([header, body]).float().cpu()

    def weights(self) -> dict[str, torch.Tensor]:
        """Every tensor of every network keyed `role.name`, EMA copies as `role_ema.name`."""
        flat = {}
        for role, module in [*self.nets.items(), *((r + EMA_SUFFIX, m) for r, m in self.ema.items())]:
            for key, tensor in module.state_dict().items():
                flat[f"{role}.{key}"] = tensor
        return flat

    def load_weights(self, weights: Mapping[str, torch.Tensor], origin: str) -> None:
        """Load `weights()`-style tensors strictly: every missing, unexpected or mis-shaped key is listed in one
        error and nothing is loaded. A file without EMA copies starts each EMA from its generator."""
        modules = {**self.nets, **{r + EMA_SUFFIX: m for r, m in self.ema.items()}}
        expected = {f"{role}.{key}": t for role, m in modules.items() for key, t in m.state_dict().items()}
        ema_missing = {r for r in modules if r.endswith(EMA_SUFFIX) and r not in split_roles(weights)}
        missing = [k for k in expected if k not in weights and k.partition(".")[0] not in ema_missing]
        unexpected = [k for k in weights if k not in expected]
        shapes = [
            f"{k} {tuple(weights[k].shape)} (the model has {tuple(t.shape)})"
            for k, t in expected.items()
            if k in weights and weights[k].shape != t.shape
        ]
        problems = [
            f"{label} {_listed(keys)}"
            for label, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", shapes))
            if keys
        ]
        if problems:
            raise GanzooError(
                f"the weights in {origin} do not match the {self.plugin.name} model: {'; '.join(problems)}"
            )
        non_finite = [k for k, t in weights.items() if t.is_floating_point() and not bool(torch.isfinite(t).all())]
        if non_finite:
            raise GanzooError(f"the weights in {origin} are not finite (inf or NaN) in {_listed(non_finite)}")
        roles = split_roles(weights)
        for role, module in modules.items():
            if role in ema_missing:
                module.load_state_dict(self.nets[role[: -len(EMA_SUFFIX)]].state_dict())
            else:
                module.load_state_dict(roles[role])

    def config_dict(self) -> dict[str, Any]:
        return {
            "ganzoo_version": __version__,
            "plugin": self.plugin.name,
            "plugin_version": self.plugin.version,
            "config": config_to_dict(self.config),
            "data_info": self.data_info.to_dict(),
        }


def _loop(keypoints: list[torch.Tensor], frames: int) -> Iterator[torch.Tensor]:
    """`frames` latents evenly spaced along the closed loop through the keypoints (0, 1, ..., K-1, back to 0),
    slerp between consecutive ones: frame 0 is keypoint 0, and when K divides `frames` every keypoint is a frame."""
    for frame in range(frames):
        position = frame * len(keypoints) / frames
        index = int(position)
        yield slerp(keypoints[index], keypoints[(index + 1) % len(keypoints)], position - index)


def _listed(keys: list[str], limit: int = 8) -> str:
    more = f" and {len(keys) - limit} more" if len(keys) > limit else ""
    return ", ".join(keys[:limit]) + more


def build_model(plugin: GANPlugin, config: Any, data_info: DataInfo, with_ema: bool = True) -> GANModel:
    """Build the networks of a resolved config (and EMA copies of the generators)."""
    nets = dict(plugin.build(config, data_info))
    missing = [r for s in plugin.schedule(config) for r in s.networks if r not in nets]
    if missing:
        raise PluginError(f"plugin {plugin.name!r} updates networks its build() did not return: {missing}")
    ema = {}
    if with_ema:
        import copy

        ema = {r: copy.deepcopy(nets[r]).eval().requires_grad_(False) for r in plugin.generator_roles if r in nets}
    return GANModel(plugin, config, data_info, nets, ema)


def resolve_model_config(plugin: GANPlugin, overrides: Mapping[str, Any] | None, data_info: DataInfo) -> Any:
    """Plugin defaults, then `overrides`, then values filled from the data; validated.

    The number of classes (`num_classes_field`) is filled from the data when it is left None; a conditional model
    whose data has no labels (and whose config names no classes) is refused here, before anything trains.
    """
    config = replace_config(plugin.default_config(), overrides or {}, what=f"{plugin.name} config")
    field = plugin.num_classes_field
    if field and hasattr(config, field) and getattr(config, field) is None and data_info.num_classes:
        config = dataclasses.replace(config, **{field: data_info.num_classes})
    config = plugin.resolve_config(config, data_info)
    validate_config(config)
    plugin.validate(config)
    if plugin.is_conditional(config):
        classes = data_info.num_classes or (getattr(config, field, None) if field else None)
        if not classes:
            raise UsageError(
                f"{plugin.name} is a class-conditional model and this data has no labels; use labelled data (the "
                "embedded mnist-4k, or folder:PATH with one subfolder per class)"
            )
    return config


def create_model(name: str | GANPlugin, data_info: DataInfo | None = None, **overrides: Any) -> GANModel:
    """A freshly initialised model of a plugin, e.g. `create_model("dcgan", resolution=32)`."""
    plugin = name if isinstance(name, GANPlugin) else get_plugin(name)
    data_info = data_info or DataInfo(modality=plugin.modality)
    config = resolve_model_config(plugin, overrides, data_info)
    return build_model(plugin, config, data_info)


def read_run_config(path: Path) -> dict[str, Any]:
    """A run's or a saved model's config.json; one-line errors for unreadable, non-UTF-8 or mis-shaped files."""
    record = read_json(path)
    if not isinstance(record, dict) or not isinstance(record.get("plugin"), str):
        raise GanzooError(f"{path} is not a ganzoo config.json (a JSON object naming its plugin)")
    for key in ("config", "data_info"):
        if not isinstance(record.get(key, {}), dict):
            raise GanzooError(f"{path} is garbled: its {key!r} is not a JSON object")
    return record


_DISTRIBUTION_NAME = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9._-]{0,98}[A-Za-z0-9])?$")


def _is_name(value: Any) -> bool:
    """Whether a config.json's `plugin_distribution` is a valid package name (PEP 508), so the install hint never
    prints what a hostile repo put there."""
    return isinstance(value, str) and bool(_DISTRIBUTION_NAME.match(value))


def _warn_skipped(checkpoint: Path, problem: str) -> None:
    warnings.warn(f"skipping the checkpoint {checkpoint}: {problem}", stacklevel=3)


def _run_config_for(checkpoint: Path) -> Path:
    for candidate in (checkpoint / CONFIG_FILE, checkpoint.parent.parent / CONFIG_FILE):
        if candidate.is_file():
            return candidate
    raise GanzooError(f"no {CONFIG_FILE} found next to the checkpoint {checkpoint}")


def model_from_run_config(saved: Mapping[str, Any], origin: str) -> GANModel:
    """Rebuild a model (untrained weights) from a run's or a save directory's config.json."""
    name = saved.get("plugin")
    if not isinstance(name, str):
        raise GanzooError(f"{origin} names no plugin")
    try:
        plugin = get_plugin(name)
    except PluginError as exc:
        if name in list_models():  # installed, but it does not load
            raise GanzooError(f"{origin} needs the plugin {name!r}, which is installed but broken: {exc}") from None
        dist = saved.get("plugin_distribution")
        install = f" (its config.json says the plugin comes from {dist}: pip install {dist})" if _is_name(dist) else ""
        raise GanzooError(f"{origin} needs the plugin {name!r}{install}, which is not usable here: {exc}") from None
    data_info = DataInfo.from_dict(saved.get("data_info", {}))
    config = resolve_model_config(plugin, saved.get("config", {}), data_info)
    return build_model(plugin, config, data_info)


def load_run(source: str | Path, device: str | torch.device = "cpu") -> GANModel:
    """A trained model from a run directory or a checkpoint directory (the newest checkpoint of a run).

    The public entry point, which also takes Hub repos and save directories, is `ganzoo.load_pretrained`.
    """
    checkpoint = find_checkpoint(source, on_skip=_warn_skipped)
    config_path = _run_config_for(checkpoint)
    saved = read_run_config(config_path)
    model = model_from_run_config(saved, str(config_path))
    model.load_weights(load_weights(checkpoint), str(checkpoint))
    step = read_trainer_info(checkpoint)["step"] if (checkpoint / TRAINER_FILE).is_file() else None
    model.info = {
        "source": str(source),
        "checkpoint": str(checkpoint),
        "run_dir": str(config_path.parent) if config_path.parent == checkpoint.parent.parent else None,
        "step": step,
        "data": saved.get("data"),
        "record": saved,
    }
    return model.to(device)

"""Fine-tuning from pretrained weights: load a source model, keep its architecture, map its weights onto a new run.

`prepare_finetune(source, data, overrides)` loads any `ganzoo.load_pretrained` source (a Hub repo, a saved
model, a run or checkpoint) and returns a `Trainer` whose networks (generator, discriminator and EMA copies)
start from the source's weights with fresh optimizers, plus the notes a user should read:

- the model config is the source's; `overrides` may change training hyper-parameters only (learning rates,
  betas, the loss, penalty weights, any `TrainConfig` field). An override that changes the networks (their
  parameter names or shapes, e.g. a width or the resolution) is a `UsageError` naming the key;
- class re-heading: when a conditional model (its `GANPlugin.num_classes_field` follows the data) is fine-tuned on data
  with another number of classes, every tensor whose shape differs from the source's only along class
  dimensions (embeddings, projection heads, label input channels) is re-sized. Its rows are mapped by class name
  (`DataInfo.extras["class_names"]`, else "0".."n-1") when any of the data's classes is one of the source's: each
  such class takes the source's row of that name and the others start fresh (`classes=5-9` of the digits takes
  the source's rows 5-9); when no name matches, the overlapping rows are copied by index. The rest is kept, and
  a note lists the re-sized tensors and which rows went where;
- data at another resolution (or channel count) than the model's is converted to the model's, with a note;
- text is read with the source's vocabulary and sample length (`ganzoo.text.corpus.VocabularySource`): tokens the
  vocabulary lacks are read as unk, and one warning counts them; longer samples are cut, as in training;
- the plugin's `finetune_defaults` (its fine-tuning recipe, e.g. dcgan's FreezeD on 1 block) come first, and
  `overrides` over them;
- FreezeD: a note says how many discriminator blocks (and parameters) the run freezes;
- the source's Hub repo id and resolved commit go to the run's config.json as `base_model`, which
  `save_pretrained` and `push_to_hub` carry into the model card.

FreezeD (`TrainConfig.freeze_d`) and DiffAugment (`TrainConfig.diffaugment`) are training settings that the
engine applies; they work in `train` too.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from ganzoo.config import config_to_dict
from ganzoo.data import DataSource, resolve_data
from ganzoo.errors import GanzooError, UsageError
from ganzoo.model import EMA_SUFFIX, GANModel, build_model, resolve_model_config
from ganzoo.plugin import DataInfo, GANPlugin

if TYPE_CHECKING:
    from ganzoo.engine.trainer import Callback, Trainer


@dataclasses.dataclass
class Finetune:
    """A prepared fine-tuning run: call `trainer.fit()`; `notes` says what was adapted (print them)."""

    trainer: Trainer
    source: GANModel
    base_model: dict[str, Any]
    notes: list[str]


def base_model_record(model: GANModel) -> dict[str, Any]:
    """Where a fine-tuned model came from: the Hub repo id and resolved commit, else the local path and step."""
    if model.info.get("repo_id"):
        return {"repo_id": model.info["repo_id"], "commit": model.info.get("commit")}
    return {"path": str(Path(str(model.info.get("source", ""))).resolve()), "step": model.info.get("step")}


def _signature(plugin: GANPlugin, config: Any, data_info: DataInfo) -> dict[str, tuple[int, ...]]:
    """Every tensor name and shape of the networks a config builds (built on the meta device: no memory)."""
    with torch.device("meta"):
        model = build_model(plugin, config, data_info, with_ema=False)
    return {key: tuple(tensor.shape) for key, tensor in model.weights().items()}


def _check_architecture(source: GANModel, overrides: Mapping[str, Any]) -> None:
    """Refuse an override that changes the source's networks (names or shapes of their tensors)."""
    plugin, base = source.plugin, config_to_dict(source.config)
    reference = _signature(plugin, source.config, source.data_info)
    for key, value in overrides.items():
        if source.conditional and key == plugin.num_classes_field:
            raise UsageError(f"{key} cannot be set when fine-tuning: the number of classes comes from --data")
        config = resolve_model_config(plugin, {**base, key: value}, source.data_info)
        if _signature(plugin, config, source.data_info) != reference:
            raise UsageError(
                f"{key} is part of the {plugin.name} architecture and fine-tuning keeps the source's "
                f"({key}={base.get(key)!r}); only training settings (learning rates, betas, loss, penalty weights, "
                "training options) can be changed"
            )


_Index = tuple[slice | torch.Tensor, ...]


def _class_index(
    source: torch.Size, target: torch.Size, change: int, rows: Sequence[int | None] | None
) -> tuple[_Index, _Index] | None:
    """Where the source's entries go in a tensor whose shapes differ only along class dimensions (by `change`
    each): the target's and the source's indices, or None for shapes that differ otherwise.

    `rows` gives each new class's source class (None: it starts fresh); the classes are the last entries of a
    class dimension (after any others, e.g. image channels, which are kept). Without `rows`, the overlapping
    region is copied by index.
    """
    if len(source) != len(target) or change == 0:
        return None
    if any(s != t and t - s != change for s, t in zip(source, target, strict=True)):
        return None
    if rows is None:
        region = tuple(slice(0, min(s, t)) for s, t in zip(source, target, strict=True))
        return region, region
    pairs = [(new, old) for new, old in enumerate(rows) if old is not None]
    class_dims = [d for d, (s, t) in enumerate(zip(source, target, strict=True)) if s != t]
    into: list[slice | torch.Tensor] = []
    take: list[slice | torch.Tensor] = []
    for dim, (s, t) in enumerate(zip(source, target, strict=True)):
        if s == t:
            into.append(slice(None))
            take.append(slice(None))
            continue
        kept = t - len(rows)  # the entries before the classes
        if kept < 0 or any(kept + old >= s for _, old in pairs):
            return None
        shape = [1] * len(class_dims)  # several class dimensions index their outer product
        shape[class_dims.index(dim)] = -1
        into.append(torch.tensor([*range(kept), *(kept + new for new, _ in pairs)]).view(shape))
        take.append(torch.tensor([*range(kept), *(kept + old for _, old in pairs)]).view(shape))
    return tuple(into), tuple(take)


def class_rows(old_names: Sequence[str], new_names: Sequence[str]) -> tuple[list[int | None], bool]:
    """For each new class, the source class whose rows it takes (None: fresh), and whether that is by class name.

    By name when any new class name is one of the source's (those classes take the rows of their names, the
    others start fresh); else by index (class i takes row i where the source has it).
    """
    where = {name: index for index, name in enumerate(old_names)}
    if any(name in where for name in new_names):
        return [where.get(name) for name in new_names], True
    return [index if index < len(old_names) else None for index in range(len(new_names))], False


def transfer_weights(
    source: Mapping[str, torch.Tensor],
    target: Mapping[str, torch.Tensor],
    class_change: int = 0,
    origin: str = "the source",
    rows: Sequence[int | None] | None = None,
) -> tuple[dict[str, torch.Tensor], list[str]]:
    """The source's tensors for the target's keys, and the keys that were re-sized.

    Tensors of the target's shape are taken as they are. With `class_change` (new minus old number of classes),
    a tensor whose shape differs only by that amount along some dimensions is the target's tensor with the
    overlapping region copied from the source, or with `rows` (each new class's source class, None: fresh; see
    `class_rows`) each class's entries copied from its source class's. EMA copies the target does not have are
    dropped; any other missing, unexpected or incompatible key is a `GanzooError` listing them.
    """
    target_roles = {key.partition(".")[0] for key in target}
    weights: dict[str, torch.Tensor] = {}
    resized, problems = [], []
    for key, tensor in source.items():
        if key not in target:
            role = key.partition(".")[0]
            if not (role.endswith(EMA_SUFFIX) and role not in target_roles):
                problems.append(f"unexpected {key}")
            continue
        wanted = target[key]
        if tensor.shape == wanted.shape:
            weights[key] = tensor
            continue
        index = _class_index(tensor.shape, wanted.shape, class_change, rows)
        if index is None:
            problems.append(f"{key} {tuple(tensor.shape)} (the new model has {tuple(wanted.shape)})")
            continue
        into, take = index
        merged = wanted.detach().clone()
        merged[into] = tensor[take].to(merged.device, merged.dtype)
        weights[key] = merged
        resized.append(key)
    ema_roles = {key.partition(".")[0] for key in source if key.partition(".")[0].endswith(EMA_SUFFIX)}
    problems += [
        f"missing {key}"
        for key in target
        if key not in source and not (key.partition(".")[0].endswith(EMA_SUFFIX) and not ema_roles)
    ]
    if problems:
        shown = "; ".join(problems[:8]) + (f"; and {len(problems) - 8} more" if len(problems) > 8 else "")
        raise GanzooError(f"the weights of {origin} cannot initialise the new model: {shown}")
    return weights, resized


def _class_names(info: DataInfo) -> list[str]:
    """The names of a data set's classes: its `class_names`, else "0".."n-1" (none without labels)."""
    names = info.extras.get("class_names") or range(info.num_classes or 0)
    return [str(name) for name in names]


def _data_notes(plugin: GANPlugin, config: Any, native: DataInfo, spec: str) -> list[str]:
    options = plugin.data_options(config)
    notes = []
    resolution, channels = options.get("resolution"), options.get("channels")
    if resolution is not None and native.resolution != resolution:
        size = f"{native.resolution} px" if native.resolution else "of their own sizes"
        notes.append(f"the images of {spec} ({size}) are resized to the model's {resolution} px")
    if channels is not None and native.channels is not None and native.channels != channels:
        notes.append(f"the images of {spec} ({native.channels} channels) are converted to the model's {channels}")
    return notes


def _ranges(indices: Sequence[int]) -> str:
    """`[0, 1, 2, 5, 7, 8]` -> `0-2, 5, 7-8`."""
    runs: list[list[int]] = []
    for index in indices:
        if runs and index == runs[-1][1] + 1:
            runs[-1][1] = index
        else:
            runs.append([index, index])
    return ", ".join(f"{a}-{b}" if b > a else str(a) for a, b in runs)


def _reheading_note(
    plugin: GANPlugin, old: int, new: int, resized: Sequence[str], rows: Sequence[int | None], by_name: bool
) -> str:
    pairs = [(n, o) for n, o in enumerate(rows) if o is not None]
    targets, sources = [n for n, _ in pairs], [o for _, o in pairs]
    if sources == targets:
        copied = f"rows {_ranges(targets)} copied from the source"
    else:
        copied = f"the source's rows {_ranges(sources)} copied to rows {_ranges(targets)}"
    fresh = [n for n, o in enumerate(rows) if o is None]
    if fresh and by_name:
        copied += f" (rows {_ranges(fresh)}, classes the source lacks, start fresh)"
    shown = ", ".join(resized[:6]) + (f" and {len(resized) - 6} more" if len(resized) > 6 else "")
    how = "by class name" if by_name else "by index"
    return (
        f"re-heading {plugin.name} from {old} to {new} classes {how}: the class embeddings and heads are re-sized "
        f"({shown}) with {copied}; all other weights are kept"
    )


def _freeze_note(count: int, blocks: Sequence[torch.nn.Module]) -> str:
    """What FreezeD freezes: the first `count` of the plugin's discriminator blocks."""
    frozen = {id(p): p for block in blocks[:count] for p in block.parameters()}
    size = sum(p.numel() for p in frozen.values())
    return f"freeze-d: froze the first {count} of {len(blocks)} discriminator blocks ({size:,} parameters)"


def _text_in_vocabulary(model: GANModel, data: DataSource, overrides: Mapping[str, Any]) -> DataSource:
    """The data of a text fine-tune, read with the source model's vocabulary and sample length."""
    from ganzoo.text.corpus import VocabularySource

    fixed = set(model.plugin.data_options(model.config)) & set(overrides)
    if fixed:
        raise UsageError(
            f"{', '.join(sorted(fixed))} cannot be set when fine-tuning {model.plugin.name}: the new text is read "
            "with the source's vocabulary and sample length"
        )
    return VocabularySource(data, model.data_info)


def prepare_finetune(
    source: str | Path | GANModel,
    data: str | DataSource,
    overrides: Mapping[str, Any] | None = None,
    out: str | Path | None = None,
    callbacks: Sequence[Callback] = (),
    record: Mapping[str, Any] | None = None,
) -> Finetune:
    """A new run initialised from `source`'s networks (EMA copies included) on `data`, not yet started.

    `overrides` are `--set`-style keys: training hyper-parameters of the plugin's config and any `TrainConfig`
    field (`steps`, `freeze_d`, `diffaugment`, ...); `record`, extra keys for the run's config.json. See the module
    docstring for what is adapted.
    """
    from ganzoo.engine.trainer import Trainer, split_overrides
    from ganzoo.hub import load_pretrained

    model = source if isinstance(source, GANModel) else load_pretrained(source)
    plugin = model.plugin
    chosen = {**plugin.finetune_defaults, **dict(overrides or {})}  # the plugin's recipe, then the user's keys
    model_overrides, train_overrides = split_overrides(plugin, chosen)
    _check_architecture(model, model_overrides)

    data_source = data if isinstance(data, DataSource) else resolve_data(data)
    text = plugin.modality == "text"
    if text:
        data_source = _text_in_vocabulary(model, data_source, model_overrides)
    native = data_source.info()
    config = {**config_to_dict(model.config), **model_overrides}
    old_classes, new_classes = model.data_info.num_classes, native.num_classes
    class_change = 0
    field = plugin.num_classes_field if model.conditional else None
    if field in config and new_classes != old_classes:
        config[field] = None  # the plugin fills it from the data (or says the data has no labels)
        class_change = (new_classes or 0) - (old_classes or 0)
    rows, by_name = class_rows(_class_names(model.data_info), _class_names(native))
    resolved = resolve_model_config(plugin, config, native)

    origin = str(model.info.get("source", "the source model"))
    trained = set(plugin.optimizers(model.config)) | set(plugin.generator_roles)

    def learned(weights: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The trained networks and their EMA copies; other state (e.g. history pools) starts afresh."""
        return {k: t for k, t in weights.items() if k.partition(".")[0].removesuffix(EMA_SUFFIX) in trained}

    source_weights = {key: tensor.detach().cpu() for key, tensor in learned(model.weights()).items()}
    with torch.device("meta"):  # (text: the source's vocabulary, which loading the data does not change)
        skeleton = build_model(plugin, resolved, model.data_info if text else native)
    mapping = rows if by_name else None  # by index: the overlapping region
    _, resized = transfer_weights(source_weights, learned(skeleton.weights()), class_change, origin, mapping)
    notes = _data_notes(plugin, resolved, native, data_source.spec)
    if resized:
        notes.insert(0, _reheading_note(plugin, old_classes or 0, new_classes or 0, resized, rows, by_name))

    def initialise(target: GANModel) -> None:
        fresh = target.weights()
        weights, _ = transfer_weights(source_weights, learned(fresh), class_change, origin, mapping)
        target.load_weights({**fresh, **weights}, origin)

    base_model = base_model_record(model)
    trainer = Trainer(
        plugin,
        config_to_dict(resolved),
        train_overrides,
        data=data_source,
        out=out,
        callbacks=callbacks,
        init=initialise,
        record={**(record or {}), "base_model": base_model},
    )
    count, blocks = trainer.train_config.freeze_d, list(plugin.frozen_d_blocks(skeleton.nets))
    if 0 < count <= len(blocks):  # other counts are the trainer's errors
        notes.append(_freeze_note(count, blocks))
    return Finetune(trainer, model, base_model, notes)


__all__ = ["Finetune", "base_model_record", "class_rows", "prepare_finetune", "transfer_weights"]

"""Sharing models on the Hugging Face Hub: `save_pretrained`, `load_pretrained` and `push_to_hub`.

A saved model (a directory, or a Hub repo) holds `config.json` (format version, ganzoo and plugin versions, the
full plugin config, data info and spec, training steps and config, the latest evaluation), `model.safetensors`
(every network by role, EMA copies as `<role>_ema.*`), a `README.md` model card with YAML front matter, and a
sample grid (`samples.png`, or `samples.txt` for text models). Loading never runs code from the files: the
plugin named in config.json must be installed. Downloads go through `huggingface_hub`'s cache, so
`HF_HUB_OFFLINE=1` loads whatever was downloaded before.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from ganzoo import __version__
from ganzoo.errors import GanzooError, HubError, UsageError
from ganzoo.model import CONFIG_FILE, GANModel, load_run, model_from_run_config, read_run_config

FORMAT_VERSION = 1
"""Version of the config.json layout of a saved model; a newer one than this ganzoo knows is refused."""
WEIGHTS_FILE = "model.safetensors"
CARD_FILE = "README.md"
HUB_PREFIX = "hf-hub:"
PIPELINE_TAGS = {
    "image": "unconditional-image-generation",
    "image-to-image": "image-to-image",
    "text": "text-generation",
}
HUB_DATASETS = {
    "mnist-4k": "ylecun/mnist",
    "mnist": "ylecun/mnist",
    "fashion-mnist": "zalando-datasets/fashion_mnist",
    "cifar10": "uoft-cs/cifar10",
}
"""The Hub dataset behind each built-in data spec, for the model card's `datasets`."""
TASK_TAGS = {
    "sr2x": "super-resolution",
    "sr4x": "super-resolution",
    "inpaint": "inpainting",
    "denoise": "denoising",
    "colorize": "colorization",
    "paired": "image-to-image",
}
"""The card's task tag of a paired image-to-image model, by its data's task; other models' task is their
`pipeline_tag` (`ganzoo search --task` takes either)."""
METRIC_KEYS = (
    "fid",
    "kid_mean",
    "kid_std",
    "precision",
    "recall",
    "is_mean",
    "is_std",
    "accuracy",
    "psnr",
    "ssim",
    "bleu4",
    "self_bleu4",
)
_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


# ------------------------------------------------------------------------------------------------------- saving


def _record_of(model: GANModel) -> dict[str, Any]:
    """The config.json of a saved model."""
    from ganzoo.registry import plugin_statuses

    run_dir = _run_dir(model)
    previous = model.info.get("record") or (read_run_config(run_dir / CONFIG_FILE) if run_dir else {})
    dists = [s.distribution for row in plugin_statuses(model.plugin.name) for s in row.sources]
    record: dict[str, Any] = {
        "format_version": FORMAT_VERSION,
        **model.config_dict(),
        "modality": model.plugin.modality,
        "plugin_distribution": next((d for d in dists if not d.startswith("<")), None),
        "data": model.info.get("data"),
        "steps": model.info.get("step"),
    }
    for key in ("train", "seed", "base_model", "zoo"):
        if previous.get(key) is not None:
            record[key] = previous[key]
    evaluation = (_latest_evaluation(model, run_dir) if run_dir else None) or previous.get("evaluation")
    if evaluation:
        record["evaluation"] = evaluation
    return record


def _run_dir(model: GANModel) -> Path | None:
    """The run a model was loaded from or trained in (None for other sources)."""
    for candidate in (model.info.get("run_dir"), model.info.get("source")):
        if candidate and (Path(candidate) / "checkpoints").is_dir() and (Path(candidate) / CONFIG_FILE).is_file():
            return Path(candidate)
    return None


def _latest_evaluation(model: GANModel, run_dir: Path) -> dict[str, Any] | None:
    """The run's evaluation of this model's step from eval.json (None if that step was not evaluated)."""
    from ganzoo.metrics.evaluation import read_evaluations

    records = read_evaluations(run_dir)
    scored = [r for r in records if any(isinstance(r.get(k), (int, float)) for k in METRIC_KEYS)]
    if not scored:
        return None
    same_step = [r for r in scored if r.get("step") == model.info.get("step")]
    if not same_step:  # scores of other weights than the ones saved are not this model's
        return None
    chosen = same_step[-1]
    keep = ("features", "data", "n", "reference_n", "step", "curve")
    return {k: chosen[k] for k in (*METRIC_KEYS, *keep) if chosen.get(k) is not None}


def _base_model_id(record: Mapping[str, Any]) -> str | None:
    base = record.get("base_model")
    if isinstance(base, Mapping):
        base = base.get("repo_id")
    return base if isinstance(base, str) and base else None


def task_tag(record: Mapping[str, Any]) -> str:
    """The task a saved model's card tags it with (`TASK_TAGS`, else its pipeline tag or modality)."""
    modality = record.get("modality", "image")
    paired = ((record.get("data_info") or {}).get("extras") or {}).get("task")
    return TASK_TAGS.get(str(paired)) or PIPELINE_TAGS.get(modality) or modality


def _hub_dataset(spec: Any) -> str | None:
    return HUB_DATASETS.get(spec.split("?")[0]) if isinstance(spec, str) else None


def _curve_lines(curve: list[Mapping[str, Any]], data: Any) -> list[str]:
    """The card's quality-diversity section: the model's scores at each sampling temperature."""
    keys = [k for k in ("bleu4", "self_bleu4") if any(isinstance(p.get(k), (int, float)) for p in curve)]

    def cell(point: Mapping[str, Any], key: str) -> str:
        value = point.get(key)
        return f"{value:.4f}" if isinstance(value, (int, float)) else ""

    return [
        "## Quality-diversity curve",
        "",
        f"Samples drawn at each temperature, scored against `{data}`: BLEU-4 measures quality (higher: closer to the "
        "real texts), self-BLEU-4 diversity (lower: more varied). A text GAN is worth its training where its curve "
        'lies above the temperature-swept curve of its MLE model (Caccia et al. 2020, "Language GANs falling '
        "short\"); ganzoo's measurements of that are in `benchmarks/text_curves.py`.",
        "",
        "| temperature | " + " | ".join(keys) + " |",
        "|---|" + "---|" * len(keys),
        *(f"| {float(p.get('temperature', 1.0)):g} | " + " | ".join(cell(p, k) for k in keys) + " |" for p in curve),
        "",
    ]


def model_card(
    record: Mapping[str, Any],
    repo_id: str | None = None,
    sample_file: str | None = None,
    revision: str | None = None,
) -> str:
    """The README.md of a saved model: YAML front matter for the Hub, then how to use the model. Its usage lines
    name `repo_id@revision` when `revision` is a branch other than main."""
    from huggingface_hub import EvalResult, ModelCard, ModelCardData

    plugin, modality = record["plugin"], record.get("modality", "image")
    pipeline_tag = PIPELINE_TAGS.get(modality)
    dataset = _hub_dataset(record.get("data"))
    name = repo_id.split("/")[-1] if repo_id else f"{plugin}-ganzoo"
    evaluation = record.get("evaluation") or {}
    metrics = {k: evaluation[k] for k in METRIC_KEYS if isinstance(evaluation.get(k), (int, float))}
    results = [
        EvalResult(
            task_type=pipeline_tag or modality,
            dataset_type=_hub_dataset(evaluation.get("data")) or str(evaluation.get("data") or "unknown"),
            dataset_name=str(evaluation.get("data") or "unknown"),
            metric_type=key,
            metric_value=value,
            metric_config=evaluation.get("features"),
        )
        for key, value in metrics.items()
    ]
    base = _base_model_id(record)
    relation = {"base_model_relation": "finetune"} if base else {}
    data = ModelCardData(
        library_name="ganzoo",
        tags=list(dict.fromkeys(["gan", "ganzoo", plugin, task_tag(record), modality])),
        pipeline_tag=pipeline_tag,
        base_model=base,
        datasets=[dataset] if dataset else None,
        model_name=name,
        eval_results=results or None,
        **relation,
    )
    source = (repo_id or "USER/REPO") + (f"@{revision}" if revision and revision != "main" else "")
    install = "pip install ganzoo"
    dist = record.get("plugin_distribution")
    if dist and dist != "ganzoo":
        install += f" {dist}"
    steps = record.get("steps")
    trained = f" for {steps} iterations" if steps is not None else ""
    on_data = f" on `{record['data']}`" if record.get("data") else ""
    lines = [
        f"# {name}",
        "",
        f"A `{plugin}` GAN ({modality}) trained with ganzoo{trained}{on_data}.",
        "It loads with ganzoo's installed plugin of that name; no code is run from this repository.",
        "",
    ]
    if base:
        commit = (record.get("base_model") or {}).get("commit")
        lines += [f"Fine-tuned from `{base}`" + (f" (commit `{commit}`)." if commit else "."), ""]
    if sample_file:
        lines += [f"![samples from the EMA generator]({sample_file})", ""]
    lines += [
        "## Use it",
        "",
        "```bash",
        install,
        f"ganzoo sample {source} --n 64 --out samples.png",
        f"ganzoo finetune --from {source} --data folder:./my-images --steps 1000",
        "```",
        "",
        "```python",
        "import ganzoo",
        "",
        f'model = ganzoo.load_pretrained("{source}")',
        "samples = model.sample(16, seed=0)",
        "```",
        "",
    ]
    if metrics:
        how = ", ".join(f"{k} {evaluation[k]}" for k in ("features", "n", "step") if evaluation.get(k) is not None)
        lines += ["## Evaluation", "", f"Against `{evaluation.get('data')}` ({how}):", ""]
        lines += ["| metric | value |", "|---|---|", *(f"| {k} | {v:.6g} |" for k, v in metrics.items()), ""]
    curve = [point for point in evaluation.get("curve") or [] if isinstance(point, Mapping)]
    if curve:
        lines += _curve_lines(curve, evaluation.get("data"))
    zoo = record.get("zoo") or {}
    if zoo.get("command"):
        made = "the reference recipe" if zoo.get("reference") else "a variant of the reference recipe"
        lines += [
            "## Reproduce",
            "",
            f"Built by `ganzoo zoo build` from {made} `{zoo.get('recipe')}` of the `{plugin}` plugin:",
            "",
            "```bash",
            f"{zoo['command']} --out zoo",
            "```",
            "",
        ]
    config = {k: record.get(k) for k in ("plugin", "plugin_version", "ganzoo_version", "config", "data", "train")}
    lines += ["## Training config", "", "```json", json.dumps(config, indent=2), "```", ""]
    card = ModelCard(f"---\n{data.to_yaml()}\n---\n\n" + "\n".join(lines))
    return str(card)


def _save_to(model: GANModel, target: Path, repo_id: str | None, revision: str | None) -> None:
    from ganzoo.engine.checkpoint import save_safetensors
    from ganzoo.engine.logging import save_samples

    record = _record_of(model)
    weights = {k: v.detach().cpu().contiguous() for k, v in model.weights().items()}
    metadata = {
        "format": "pt",
        "ganzoo_version": __version__,
        "plugin": model.plugin.name,
        "plugin_version": model.plugin.version,
    }
    save_safetensors(weights, target / WEIGHTS_FILE, metadata)
    samples, per_row = model.sample_grid(16, seed=0)
    sample_file = save_samples(samples, target / "samples.png", per_row).name
    (target / CONFIG_FILE).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    for name, text in model.plugin.extra_files(model.data_info).items():  # e.g. a text model's vocab.json
        (target / name).write_text(text, encoding="utf-8")
    card = model_card(record, repo_id, sample_file if sample_file.endswith(".png") else None, revision)
    (target / CARD_FILE).write_text(card, encoding="utf-8")


def _is_saved_model(path: Path) -> bool:
    try:
        return "format_version" in json.loads((path / CONFIG_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError, TypeError):
        return False


def save_pretrained(
    model_or_run: GANModel | str | Path,
    directory: str | Path,
    repo_id: str | None = None,
    revision: str | None = None,
) -> Path:
    """Write a model (or the newest checkpoint of a run, or any `load_pretrained` source) to `directory` in the
    Hub layout: config.json, model.safetensors, README.md and a sample grid. `repo_id` (and `revision`, a branch
    other than main) name the repo in the card's usage lines (`user/name@revision`).

    The files are written to a temporary directory and renamed into place, so nothing half-written is left. An
    existing `directory` must be empty or an earlier save, which is replaced.
    """
    model = model_or_run if isinstance(model_or_run, GANModel) else load_pretrained(model_or_run)
    final = Path(directory)
    if final.exists() and not (final.is_dir() and (not any(final.iterdir()) or _is_saved_model(final))):
        raise UsageError(f"{final} exists and is not an empty directory or an earlier ganzoo save; choose another")
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f".{final.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}")
    tmp.mkdir()  # (not mkdtemp: its 0700 mode would stay on the renamed directory)
    try:
        _save_to(model, tmp, repo_id, revision)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = final.with_name(f".{final.name}.old-{os.getpid()}")
    if final.exists():
        os.replace(final, old)
    os.replace(tmp, final)
    shutil.rmtree(old, ignore_errors=True)
    return final


# ------------------------------------------------------------------------------------------------------ loading


def parse_hub_source(source: str) -> tuple[str, str | None] | None:
    """`user/repo`, `user/repo@revision` or `hf-hub:user/repo[@revision]` -> (repo id, revision); else None."""
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    text = source[len(HUB_PREFIX) :] if source.startswith(HUB_PREFIX) else source
    repo_id, _, revision = text.partition("@")
    try:
        valid = bool(_REPO_ID.match(repo_id)) and validate_repo_id(repo_id) is None
    except HFValidationError:
        valid = False
    if not valid:
        if source.startswith(HUB_PREFIX):
            raise UsageError(f"{source!r} is not a Hub model name; expected hf-hub:user/repo[@revision]")
        return None
    return repo_id, revision or None


def _load_saved(directory: Path, origin: str) -> GANModel:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    if not (directory / CONFIG_FILE).is_file():
        raise HubError(f"{origin} holds no ganzoo model (it has no {CONFIG_FILE})")
    record = read_run_config(directory / CONFIG_FILE)
    version = record.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        writer = record.get("ganzoo_version", "an unknown version")
        raise HubError(
            f"{origin} was saved by ganzoo {writer} in format {version!r}; this ganzoo {__version__} reads format "
            f"{FORMAT_VERSION} and older: upgrade ganzoo (pip install -U ganzoo)"
        )
    model = model_from_run_config(record, origin)
    try:
        weights = load_file(directory / WEIGHTS_FILE)
    except (SafetensorError, OSError) as exc:
        raise GanzooError(f"cannot read the weights of {origin}: {exc}") from None
    model.load_weights(weights, origin)
    model.info = {"source": origin, "step": record.get("steps"), "data": record.get("data"), "record": record}
    return model


def _download(repo_id: str, revision: str | None, local_too: bool) -> Path:
    """The cached snapshot of the files a model needs (downloaded when missing), as huggingface_hub resolves it.
    `local_too`: the source could also have been a local path, so the errors say that none exists."""
    from huggingface_hub import constants, snapshot_download
    from huggingface_hub.errors import (
        HfHubHTTPError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    where = f"{repo_id}@{revision}" if revision else repo_id
    nor_local = f", and there is no local directory {repo_id}" if local_too else ""
    try:
        path = snapshot_download(
            repo_id,
            revision=revision,
            allow_patterns=[CONFIG_FILE, WEIGHTS_FILE],
            library_name="ganzoo",
            library_version=__version__,
        )
    except RevisionNotFoundError:
        raise HubError(f"revision {revision!r} not found in the Hub repo {repo_id}") from None
    except RepositoryNotFoundError:
        raise HubError(
            f"Hub repo {repo_id} not found at {constants.ENDPOINT} (or it is private and your token has no access)"
            + nor_local
        ) from None
    except LocalEntryNotFoundError:
        if constants.HF_HUB_OFFLINE:
            raise HubError(
                f"offline (HF_HUB_OFFLINE=1) and {where} is not in the Hugging Face cache "
                f"({constants.HF_HUB_CACHE}); download it once online"
            ) from None
        raise HubError(f"cannot reach the Hub at {constants.ENDPOINT} and {where} is not cached{nor_local}") from None
    except HfHubHTTPError as exc:
        raise HubError(f"the Hub refused to send {where}: {str(exc).splitlines()[0]}") from None
    return Path(path)


def load_pretrained(source: str | Path, device: str | torch.device = "cpu", revision: str | None = None) -> GANModel:
    """A trained model from the Hub (`user/repo`, `user/repo@revision`, `hf-hub:user/repo`), a `save_pretrained`
    directory, a run directory or a checkpoint directory.

    Hub files come through huggingface_hub's cache (so `HF_HUB_OFFLINE=1` works once downloaded); `revision`
    (a branch, tag or commit) is the same as `@revision`. A Hub model's `info` records `repo_id`, `revision` and
    the resolved `commit`.
    """
    path = Path(source)
    hub = None if path.exists() else parse_hub_source(str(source))
    if hub is None:
        if revision is not None:
            raise UsageError(f"a revision ({revision}) only applies to Hub repos, and {source} is a local path")
        model = _load_saved(path, str(path)) if _is_saved_model(path) else load_run(path)
        return model.to(device)
    repo_id, at = hub
    if at and revision and at != revision:
        raise UsageError(f"{source} names revision {at!r} and revision={revision!r} was given too; give one")
    revision = at or revision
    snapshot = _download(repo_id, revision, local_too=not str(source).startswith(HUB_PREFIX) and not at)
    model = _load_saved(snapshot, f"the Hub repo {repo_id}" + (f"@{revision}" if revision else ""))
    model.info.update(source=str(source), repo_id=repo_id, revision=revision or "main", commit=snapshot.name)
    return model.to(device)


# ------------------------------------------------------------------------------------------------------ pushing


def push_to_hub(
    source: GANModel | str | Path,
    repo_id: str,
    private: bool = False,
    revision: str | None = None,
    commit_message: str | None = None,
    token: str | None = None,
) -> str:
    """Save `source` (a model or any `load_pretrained` source) and upload it to the Hub repo `repo_id` (created
    if needed; `revision` names a branch, created from main if needed). Returns the commit URL.

    The token comes from `token` or huggingface_hub's usual resolution (`HF_TOKEN`, `hf auth login`); it is
    never printed or logged.
    """
    import httpx2
    from huggingface_hub import HfApi, constants, get_token
    from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled

    if not _REPO_ID.match(repo_id):
        raise UsageError(f"--repo-id {repo_id!r} is not a Hub repo name; expected user/name")
    token = token or get_token()
    if not token:
        raise HubError("no Hugging Face token: run `hf auth login` or set HF_TOKEN to push")
    api = HfApi(token=token, library_name="ganzoo", library_version=__version__)
    with tempfile.TemporaryDirectory(prefix="ganzoo-push-") as tmp:
        folder = save_pretrained(source, Path(tmp) / "model", repo_id=repo_id, revision=revision)
        message = commit_message or f"Upload {json.loads((folder / CONFIG_FILE).read_text())['plugin']} with ganzoo"
        try:
            api.create_repo(repo_id, private=private, exist_ok=True)
            if revision:
                api.create_branch(repo_id, branch=revision, exist_ok=True)
            commit = api.upload_folder(repo_id=repo_id, folder_path=folder, revision=revision, commit_message=message)
        except OfflineModeIsEnabled:
            raise HubError("cannot push while HF_HUB_OFFLINE=1") from None
        except httpx2.TransportError as exc:
            raise HubError(f"cannot reach the Hub at {constants.ENDPOINT}: {exc}") from None
        except HfHubHTTPError as exc:
            status = exc.response.status_code if exc.response is not None else None
            if status == 401:
                raise HubError(
                    f"the Hub at {constants.ENDPOINT} rejected the token (401): run `hf auth login` or set HF_TOKEN"
                ) from None
            if status == 403:
                raise HubError(
                    f"no write access to {repo_id} (403): push with a token that may write to its namespace"
                ) from None
            raise HubError(f"pushing to {repo_id} failed: {str(exc).splitlines()[0]}") from None
    return commit.commit_url

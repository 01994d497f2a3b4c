"""The Hub catalogue: models made by ganzoo, found through their cards (`ganzoo search`).

A card saved by ganzoo (`ganzoo.hub.model_card`) has `library_name: ganzoo` and the tags `ganzoo`, `gan`, its
plugin's name and its task (`ganzoo.hub.task_tag`), so `HfApi.list_models(filter=[...])` finds them by plugin and
task on the Hub as on any Hub-compatible server; the scores come from the card's `model-index` results.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

from ganzoo import __version__
from ganzoo.errors import HubError, UsageError
from ganzoo.hub import PIPELINE_TAGS, TASK_TAGS

TASKS = tuple(dict.fromkeys([*TASK_TAGS.values(), *PIPELINE_TAGS.values()]))
"""The task tags `search(task=...)` accepts (data task names such as sr4x are taken too)."""
_GENERIC_TAGS = {"gan", "ganzoo", *TASKS, *PIPELINE_TAGS}


@dataclasses.dataclass(frozen=True)
class CatalogueEntry:
    """One ganzoo model on the Hub: its repo id, plugin and task (from its tags), downloads, the card's scores
    (metric name -> value) and the model it was fine-tuned from, if any."""

    repo_id: str
    plugin: str | None
    task: str | None
    downloads: int
    scores: dict[str, float]
    base_model: str | None


def _task_of(task: str) -> str:
    tag = TASK_TAGS.get(task, task)
    if tag not in TASKS:
        accepted = ", ".join([*TASKS, *TASK_TAGS])
        raise UsageError(f"unknown task {task!r}; accepted: {accepted}")
    return tag


def _entry(info: Any, plugins: set[str]) -> CatalogueEntry:
    """One listed model; its plugin is the tag that names an installed plugin (else its first non-generic tag)."""
    tags = list(info.tags or [])
    plain = [t for t in tags if ":" not in t and t not in _GENERIC_TAGS]
    installed = [t for t in plain if t in plugins]
    card = info.card_data
    results = (card.eval_results if card is not None else None) or []
    scores = {r.metric_type: float(r.metric_value) for r in results if isinstance(r.metric_value, (int, float))}
    base = card.base_model if card is not None else None
    return CatalogueEntry(
        repo_id=info.id,
        plugin=(installed or plain or [None])[0],
        task=next((t for t in tags if t in TASKS), None),
        downloads=int(info.downloads or 0),
        scores=scores,
        base_model=base[0] if isinstance(base, list) and base else base or None,
    )


def search(
    query: str | None = None,
    plugin: str | None = None,
    task: str | None = None,
    author: str | None = None,
    limit: int = 20,
) -> list[CatalogueEntry]:
    """ganzoo models on the Hub (`HF_ENDPOINT`), most downloaded first: `query` a substring of the repo id,
    `plugin` a plugin name, `task` a task tag (`TASKS`) or a data task (sr4x, inpaint, ...), `author` a namespace.
    A Hub that cannot be reached is a `HubError`."""
    import httpx2
    from huggingface_hub import HfApi, constants
    from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled

    from ganzoo.registry import list_models

    wanted = ["ganzoo", *([plugin] if plugin else []), *([_task_of(task)] if task else [])]
    api = HfApi(library_name="ganzoo", library_version=__version__)
    hub_logger = logging.getLogger("huggingface_hub")
    level = hub_logger.level
    hub_logger.setLevel(logging.ERROR)  # its retries are retried quietly; what fails in the end is one line
    try:
        found = api.list_models(
            filter=wanted, search=query or None, author=author, sort="downloads", limit=limit, cardData=True
        )
        plugins = set(list_models())
        return [_entry(info, plugins) for info in found]
    except OfflineModeIsEnabled:
        raise HubError("cannot search the Hub while HF_HUB_OFFLINE=1") from None
    except httpx2.TransportError as exc:
        raise HubError(f"cannot reach the Hub at {constants.ENDPOINT}: {exc}") from None
    except HfHubHTTPError as exc:
        raise HubError(f"the Hub at {constants.ENDPOINT} refused the search: {str(exc).splitlines()[0]}") from None
    finally:
        hub_logger.setLevel(level)


__all__ = ["TASKS", "CatalogueEntry", "search"]

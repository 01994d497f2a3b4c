"""Writes one named section of benchmarks/RESULTS.md, keeping the other sections as they are."""

from __future__ import annotations

import datetime
import json
import re
from pathlib import Path

RESULTS = Path(__file__).with_name("RESULTS.md")
TITLE = (
    "# ganzoo benchmark results\n\n"
    "Every section names the command that produced it; a script's section is rewritten by it.\n"
)


def write_section(name: str, command: str, body: str) -> None:
    text = RESULTS.read_text(encoding="utf-8") if RESULTS.is_file() else TITLE
    stamp = datetime.date.today().isoformat()
    section = f"## {name}\n\n`{command}` ({stamp})\n\n{body.strip()}\n"
    pattern = re.compile(rf"^## {re.escape(name)}\n.*?(?=^## |\Z)", re.S | re.M)
    text = pattern.sub(lambda _: section + "\n", text) if pattern.search(text) else text.rstrip() + "\n\n" + section
    RESULTS.write_text(text.rstrip() + "\n", encoding="utf-8")


def read_jsonl(path: Path) -> list[dict]:
    """The rows of a benchmark's JSON-lines record (none when it does not exist yet)."""
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]

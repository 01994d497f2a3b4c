"""The model card's usage lines (ganzoo/hub.py `model_card`): they name `user/repo@revision` for a push to a branch,
and the plain repo for main; `push_to_hub(..., revision=...)` writes such a card to the branch (local Hub server)."""

from __future__ import annotations

import pytest

import ganzoo
from ganzoo.hub import model_card

RECORD = {"plugin": "dcgan", "modality": "image", "steps": 2, "data": "mnist-4k"}


def usage_lines(card: str) -> list[str]:
    return [line for line in card.splitlines() if line.startswith(("ganzoo ", "model = "))]


def test_the_usage_lines_name_the_revision():
    assert usage_lines(model_card(RECORD, "you/name", revision="exp-lr")) == [
        "ganzoo sample you/name@exp-lr --n 64 --out samples.png",
        "ganzoo finetune --from you/name@exp-lr --data folder:./my-images --steps 1000",
        'model = ganzoo.load_pretrained("you/name@exp-lr")',
    ]


@pytest.mark.parametrize("revision", [None, "main"])
def test_main_is_the_plain_repo(revision):
    lines = usage_lines(model_card(RECORD, "you/name", revision=revision))
    assert len(lines) == 3 and all("you/name " in line or '"you/name"' in line for line in lines), lines
    assert not any("@" in line for line in lines)


def test_a_push_to_a_branch_writes_the_branch_into_its_card(hub):
    from huggingface_hub import hf_hub_download

    model = ganzoo.create_model("dcgan", resolution=28, channels=1, g_width=4, d_width=4, latent_dim=4)
    ganzoo.push_to_hub(model, "alice/card", revision="exp/lr-4e-4")
    with open(hf_hub_download("alice/card", "README.md", revision="exp/lr-4e-4"), encoding="utf-8") as card:
        text = card.read()
    assert "ganzoo sample alice/card@exp/lr-4e-4 --n 64" in text
    assert 'ganzoo.load_pretrained("alice/card@exp/lr-4e-4")' in text
    assert ganzoo.load_pretrained("alice/card@exp/lr-4e-4").info["revision"] == "exp/lr-4e-4"  # the line works

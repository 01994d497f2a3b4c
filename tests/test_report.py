"""`ganzoo report`: one self-contained HTML file with every figure, the sample strip, warnings and scores, whose
images all decode; rendered in a real headless browser (Chromium) when one is installed."""

from __future__ import annotations

import base64
import io
import json
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image

import ganzoo
from ganzoo.cli import cli
from ganzoo.engine.health import HEALTH_FILE
from ganzoo.metrics.evaluation import record_evaluation
from ganzoo.report import curve_groups, read_run

QUIET = {"progress": False, "tensorboard": False, "batch_size": 8, "sample_grid": 4, "log_every": 2, "sample_every": 2}
BROWSER = shutil.which("chromium-headless-shell") or shutil.which("chromium")


class Images(HTMLParser):
    """Every <img> of a page (its attributes) and the text of its <pre> blocks."""

    def __init__(self) -> None:
        super().__init__()
        self.images: list[dict[str, str | None]] = []
        self.pre: list[str] = []
        self._in_pre = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "img":
            self.images.append(dict(attrs))
        self._in_pre = self._in_pre or tag == "pre"

    def handle_endtag(self, tag: str) -> None:
        self._in_pre = self._in_pre and tag != "pre"

    def handle_data(self, data: str) -> None:
        if self._in_pre:
            self.pre.append(data)


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> tuple[Path, Path, Path]:
    """Two tiny dcgan runs (one with a health warning and evaluations) and a tiny lstm-gan run."""
    root = tmp_path_factory.mktemp("report")
    tiny = {"g_width": 4, "d_width": 4, "latent_dim": 8}
    first_train = {**QUIET, "steps": 6, "health_every": 2}
    first = ganzoo.Trainer("dcgan", tiny, first_train, data="mnist-4k?n=32", out=root / "a").fit().run_dir
    second = ganzoo.Trainer("dcgan", tiny, {**QUIET, "steps": 4}, data="mnist-4k?n=32", out=root / "b").fit().run_dir
    for step, fid in ((2, 90.0), (6, 40.0)):
        record_evaluation(first, {"fid": fid, "recall": 0.1 * step, "data": "mnist-4k"}, step=step, checkpoint=None)
    warning = {"step": 4, "name": "discriminator wins", "evidence": "D accuracy 0.99 for 200 steps"}
    (first / HEALTH_FILE).write_text(json.dumps({"warnings": [warning]}))
    text = {"embed_dim": 4, "hidden_dim": 8, "d_embed_dim": 4, "d_hidden_dim": 4, "pretrain_steps": 2}
    corpus = root / "names.txt"
    corpus.write_text("ANNA\nBOB\nCARL\nDORA\n" * 4)
    third = ganzoo.Trainer("lstm-gan", text, {**QUIET, "steps": 4}, data=f"text:{corpus}", out=root / "t").fit().run_dir
    return first, second, third


def decoded(src: str | None) -> Image.Image:
    assert src is not None and src.startswith("data:image/png;base64,"), (src or "")[:40]
    image = Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1])))
    image.load()
    return image


def test_the_report_holds_every_figure_the_samples_warnings_and_scores(runs, tmp_path):
    first, second, _ = runs
    result = CliRunner().invoke(
        cli, ["report", str(first), str(second), "--out", str(tmp_path / "r.html"), "--png", str(tmp_path / "figs")]
    )
    assert result.exit_code == 0, result.output
    page = (tmp_path / "r.html").read_text()
    parser = Images()
    parser.feed(page)
    figures = sorted(p.stem for p in (tmp_path / "figs").iterdir())
    groups = curve_groups([read_run(first), read_run(second)])
    assert {"loss", "lr", "throughput"} <= set(groups) and "loss/generator" in groups["loss"]
    # one figure per per-network health quantity: gradient norms and update sizes differ in scale
    assert "health/grad_norm/generator" in groups["health/grad_norm"] and "health/recall" in groups["health"]
    assert "health/update/discriminator" in groups["health/update"]
    assert len(figures) == len(groups) + 1  # + the evaluations over steps
    grids = [i for i in parser.images if "samples at step" in (i.get("alt") or "")]
    assert len(grids) == 3 + 2  # every saved grid (steps 2, 4, 6 and 2, 4): fewer than the strip's 8
    assert len(parser.images) == len(figures) + len(grids)
    for image in parser.images:
        assert decoded(image["src"]).size[0] > 10
    assert "step 4: <b>discriminator wins</b> D accuracy 0.99 for 200 steps" in page
    assert "health: no warnings" in page  # the second run
    scores = re.search(r"<h2>Final scores</h2>\s*<table>(.*?)</table>", page, re.S)
    assert scores and "<td>a</td><td>dcgan</td><td>6</td><td>40</td><td>0.6</td>" in scores[1]
    assert "<td>b</td><td>dcgan</td><td>4</td><td></td><td></td>" in scores[1]


def test_a_text_run_shows_its_samples_as_text(runs, tmp_path):
    out = tmp_path / "t.html"
    assert CliRunner().invoke(cli, ["report", str(runs[2]), "--out", str(out)]).exit_code == 0
    parser = Images()
    parser.feed(out.read_text())
    samples = (runs[2] / "samples" / "step-000004.txt").read_text().splitlines()
    assert "\n".join(samples[:12]) in "".join(parser.pre)
    assert not [i for i in parser.images if "samples at step" in (i.get("alt") or "")]


def test_report_errors_are_one_line(tmp_path):
    (tmp_path / "empty").mkdir()
    result = CliRunner().invoke(cli, ["report", str(tmp_path / "empty")])
    assert result.exit_code == 2 and result.stderr.startswith("Error: ") and "is not a run directory" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


PROBE = """<script>
const errors = [];
window.addEventListener("error", (event) => errors.push(String(event.message || event.type)), true);
window.addEventListener("load", () => {
  const images = [...document.images];
  const broken = images.filter((image) => !(image.complete && image.naturalWidth > 0)).length;
  document.title = `images ${images.length} broken ${broken} errors ${errors.length}`;
});
</script>"""


@pytest.mark.skipif(BROWSER is None, reason="no headless Chromium installed (.ci/run installs chromium-headless-shell)")
def test_the_report_renders_in_a_headless_browser(runs, tmp_path):
    out = tmp_path / "r.html"
    assert CliRunner().invoke(cli, ["report", str(runs[0]), str(runs[2]), "--out", str(out)]).exit_code == 0
    probed = tmp_path / "probed.html"
    probed.write_text(out.read_text().replace("</body>", PROBE + "</body>"))
    assert BROWSER is not None
    command = [BROWSER, "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=10000", "--dump-dom"]
    dom = subprocess.run([*command, probed.as_uri()], capture_output=True, text=True, timeout=120, check=True).stdout
    title = re.search(r"<title>(.*?)</title>", dom)
    count = out.read_text().count("<img ")
    assert title and title[1] == f"images {count} broken 0 errors 0" and count > 3


def test_a_run_made_by_the_command_line_records_its_command_and_the_report_shows_it(tmp_path):
    args = [
        "train",
        "dcgan",
        "--steps",
        "1",
        "--data",
        "mnist-4k?n=16",
        "--batch-size",
        "8",
        "--out",
        str(tmp_path / "c"),
    ]
    args += ["--set", "g_width=4", "--set", "d_width=4", "--set", "progress=false", "--set", "tensorboard=false"]
    assert CliRunner().invoke(cli, args, prog_name="ganzoo").exit_code == 0
    command = json.loads((tmp_path / "c" / "config.json").read_text())["command"]
    assert (
        command
        == "ganzoo train dcgan --steps 1 --data 'mnist-4k?n=16' --batch-size 8 --out "
        + str(tmp_path / "c")
        + " --set g_width=4 --set d_width=4 --set progress=false --set tensorboard=false"
    )
    assert (
        CliRunner().invoke(cli, ["train", "dcgan", "--out", str(tmp_path / "c"), "--resume", "--steps", "2"]).exit_code
        == 0
    )
    assert json.loads((tmp_path / "c" / "config.json").read_text())["command"] == command  # the run's first command
    assert CliRunner().invoke(cli, ["report", str(tmp_path / "c"), "--out", str(tmp_path / "c.html")]).exit_code == 0
    parser = Images()
    parser.feed((tmp_path / "c.html").read_text())
    assert command in parser.pre

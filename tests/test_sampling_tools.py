"""Sampling tools (issue 18): latent interpolations (slerp, looping animations through `synthesize`), StyleGAN's
style-mixing grids, BigGAN's truncated-normal truncation, and the `ganzoo sample` options that reach them."""

from __future__ import annotations

import math
from statistics import NormalDist

import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from test_cli import assert_one_line_error, invoke

import ganzoo
from ganzoo import DataInfo, UsageError
from ganzoo.kit import slerp
from ganzoo_plugins.biggan.networks import truncated_normal

STYLEGAN2 = {"latent_dim": 8, "w_dim": 8, "mapping_layers": 2, "g_width": 8, "d_width": 8}
BIGGAN = {"latent_dim": 8, "shared_dim": 4, "g_width": 8, "d_width": 8}
DCGAN = {"g_width": 8, "d_width": 8, "latent_dim": 8}
DIGITS = DataInfo("image", channels=1, resolution=28, num_classes=10)


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Networks this small run many times faster on one thread than on contended cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _stylegan2(channels: int = 1, seed: int = 0) -> ganzoo.GANModel:
    torch.manual_seed(seed)
    return ganzoo.create_model("stylegan2", resolution=32, channels=channels, **STYLEGAN2)


def _distance(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a - b).abs().mean().item()


# ----------------------------------------------------------------------------------------------------- slerp


def test_slerp_ends_exactly_at_its_endpoints_and_keeps_gaussian_norms():
    generator = torch.Generator().manual_seed(0)
    a, b = torch.randn(2, 5, 512, generator=generator)
    assert torch.equal(slerp(a, b, 0.0), a) and torch.equal(slerp(a, b, 1.0), b)
    for t in (0.25, 0.5, 0.75):
        norms = slerp(a, b, t).norm(dim=-1)
        assert torch.allclose(norms, (1 - t) * a.norm(dim=-1) + t * b.norm(dim=-1), rtol=0.02)
        u, v = F.normalize(a, dim=-1), F.normalize(b, dim=-1)  # on the unit sphere: a great circle at uniform speed
        assert torch.allclose(slerp(u, v, t).norm(dim=-1), torch.ones(5))
        angle = torch.arccos((u * slerp(u, v, t)).sum(dim=-1))
        assert torch.allclose(angle, t * torch.arccos((u * v).sum(dim=-1)), atol=1e-4)
    assert ((a + b) / 2).norm(dim=-1).mean() < 0.75 * a.norm(dim=-1).mean()  # a straight line cuts inside
    assert torch.allclose(slerp(a, 2 * a, 0.5), 1.5 * a)  # parallel vectors: the straight line


# ---------------------------------------------------------------------------------------------- interpolation


def test_interpolation_frames_are_continuous_loop_and_start_at_the_seeds_sample():
    model = _stylegan2()
    frames, per_row = model.interpolate(16, n=3, seed=5, keypoints=2)
    assert frames.shape == (16, 3, 1, 32, 32) and per_row is None
    assert torch.equal(frames[0], model.sample(3, seed=5))  # the noise inputs too: only the latents move
    steps = [_distance(frames[i], frames[(i + 1) % 16]) for i in range(16)]  # the last frame leads back to the first
    random_pairs = [_distance(model.sample(3, seed=s), model.sample(3, seed=s + 100)) for s in range(4)]
    assert max(steps) < 0.35 * min(random_pairs)
    assert min(steps) > 0  # it moves


def test_every_keypoint_is_a_frame_and_is_the_sample_of_its_seed():
    torch.manual_seed(0)
    model = ganzoo.create_model("dcgan", resolution=32, channels=1, **DCGAN)
    frames, _ = model.interpolate(12, n=2, seed=7, keypoints=3)
    for index, frame in enumerate((0, 4, 8)):  # without noise inputs, keypoint i is exactly sample(seed + i)
        assert torch.equal(frames[frame], model.sample(2, seed=7 + index))
    assert not torch.equal(frames[1], frames[0]) and not torch.equal(frames[1], frames[4])


def test_a_conditional_walk_keeps_its_class_and_takes_truncation():
    model = ganzoo.create_model("biggan", data_info=DIGITS, **BIGGAN)
    frames, per_row = model.interpolate(8, n=3, seed=0, label=7, keypoints=2, truncation=0.5)
    assert per_row is None
    for frame, seed in ((0, 0), (4, 1)):
        expected, _ = model.sample_grid(3, seed=seed, label=7, truncation=0.5)
        assert torch.equal(frames[frame], expected)
    _, per_row = model.interpolate(4, n=12, seed=0)  # no label: the classes cycle, one column each
    assert per_row == 10


def test_interpolation_refusals():
    model = _stylegan2()
    with pytest.raises(UsageError, match="2 frames and 2 keypoints or more, got 1 and 4"):
        model.interpolate(1)
    with pytest.raises(UsageError, match="stylegan2 is not a conditional model; it takes no label"):
        model.interpolate(4, label=1)
    assert ganzoo.GANPlugin().latent_size({}) is None  # the contract's default: no latent, no interpolation


# ----------------------------------------------------------------------------------------------- style mixing


def test_mixing_a_source_with_itself_gives_that_source():
    model = _stylegan2()
    model.ema["generator"].mapping.w_avg.copy_(torch.randn(8))
    rows, columns, mixes = model.plugin.mix_styles(
        model.sampling_nets(), 2, 3, torch.Generator().manual_seed(0), truncation=0.0
    )  # psi 0: every source is the mean w, so every cell mixes a source with itself
    assert rows.shape == (2, 1, 32, 32) and columns.shape == (3, 1, 32, 32) and mixes.shape == (2, 3, 1, 32, 32)
    assert torch.allclose(mixes, rows[:, None].expand_as(mixes), atol=1e-6)
    assert torch.allclose(columns, rows[:1].expand_as(columns), atol=1e-6)


@torch.no_grad()
def test_each_cell_is_the_synthesis_of_its_row_coarse_and_column_fine_styles():
    model = _stylegan2()
    nets = model.sampling_nets()
    g = nets["generator"].eval()
    rows, columns, mixes = model.plugin.mix_styles(nets, 2, 3, torch.Generator().manual_seed(4))
    generator = torch.Generator().manual_seed(4)
    w = g.mapping(torch.randn(5, 8, generator=generator)).unsqueeze(1).expand(-1, g.num_ws, -1)
    noise = generator.get_state()  # the grid's one draw of noise inputs comes next

    def synthesis(ws: torch.Tensor) -> torch.Tensor:
        generator.set_state(noise)
        return g(ws=ws[None], generator=generator, same_noise=True)[0]

    assert torch.allclose(rows[1], synthesis(w[1]), atol=1e-5)
    assert torch.allclose(columns[2], synthesis(w[4]), atol=1e-5)
    for i, j in ((0, 0), (1, 2)):
        cell = synthesis(torch.cat([w[i, :4], w[2 + j, 4:]]))  # COARSE_STYLES: the 4x4 and 8x8 layers
        assert torch.allclose(mixes[i, j], cell, atol=1e-5)
        assert _distance(mixes[i, j], rows[i]) > 1e-3 and _distance(mixes[i, j], columns[j]) > 1e-3
    _, _, later = model.plugin.mix_styles(nets, 2, 3, torch.Generator().manual_seed(4), crossover=6)
    assert not torch.allclose(later, mixes)
    with pytest.raises(UsageError, match=r"crossover=8 must be in 1..7"):
        model.plugin.mix_styles(nets, 1, 1, crossover=8)


def test_the_rows_coarse_styles_set_the_low_frequencies():
    """Each cell's 4x4 average-pooled image is nearer its row source's (coarse styles) than its column source's
    (fine styles): the architecture alone implies it, so it holds at initialisation, over four models."""
    nearer, row_distance, column_distance = [], [], []
    for seed in range(4):
        model = _stylegan2(channels=3, seed=seed)
        rows, columns, mixes = model.plugin.mix_styles(model.sampling_nets(), 5, 5, torch.Generator().manual_seed(0))

        def pooled(images: torch.Tensor) -> torch.Tensor:
            return F.avg_pool2d(images.flatten(0, -4), 8).view(*images.shape[:-2], 16)

        to_row = (pooled(mixes) - pooled(rows)[:, None]).abs().mean(dim=(-1, -2))
        to_column = (pooled(mixes) - pooled(columns)[None]).abs().mean(dim=(-1, -2))
        nearer.append((to_row < to_column).float().mean())
        row_distance.append(to_row.mean())
        column_distance.append(to_column.mean())
    assert torch.stack(nearer).mean() > 0.75
    assert torch.stack(row_distance).mean() < 0.75 * torch.stack(column_distance).mean()


def test_the_style_mixing_grid_and_models_that_have_no_styles():
    model = _stylegan2()
    grid = model.style_mixing_grid(2, 3, seed=1, truncation=0.7)
    rows, columns, mixes = model.plugin.mix_styles(
        model.sampling_nets(), 2, 3, torch.Generator().manual_seed(1), truncation=0.7
    )
    assert grid.shape == (12, 1, 32, 32) and torch.equal(grid[0], torch.ones(1, 32, 32))  # a blank corner
    assert torch.allclose(grid[1:4], columns) and torch.allclose(grid[4], rows[0])
    assert torch.allclose(grid[9:], mixes[1])
    assert model.plugin.style_mixing and not ganzoo.get_plugin("dcgan").style_mixing
    dcgan = ganzoo.create_model("dcgan", resolution=32, channels=1, **DCGAN)
    with pytest.raises(UsageError, match=r"^dcgan is not a style-based model; --mix needs one, e\.g\. stylegan2$"):
        dcgan.style_mixing_grid()


# -------------------------------------------------------------------------------------------- biggan truncation


def test_the_truncated_normal_resamples_the_entries_outside_the_threshold():
    threshold = 0.8
    z = truncated_normal(2000, 16, threshold, torch.Generator().manual_seed(0))
    first = torch.randn(2000, 16, generator=torch.Generator().manual_seed(0))
    assert z.abs().max() <= threshold and not (z.abs() == threshold).any()  # never clamped onto the bounds
    inside = first.abs() <= threshold
    assert torch.equal(z[inside], first[inside])  # the entries inside stay as drawn
    mass = 2 * NormalDist().cdf(threshold) - 1
    variance = 1 - 2 * threshold * math.exp(-(threshold**2) / 2) / math.sqrt(2 * math.pi) / mass
    assert z.std().item() == pytest.approx(math.sqrt(variance), rel=0.03)  # the truncated normal's
    assert torch.equal(z, truncated_normal(2000, 16, threshold, torch.Generator().manual_seed(0)))
    assert torch.equal(truncated_normal(3, 4, 0.0), torch.zeros(3, 4))


def test_biggan_truncation_psi_0_is_each_classes_mean_sample_and_psi_1_the_untruncated_one():
    model = ganzoo.create_model("biggan", data_info=DIGITS, **BIGGAN)
    assert model.plugin.truncation
    threes = torch.full((4,), 3)
    assert torch.equal(model.sample(4, seed=0, truncation=1.0), model.sample(4, seed=0))
    mean = model.sample(4, seed=0, condition=threes, truncation=0.0)
    assert torch.equal(mean, model.sample(4, seed=1, condition=threes, truncation=0.0))
    # the same sample in every row, up to float rounding: a batched convolution may round rows differently
    assert torch.allclose(mean, mean[:1].expand_as(mean), atol=1e-6)
    with torch.no_grad():
        g = model.ema["generator"].eval()
        assert torch.allclose(mean, g(torch.zeros(4, 8), threes))
    assert not torch.allclose(mean, model.sample(4, seed=0, condition=torch.full((4,), 5), truncation=0.0))
    untruncated = model.sample(4, seed=0, condition=threes)
    half = model.sample(4, seed=0, condition=threes, truncation=0.5)
    assert _distance(half, mean) < _distance(untruncated, mean)
    nets = model.sampling_nets()
    z = model.plugin.latents(nets, 500, torch.Generator().manual_seed(0), truncation=0.5)
    assert z.abs().max() <= NormalDist().inv_cdf(0.75)  # psi keeps that fraction of each entry's mass
    with pytest.raises(UsageError, match=r"biggan truncation=1.5 must be in \[0, 1\]"):
        model.sample(2, truncation=1.5)


# -------------------------------------------------------------------------------------------------------- CLI


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """Saved untrained models (`ganzoo sample` loads them like any source): stylegan2, dcgan and lstm-gan."""
    from ganzoo.text import Vocabulary
    from ganzoo.text.corpus import encode_samples

    root = tmp_path_factory.mktemp("saved")
    names = ["ANNA", "BOB", "CARL", "DORA"] * 4
    dataset = encode_samples(names, Vocabulary.build(names, "char"), max_length=6)
    text = DataInfo(modality="text", num_samples=len(dataset), extras=dataset.extras)
    models = {
        "stylegan2": _stylegan2(),
        "dcgan": ganzoo.create_model("dcgan", resolution=32, channels=1, **DCGAN),
        "lstm-gan": ganzoo.create_model("lstm-gan", data_info=text, embed_dim=8, hidden_dim=8, d_embed_dim=8),
    }
    return {name: ganzoo.save_pretrained(model, root / name) for name, model in models.items()}


def test_sample_interpolate_writes_an_animated_png_or_gif(saved, tmp_path):
    target = tmp_path / "walk.png"
    result = invoke("sample", saved["stylegan2"], "--interpolate", "8", "--out", target)
    assert result.exit_code == 0, result.output
    assert result.output.strip() == f"animation: {target}"
    with Image.open(target) as image:
        assert image.format == "PNG" and image.is_animated and image.n_frames == 8
        assert image.size == (32, 32)  # one 32 px walk
    gif = tmp_path / "walks.gif"
    result = invoke("sample", saved["stylegan2"], "--interpolate", "6", "--n", "4", "--truncation", "0.5", "--out", gif)
    assert result.exit_code == 0, result.output
    with Image.open(gif) as image:
        assert image.format == "GIF" and image.n_frames == 6 and image.size == (70, 70)  # 2x2 walks


def test_sample_mix_writes_the_style_mixing_grid(saved, tmp_path):
    result = invoke("sample", saved["stylegan2"], "--mix", "--out", tmp_path / "mix.png")
    assert result.exit_code == 0, result.output
    with Image.open(tmp_path / "mix.png") as image:
        assert image.size == (5 * 34 + 2, 5 * 34 + 2)  # 4x4 mixes under a header row and beside a header column
    result = invoke("sample", saved["stylegan2"], "--out", tmp_path / "mix-2x3.png", "--mix", "2x3")
    assert result.exit_code == 0, result.output
    with Image.open(tmp_path / "mix-2x3.png") as image:
        assert image.size == (4 * 34 + 2, 3 * 34 + 2)


@pytest.mark.parametrize(
    ("model", "args", "needle"),
    [
        ("dcgan", ["--mix"], "dcgan is not a style-based model; --mix needs one, e.g. stylegan2"),
        ("lstm-gan", ["--interpolate", "4"], "lstm-gan draws its samples from no latent to interpolate"),
        ("stylegan2", ["--interpolate", "1"], "'--interpolate': 1 is not in the range x>=2"),
        ("stylegan2", ["--interpolate", "4", "--mix"], "--interpolate and --mix draw different pictures"),
        ("stylegan2", ["--mix", "0x3"], "'0x3' is not ROWSxCOLUMNS"),
        ("stylegan2", ["--mix", "--n", "4"], "--mix takes no --n or --label"),
        ("stylegan2", ["--interpolate", "4", "--out", "x.jpg"], "accepted file types are .png, .gif for an animation"),
        ("dcgan", ["--interpolate", "4", "--truncation", "0.5"], "dcgan does not support --truncation"),
    ],
    ids=lambda value: " ".join(value) if isinstance(value, list) else value,
)
def test_sample_tool_refusals_are_one_line_with_exit_code_2(saved, tmp_path, model, args, needle):
    assert_one_line_error(invoke("sample", saved[model], *args), 2, needle)

"""The lstm-gan plugin: networks, sampling (temperature, top-k), the Gumbel-softmax and REINFORCE paths, MLE, the
phased schedule. The update functions are driven directly with a hand-built StepContext, as the engine calls them."""

from __future__ import annotations

import dataclasses
import json
import math

import pytest
import torch
import torch.nn.functional as F

import ganzoo
from ganzoo import DataInfo, StepContext, UsageError
from ganzoo.text import Vocabulary
from ganzoo.text.corpus import encode_samples
from ganzoo_plugins import lstm_gan
from ganzoo_plugins.lstm_gan import beta_at, plugin
from ganzoo_plugins.lstm_gan.networks import TextDiscriminator

NAMES = ["ANNA", "BOB", "CARL", "DORA", "EMMA", "FRED", "GRETA", "HANS", "IDA", "JAN", "KARL", "LENA"] * 4
TINY = {"embed_dim": 8, "hidden_dim": 16, "d_embed_dim": 8, "d_hidden_dim": 8, "d_kernel_sizes": (2, 3)}


@pytest.fixture(autouse=True)
def _one_thread():
    """Networks this small run many times faster on one thread than on contended cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _setup(**overrides):
    config = dataclasses.replace(plugin.default_config(), **{**TINY, **overrides})
    dataset = encode_samples(NAMES, Vocabulary.build(NAMES, "char"), max_length=6)
    info = DataInfo(modality="text", num_samples=len(dataset), extras=dataset.extras)
    torch.manual_seed(0)
    nets = plugin.build(config, info)
    return config, info, nets, dataset


def _context(config, info, step=0, total_steps=100, batch_size=8):
    return StepContext(step, torch.device("cpu"), "fp32", config, info, batch_size, total_steps=total_steps)


def _batch(dataset, n=8):
    return dataset.__getitems__(list(range(n)))


@pytest.mark.parametrize("g_kind", ["lstm", "relational"])
def test_gumbel_path_passes_gradients_from_d_to_g(g_kind):
    config, info, nets, _ = _setup(g_kind=g_kind)
    g, d = nets["generator"], nets["discriminator"]
    d.requires_grad_(False)  # as the engine does for a generator update
    loss, logs = lstm_gan._g_gumbel_step(
        nets, {}, _context(config, info, step=config.pretrain_steps + 10, total_steps=config.pretrain_steps + 100)
    )
    loss.backward()
    assert torch.isfinite(loss)
    assert 1.0 < logs["beta"] < config.beta_max
    for name, param in g.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, name


def test_straight_through_shows_d_hard_one_hots_and_passes_the_soft_gradient():
    config, info, nets, _ = _setup(straight_through=True)
    ctx = _context(config, info, step=config.pretrain_steps + 10, total_steps=config.pretrain_steps + 100)
    seen = []
    nets["discriminator"].register_forward_pre_hook(lambda module, args: seen.append(args[0].detach()))
    nets["discriminator"].requires_grad_(False)
    loss, _ = lstm_gan._g_gumbel_step(nets, {}, ctx)
    loss.backward()
    (fake,) = seen
    assert torch.allclose(fake, F.one_hot(fake.argmax(dim=2), fake.shape[2]).float(), atol=1e-6)  # hard + soft - soft
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in nets["generator"].parameters())


@pytest.mark.parametrize("step", [lstm_gan._g_gumbel_step, lstm_gan._g_reinforce_step])
def test_mle_weight_adds_the_data_nll_to_the_adversarial_generator_loss(step):
    config, info, nets, dataset = _setup(mle_weight=0.5, rollouts=2)
    ctx = _context(config, info, step=config.pretrain_steps + 10, total_steps=config.pretrain_steps + 100)
    batch = _batch(dataset)
    torch.manual_seed(1)
    anchored, logs = step(nets, batch, ctx)
    torch.manual_seed(1)
    plain, _ = step(nets, batch, dataclasses.replace(ctx, config=dataclasses.replace(config, mle_weight=0.0)))
    nll, _ = lstm_gan._mle_step(nets, batch, ctx)
    assert float(logs["nll"]) == pytest.approx(float(nll.detach()))
    assert float(anchored.detach()) == pytest.approx(float(plain.detach()) + 0.5 * float(nll.detach()), rel=1e-5)
    schedule = {s.name: s for s in plugin.schedule(config)}
    assert schedule["generator"].needs_data  # the anchor needs a data batch
    assert not {s.name: s for s in plugin.schedule(dataclasses.replace(config, mle_weight=0.0))}["generator"].needs_data


def test_gumbel_sample_is_soft_one_hot_with_hard_argmax():
    _, _, nets, _ = _setup()
    g = nets["generator"]
    soft, hard = g.gumbel_sample(64, beta=1000.0, generator=torch.Generator().manual_seed(0))
    assert soft.shape == (64, 6, g.vocab_size) and hard.shape == (64, 6)
    assert torch.allclose(soft.sum(-1), torch.ones(64, 6))
    assert torch.equal(soft.argmax(-1), hard)  # beta 1000: the soft sample is the hard one
    vocab = g.vocab
    after_eos = torch.cumsum(hard == vocab.eos, dim=1).roll(1, dims=1)
    after_eos[:, 0] = 0
    assert torch.all(hard[after_eos > 0] == vocab.pad)
    assert not torch.isin(hard[after_eos == 0], torch.tensor([vocab.pad, vocab.bos, vocab.unk])).any()
    softer, _ = g.gumbel_sample(64, beta=1.0, generator=torch.Generator().manual_seed(0))
    assert softer.amax(-1).mean() < soft.amax(-1).mean()


def test_reinforce_gives_a_finite_policy_gradient():
    config, info, nets, _ = _setup(adversarial="reinforce", rollouts=3)
    nets["discriminator"].requires_grad_(False)
    loss, logs = lstm_gan._g_reinforce_step(nets, {}, _context(config, info))
    loss.backward()
    assert torch.isfinite(loss) and 0 < float(logs["reward"]) < 1
    grads = torch.cat([p.grad.flatten() for p in nets["generator"].parameters()])
    assert torch.isfinite(grads).all() and grads.abs().sum() > 0


@pytest.mark.parametrize("g_kind", ["lstm", "relational"])
def test_rollout_rewards_of_a_full_prefix_are_the_sequence_score(g_kind):
    _, _, nets, dataset = _setup(g_kind=g_kind)
    g, d = nets["generator"], nets["discriminator"]
    tokens = dataset.tokens[:5]
    rewards = g.rollout_rewards(tokens, d, rollouts=4, generator=torch.Generator().manual_seed(0))
    assert rewards.shape == (5, 6) and ((rewards > 0) & (rewards < 1)).all()
    expected = torch.sigmoid(d(F.one_hot(tokens, g.vocab_size).float()))
    assert torch.allclose(rewards[:, -1], expected)


def test_relational_memory_steps_match_teacher_forcing_and_start_from_the_identity():
    from ganzoo_plugins.lstm_gan.networks import RelationalMemory

    _, _, nets, dataset = _setup(g_kind="relational", mem_slots=2, heads=4)
    g = nets["generator"]
    assert isinstance(g.memory, RelationalMemory) and not hasattr(g, "lstm")
    assert torch.equal(g.memory.initial, torch.eye(2, 16))
    tokens = dataset.tokens[:4]
    with torch.no_grad():
        forced = g(tokens)
        state, inputs, stepped = None, g._teacher_inputs(tokens), []
        for t in range(tokens.shape[1]):
            logits, state = g._step(inputs[:, t], state)
            stepped.append(logits)
    assert torch.allclose(forced, torch.stack(stepped, dim=1), atol=1e-5)  # sampling and scoring agree
    assert state.shape == (4, 2, 16)
    with pytest.raises(UsageError, match="multiple of heads=3"):
        ganzoo.create_model(plugin, data_info=_setup()[1], **{**TINY, "g_kind": "relational", "heads": 3})


@pytest.mark.parametrize("g_kind", ["lstm", "relational"])
def test_mle_pretraining_lowers_the_training_nll(g_kind):
    config, info, nets, dataset = _setup(g_kind=g_kind)
    g = nets["generator"]
    optimizer = torch.optim.Adam(g.parameters(), lr=1e-2)
    before = plugin.nll(nets, dataset.tokens, dataset.lengths)
    assert before == pytest.approx(math.log(g.vocab_size - 3), rel=0.2)  # about uniform over the emitted ids
    ctx = _context(config, info)
    for step in range(40):
        ctx.step = step
        loss, _ = lstm_gan._mle_step(nets, _batch(dataset, 16), ctx)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    after = plugin.nll(nets, dataset.tokens, dataset.lengths)
    assert after < 0.6 * before


def test_nll_at_a_temperature_scores_the_distribution_sampled_at_it():
    """Gibbs' inequality: samples drawn at a temperature are likeliest, on average, under that temperature's
    distribution, so `nll(temperature=)` and `sample(temperature=)` must describe the same distribution."""
    _, _, nets, _ = _setup()
    g = nets["generator"]
    with torch.no_grad():  # an untrained G is near uniform: sharpen it so the temperatures differ clearly
        g.head.weight.mul_(20)
    for drawn_at, other in ((0.5, 1.0), (1.0, 0.5)):
        tokens = g.sample(2000, temperature=drawn_at, generator=torch.Generator().manual_seed(0))
        own = plugin.nll(nets, tokens, temperature=drawn_at)
        assert own < plugin.nll(nets, tokens, temperature=other) - 0.05


def test_discriminator_step_trains_d_on_real_and_generated():
    for adversarial in ("gumbel", "reinforce"):
        config, info, nets, dataset = _setup(adversarial=adversarial)
        nets["generator"].requires_grad_(False)
        loss, logs = lstm_gan._d_step(nets, _batch(dataset), _context(config, info))
        loss.backward()
        assert torch.isfinite(loss) and {"d_real", "d_fake"} <= set(logs)
        assert all(p.grad.abs().sum() > 0 for p in nets["discriminator"].parameters())


@pytest.mark.parametrize("kind", ["cnn", "lstm"])
def test_r1_gamma_adds_the_penalty_on_the_real_one_hots_to_d_loss(kind):
    from ganzoo.losses import gradient_penalty

    losses = {}
    for gamma in (0.0, 4.0):
        config, info, nets, dataset = _setup(r1_gamma=gamma, d_kind=kind)
        torch.manual_seed(1)
        losses[gamma], logs = lstm_gan._d_step(nets, _batch(dataset), _context(config, info))
    d, tokens = nets["discriminator"], _batch(dataset)["tokens"]
    expected = gradient_penalty(d, F.one_hot(tokens, d.vocab_size).float(), "r1").item()
    assert logs["r1_penalty"].item() == pytest.approx(expected) and expected > 0
    assert (losses[4.0] - losses[0.0]).item() == pytest.approx(2.0 * expected, rel=1e-4)
    losses[4.0].backward()  # double backprop through D's input gradient
    assert all(torch.isfinite(p.grad).all() for p in d.parameters())


def _entropy(ids: torch.Tensor, size: int) -> float:
    p = torch.bincount(ids, minlength=size).float() / len(ids)
    p = p[p > 0]
    return float(-(p * p.log()).sum())


def test_lower_temperature_gives_lower_entropy():
    _, _, nets, _ = _setup()
    g = nets["generator"]
    with torch.no_grad():
        g.head.weight.mul_(5)  # a peaked distribution, so that temperature matters
    entropies = []
    for temperature in (0.5, 1.0, 2.0):
        ids = g.sample(1000, temperature=temperature, generator=torch.Generator().manual_seed(0))
        entropies.append(_entropy(ids[:, 0], g.vocab_size))
    assert entropies[0] < entropies[1] < entropies[2]
    with pytest.raises(ValueError, match="temperature"):
        g.sample(2, temperature=0)


def test_top_k_draws_only_the_k_likeliest_tokens():
    _, _, nets, _ = _setup()
    g = nets["generator"]
    tokens = g.sample(200, top_k=2, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        top2 = g(tokens).topk(2, dim=-1).indices  # the same prefixes, so the same conditionals
    emitted = tokens != g.vocab.pad
    assert (top2 == tokens[..., None]).any(-1)[emitted].all()
    assert len(torch.unique(tokens[:, 0])) == 2


@pytest.mark.parametrize("top_p", [0.05, 0.3, 0.5, 0.9, 0.999])
def test_top_p_keeps_exactly_the_smallest_set_that_reaches_p(top_p):
    from ganzoo.text.sampling import shape_logits

    logits = torch.randn(64, 40, generator=torch.Generator().manual_seed(1)) * 3
    kept = torch.isfinite(shape_logits(logits, top_p=top_p))
    probs = torch.softmax(logits, dim=1)
    for row_probs, row_kept in zip(probs, kept, strict=True):
        ordered = row_probs.sort(descending=True).values
        size = int(row_kept.sum())
        assert ordered[:size].sum() >= top_p - 1e-6  # the kept ids make up p ...
        assert size == 1 or ordered[: size - 1].sum() < top_p  # ... and one fewer would not
        assert row_probs[row_kept].min() >= torch.cat([row_probs[~row_kept], torch.zeros(1)]).max()  # likeliest
    assert torch.isfinite(shape_logits(logits, top_p=1.0)).all()
    with pytest.raises(ValueError, match="top_p"):
        shape_logits(logits, top_p=0.0)


def test_top_p_sampling_draws_from_the_nucleus_only():
    _, _, nets, _ = _setup()
    g = nets["generator"]
    tokens = g.sample(300, top_p=0.5, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        from ganzoo.text.sampling import shape_logits

        first = shape_logits(g(tokens)[:1, 0], top_p=0.5)  # every sample's first token has the same conditional
    assert set(tokens[:, 0].tolist()) <= set(torch.isfinite(first[0]).nonzero().flatten().tolist())
    everything = g.sample(300, generator=torch.Generator().manual_seed(0))
    assert len(torch.unique(tokens[:, 0])) <= len(torch.unique(everything[:, 0]))


def test_sample_returns_strings_and_decode_matches_the_ids():
    _, _, nets, _ = _setup()
    texts = plugin.sample(nets, 16, generator=torch.Generator().manual_seed(0))
    tokens = plugin.sample_tokens(nets, 16, generator=torch.Generator().manual_seed(0))
    assert texts == plugin.decode(nets, tokens)
    assert len(texts) == 16 and all(isinstance(t, str) and len(t) <= 6 for t in texts)
    assert set("".join(texts)) <= set("".join(NAMES))  # no <unk>: the data has none
    with pytest.raises(UsageError, match="not a conditional"):
        plugin.sample(nets, 2, condition=torch.zeros(2))


def test_vocabulary_file_for_checkpoints_and_hub_repos(tmp_path):
    _, info, nets, _ = _setup()
    files = plugin.extra_files(info)
    assert list(files) == ["vocab.json"]
    (tmp_path / "vocab.json").write_text(files["vocab.json"], encoding="utf-8")
    assert Vocabulary.load(tmp_path) == nets["generator"].vocab


def test_fixed_length_ids_never_end_early():
    dataset = encode_samples([[1, 2, 3], [4, 0, 2]], Vocabulary.for_ids(5))
    info = DataInfo(modality="text", extras=dataset.extras)
    nets = plugin.build(dataclasses.replace(plugin.default_config(), **TINY), info)
    tokens = plugin.sample_tokens(nets, 100, generator=torch.Generator().manual_seed(0))
    assert tokens.shape == (100, 3) and int(tokens.max()) < 5  # only corpus ids: no eos, pad, bos or unk
    assert plugin.decode(nets, tokens[:1])[0].count(" ") == 2


@pytest.mark.parametrize("kind", ["cnn", "lstm"])
def test_discriminators_take_soft_one_hot_sequences(kind):
    d = TextDiscriminator(12, max_length=3, kind=kind, embed_dim=8, hidden_dim=8, kernel_sizes=(2, 5))
    soft = torch.softmax(torch.randn(4, 3, 12), dim=-1).requires_grad_(True)
    logits = d(soft)
    assert logits.shape == (4,)
    logits.sum().backward()
    assert soft.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="one-hot"):
        d(torch.zeros(4, 3, 11))


@pytest.mark.parametrize("kind", ["cnn", "lstm"])
def test_discriminators_score_ids_as_their_one_hots(kind):
    d = TextDiscriminator(12, max_length=5, kind=kind, embed_dim=8, hidden_dim=8, kernel_sizes=(2, 3))
    ids = torch.randint(0, 12, (6, 5), generator=torch.Generator().manual_seed(0))
    assert torch.allclose(d(ids), d(F.one_hot(ids, 12).float()), atol=1e-6)
    with pytest.raises(ValueError, match="token ids"):
        d(ids[:, :, None])


def test_straight_through_d_updates_score_the_hard_samples_as_ids():
    config, info, nets, dataset = _setup(straight_through=True)
    ctx = _context(config, info, step=config.pretrain_steps + 10, total_steps=config.pretrain_steps + 100)
    seen = []
    nets["discriminator"].register_forward_pre_hook(lambda module, args: seen.append(args[0]))
    lstm_gan._d_step(nets, _batch(dataset), ctx)
    real, fake = seen
    assert not real.is_floating_point() and not fake.is_floating_point() and fake.shape == real.shape


def test_beta_annealing_schedules():
    assert beta_at(100, 100, 200, 100.0, "exp") == pytest.approx(1.0)
    assert beta_at(199, 100, 200, 100.0, "exp") == pytest.approx(100.0)
    assert beta_at(150, 100, 201, 100.0, "exp") == pytest.approx(10.0)  # halfway: sqrt(100)
    assert beta_at(150, 100, 201, 100.0, "linear") == pytest.approx(50.5)
    assert beta_at(50, 100, 200, 100.0, "linear") == 1.0 and beta_at(500, 100, 200, 100.0, "linear") == 100.0


def test_vocab_size_sizes_the_networks_for_token_id_data(tmp_path):
    from ganzoo import Trainer

    corpus = tmp_path / "ids.txt"
    corpus.write_text("3 1 4 1\n5 9 2 6\n" * 8, encoding="utf-8")
    train = {"steps": 2, "batch_size": 4, "progress": False, "tensorboard": False}
    config = {**TINY, "pretrain_steps": 1, "vocab_size": 50}
    result = Trainer(plugin, config, train, data=f"tokens:{corpus}", out=tmp_path / "run").fit()
    g = result.model.nets["generator"]
    assert g.vocab.pad == 50 and len(g.vocab) == len(Vocabulary.for_ids(50))
    assert result.model.nets["discriminator"].vocab_size == len(g.vocab)


def test_build_refuses_non_text_data():
    with pytest.raises(UsageError, match="needs text data"):
        plugin.build(plugin.default_config(), DataInfo(modality="image", channels=1, resolution=28))


def test_schedule_is_mle_then_d_pretraining_then_adversarial():
    config = dataclasses.replace(plugin.default_config(), pretrain_steps=10, pretrain_d_steps=5, d_steps=3)
    steps = {s.name: s for s in plugin.schedule(config)}
    assert list(steps) == ["mle", "d_pretrain", "discriminator", "generator"]
    assert steps["mle"].steps == (0, 10) and steps["d_pretrain"].steps == (10, 15)
    assert steps["discriminator"].steps == (15, None) and steps["discriminator"].repeats == 3
    assert not steps["generator"].needs_data and steps["generator"].loss is lstm_gan._g_gumbel_step
    assert steps["mle"].optimizer == "mle" and steps["generator"].optimizer is None  # MLE: its own Adam
    assert set(plugin.optimizers(config)) == {"generator", "discriminator", "mle"}
    no_pretraining = dataclasses.replace(config, pretrain_steps=0, pretrain_d_steps=0, adversarial="reinforce")
    assert [s.name for s in plugin.schedule(no_pretraining)] == ["discriminator", "generator"]
    assert plugin.schedule(no_pretraining)[-1].loss is lstm_gan._g_reinforce_step
    assert set(plugin.optimizers(no_pretraining)) == {"generator", "discriminator"}


def test_trains_on_the_engine_and_samples_text(tmp_path):
    from ganzoo import Trainer

    path = tmp_path / "names.txt"
    path.write_text("\n".join(NAMES) + "\n", encoding="utf-8")
    config = {**TINY, "pretrain_steps": 3, "pretrain_d_steps": 1}
    train = {"steps": 6, "batch_size": 8, "progress": False, "sample_grid": 4, "log_every": 2}
    result = Trainer(plugin, config=config, train=train, data=f"text:{path}", out=tmp_path / "run").fit()
    assert result.step == 6
    lines = result.samples.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 4 and set("".join(lines)) <= set("".join(NAMES))
    assert result.model.data_info.extras["vocab"]["tokens"] == Vocabulary.build(NAMES, "char").tokens
    defaults = plugin.default_config()
    lrs = [json.loads(line) for line in (result.run_dir / "metrics.jsonl").read_text().splitlines()][-1]
    assert (lrs["lr/mle"], lrs["lr/generator"]) == pytest.approx((defaults.lr_mle, defaults.lr_g))


def test_sample_command_prints_or_writes_text(tmp_path):
    from click.testing import CliRunner

    from ganzoo import Trainer
    from ganzoo.cli import cli

    path = tmp_path / "names.txt"
    path.write_text("\n".join(NAMES) + "\n", encoding="utf-8")
    train = {"steps": 2, "batch_size": 8, "progress": False, "tensorboard": False}
    run = tmp_path / "run"
    Trainer(plugin, config={**TINY, "pretrain_steps": 2}, train=train, data=f"text:{path}", out=run).fit()
    runner = CliRunner()
    printed = runner.invoke(cli, ["sample", str(run), "--n", "5", "--temperature", "0.5", "--top-k", "3"])
    assert printed.exit_code == 0, printed.output
    lines = printed.output.splitlines()
    assert len(lines) == 5 and set("".join(lines)) <= set("".join(NAMES))
    nucleus = runner.invoke(cli, ["sample", str(run), "--n", "4", "--top-p", "0.9"])
    assert nucleus.exit_code == 0 and len(nucleus.output.splitlines()) == 4, nucleus.output
    assert runner.invoke(cli, ["sample", str(run), "--top-p", "1.5"]).exit_code == 2
    written = runner.invoke(cli, ["sample", str(run), "--n", "3", "--out", str(tmp_path / "names-out.txt")])
    assert written.exit_code == 0 and len((tmp_path / "names-out.txt").read_text().splitlines()) == 3
    as_image = runner.invoke(cli, ["sample", str(run), "--out", str(tmp_path / "names.png")])
    assert as_image.exit_code != 0 and "write it to a .txt file" in as_image.output
    labelled = runner.invoke(cli, ["sample", str(run), "--label", "1"])
    assert labelled.exit_code != 0 and "takes no --label" in labelled.output
    image_run = tmp_path / "dcgan"
    Trainer("dcgan", {"g_width": 4, "d_width": 4}, {**train, "steps": 1}, out=image_run).fit()
    refused = runner.invoke(cli, ["sample", str(image_run), "--temperature", "0.5"])
    assert refused.exit_code != 0 and "are for text models" in refused.output


# ------------------------------------------------------------------------------------------------ evaluation


def test_eval_scores_text_models_with_bleu_and_self_bleu(tmp_path):
    from click.testing import CliRunner

    from ganzoo import Trainer, load_pretrained
    from ganzoo.cli import cli
    from ganzoo.metrics.evaluation import evaluate
    from ganzoo.metrics.text import bleu, self_bleu

    corpus = tmp_path / "names.txt"
    corpus.write_text("\n".join(NAMES) + "\n", encoding="utf-8")
    held_out = tmp_path / "held-out.txt"
    held_out.write_text("ANNA\nBERTA\nCARLA\n", encoding="utf-8")
    train = {"steps": 4, "batch_size": 8, "progress": False, "tensorboard": False}
    train.update(eval_every=2, eval_n=20, eval_data=f"text:{held_out}")
    run = tmp_path / "run"
    Trainer(plugin, {**TINY, "pretrain_steps": 2}, train, data=f"text:{corpus}", out=run).fit()
    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [line["step"] for line in lines if "eval/bleu4" in line] == [2, 4]  # bleu: the text default
    assert (run / "checkpoints" / "best" / "model.safetensors").is_file()

    model = load_pretrained(run)
    result = evaluate(model, f"text:{held_out}", n=30, seed=3)
    names = [list(name) for name in model.sample(30, seed=3)]  # characters: the model's tokens
    assert result["bleu4"] == pytest.approx(bleu(names, [list("ANNA"), list("BERTA"), list("CARLA")]))
    assert result["self_bleu4"] == pytest.approx(self_bleu(names, sample=500, seed=3))
    assert result["reference_n"] == 3 and result["n"] == 30

    runner = CliRunner()
    printed = runner.invoke(cli, ["eval", str(run), "--n", "30", "--data", f"text:{held_out}"])
    assert printed.exit_code == 0, printed.output
    assert {line.split()[0] for line in printed.output.splitlines()} >= {"bleu4", "self_bleu4", "reference_n"}
    assert json.loads((run / "eval.json").read_text())["evaluations"][-1]["bleu4"] >= 0
    refused = runner.invoke(cli, ["eval", str(run), "--metrics", "fid"])
    assert refused.exit_code == 2
    assert "fid: not a metric for lstm-gan's text samples; accepted: bleu, self-bleu" in refused.output

    # the quality-diversity curve: the same scores as sampling at each temperature by hand
    curved = evaluate(model, f"text:{held_out}", n=30, seed=3, temperatures=[0.5, 2.0])
    assert (curved["bleu4"], curved["self_bleu4"]) == (result["bleu4"], result["self_bleu4"])  # temperature 1
    assert [point["temperature"] for point in curved["curve"]] == [0.5, 2.0]
    for point in curved["curve"]:
        drawn = [list(name) for name in model.sample(30, seed=3, temperature=point["temperature"])]
        assert point["self_bleu4"] == pytest.approx(self_bleu(drawn, sample=500, seed=3))
    cold, hot = curved["curve"]
    assert cold["self_bleu4"] > hot["self_bleu4"]  # colder: less varied
    printed = runner.invoke(
        cli, ["eval", str(run), "--n", "30", "--data", f"text:{held_out}", "--temperatures", "0.5,2"]
    )
    assert printed.exit_code == 0 and "temperature 0.5  bleu4 " in printed.output, printed.output
    assert runner.invoke(cli, ["eval", str(run), "--temperatures", "warm"]).exit_code == 2
    assert runner.invoke(cli, ["eval", str(run), "--temperatures", "0,1"]).exit_code == 2


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_lstms_run_in_float32_where_onednn_has_no_kernel(monkeypatch, dtype):
    """Under CPU autocast to fp16 (anywhere) or bf16 (on a CPU without native bf16, e.g. AVX2 only) oneDNN cannot
    build an LSTM: `run_lstm` runs it in float32 instead, giving the float32 LSTM's output."""
    from ganzoo_plugins.lstm_gan import networks

    monkeypatch.setattr(networks, "cpu_supports_bf16", lambda: False)
    lstm = torch.nn.LSTM(4, 8, batch_first=True)
    inputs = torch.randn(2, 5, 4)
    expected, _ = lstm(inputs)
    with torch.autocast("cpu", dtype=dtype):
        out, (hidden, cell) = networks.run_lstm(lstm, inputs.to(dtype))
    assert out.dtype == hidden.dtype == cell.dtype == torch.float32
    assert torch.allclose(out, lstm(inputs.to(dtype).float())[0])
    assert torch.allclose(out, expected, atol=0.02)  # only the input's rounding to `dtype` differs

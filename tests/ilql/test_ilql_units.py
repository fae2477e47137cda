"""ILQL bricks: causal attention and KV cache, batches, loss terms, targets, checkpoints."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

torch = pytest.importorskip("torch")

from flwr_declearn.ilql import (  # noqa: E402
    CodeTask,
    Episode,
    GPTConfig,
    ILQLBatch,
    ILQLConfig,
    ILQLModel,
    ILQLNetwork,
    collate,
    decode,
    ilql_loss,
    load_checkpoint,
    save_checkpoint,
)
from flwr_declearn.optimizer import Optimizer  # noqa: E402

TINY = GPTConfig(vocab_size=13, n_layer=2, n_head=4, n_embd=64, block_size=16, dropout=0.0)


def _net(config: ILQLConfig | None = None, seed: int = 0, **gpt: object) -> ILQLNetwork:
    torch.manual_seed(seed)
    cfg = GPTConfig(**{**TINY.to_dict(), **gpt}) if gpt else TINY
    net = ILQLNetwork(cfg, config or ILQLConfig())
    # Random heads of a realistic scale, so that beta * (Q - V) matters in decoding.
    with torch.no_grad():
        for head in (net.q, net.target_q, net.v):
            head[-1].weight.normal_(0.0, 0.5)
    return net


def _episodes(seed: int = 0) -> list[Episode]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(6):
        n_tok = int(rng.integers(3, 9))
        mask = [False] + [bool(b) for b in rng.random(n_tok - 1) < 0.7]
        if not any(mask):
            mask[-1] = True
        n_act = sum(mask)
        out.append(
            Episode(
                tokens=rng.integers(0, 13, size=n_tok).tolist(),
                action_mask=mask,
                rewards=rng.normal(size=n_act).tolist(),
                done=bool(rng.random() < 0.7),
            )
        )
    return out


# -- configs -------------------------------------------------------------------------------------


def test_configs_default_to_the_agilerl_names_and_values() -> None:
    cfg = ILQLConfig()
    assert (cfg.gamma, cfg.tau, cfg.alpha, cfg.beta) == (0.99, 0.6, 0.005, 0.0)
    assert (cfg.cql_temp, cfg.dm_margin, cfg.double_q, cfg.exp_weights) == (1.0, 0.0, True, True)
    assert cfg.clip_weight is None and cfg.value_min is None and cfg.value_max is None
    agilerl_net_config = {
        "arch": "gpt", "vocab_size": 50257, "n_embd": 768, "n_head": 12, "n_layer": 12,
        "dim_feedfwd": 3072, "block_size": 1024, "activation": "gelu", "dropout": 0.1,
        "layer_norm_eps": 1e-5, "min_layers": 8, "max_layers": 16, "bias": True,
    }  # fmt: skip
    gpt = GPTConfig.from_dict(agilerl_net_config)
    assert gpt == GPTConfig(dim_feedfwd=3072)
    assert gpt.hidden_ff == 3072


def test_zero_token_loss_weight_is_rejected_because_decoding_uses_the_policy_head() -> None:
    with pytest.raises(ValueError, match="awac_weight"):
        ILQLConfig(awac_weight=0.0)
    with pytest.raises(ValueError, match="Unknown ILQLConfig"):
        ILQLConfig.from_dict({"tua": 0.7})
    with pytest.raises(ValueError, match="multiple of n_head"):
        GPTConfig(n_embd=30, n_head=4)


# -- causal attention and the KV cache -----------------------------------------------------------


def test_hidden_states_never_depend_on_later_tokens() -> None:
    net = _net().eval()
    tokens = torch.randint(0, 13, (3, 10))
    changed = tokens.clone()
    changed[:, 6:] = (changed[:, 6:] + 1) % 13
    with torch.no_grad():
        h1, _ = net.hidden_states(tokens)
        h2, _ = net.hidden_states(changed)
    torch.testing.assert_close(h1[:, :6], h2[:, :6], rtol=0, atol=1e-6)
    assert not torch.allclose(h1[:, 6:], h2[:, 6:])


def test_prompt_and_step_passes_with_a_cache_match_the_full_pass() -> None:
    net = _net().eval()
    tokens = torch.randint(0, 13, (2, 9))
    with torch.no_grad():
        full, _ = net.hidden_states(tokens)
        part, cache = net.hidden_states(tokens[:, :5], use_cache=True)
        steps = [part]
        for pos in range(5, 9):
            step, cache = net.hidden_states(tokens[:, pos : pos + 1], cache=cache, use_cache=True)
            steps.append(step)
    torch.testing.assert_close(torch.cat(steps, dim=1), full, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("sample", [False, True])
def test_cached_and_uncached_decoding_give_the_same_tokens(sample: bool) -> None:
    net = _net(ILQLConfig(beta=2.0))
    prompts = torch.randint(0, 13, (4, 3))
    out = {}
    for use_cache in (True, False):
        gen = torch.Generator().manual_seed(7)
        out[use_cache] = decode(net, prompts, 8, sample=sample, generator=gen, use_cache=use_cache)
    assert out[True].shape == (4, 11)
    assert torch.equal(out[True], out[False])


def test_left_padded_prompts_decode_like_unpadded_ones() -> None:
    net = _net(ILQLConfig(beta=1.0))
    short = torch.tensor([[5, 2]])
    long = torch.tensor([[1, 7, 3, 4]])
    batch = torch.tensor([[0, 0, 5, 2], [1, 7, 3, 4]])
    mask = torch.tensor([[0, 0, 1, 1], [1, 1, 1, 1]])
    for use_cache in (True, False):
        both = decode(net, batch, 5, prompt_mask=mask, use_cache=use_cache)
        assert torch.equal(both[0, 2:], decode(net, short, 5, use_cache=use_cache)[0])
        assert torch.equal(both[1], decode(net, long, 5, use_cache=use_cache)[0])


def test_beta_zero_decodes_the_policy_head_alone() -> None:
    net = _net(ILQLConfig(beta=3.0)).eval()
    prompts = torch.randint(0, 13, (5, 2))
    tokens = prompts
    with torch.no_grad():
        for _ in range(4):
            hidden, _ = net.hidden_states(tokens)
            tokens = torch.cat([tokens, net.pi(hidden[:, -1]).argmax(-1, keepdim=True)], dim=1)
    assert torch.equal(decode(net, prompts, 4, beta=0.0), tokens)
    assert not torch.equal(decode(net, prompts, 4), tokens)  # beta = 3 perturbs the policy


# -- batches -------------------------------------------------------------------------------------


def test_collate_places_states_actions_rewards_and_terminals() -> None:
    episodes = [
        Episode([4, 5, 6, 7], [False, True, False, True], [0.5, 1.0]),
        Episode([1, 2, 3], [False, True, True], [0.0, 2.0], done=False),
        Episode([9, 8], [False, True], [3.0]),
    ]
    batch = collate(episodes)
    assert batch.tokens.tolist() == [[4, 5, 6, 7], [1, 2, 3, 0], [9, 8, 0, 0]]
    assert batch.attn_mask.tolist() == [[1, 1, 1, 1], [1, 1, 1, 0], [1, 1, 0, 0]]
    assert batch.action_idxs.tolist() == [[0, 2], [0, 1], [0, 0]]
    assert batch.state_idxs.tolist() == [[0, 2, 3], [0, 1, 2], [0, 1, 0]]
    assert batch.action_tokens[:, :1].tolist() == [[5], [2], [8]]
    assert batch.rewards.tolist() == [[0.5, 1.0], [0.0, 2.0], [3.0, 0.0]]
    assert batch.terminals.tolist() == [[0, 0, 1], [0, 0, 0], [0, 1, 1]]
    assert batch.action_mask.tolist() == [[1, 1], [1, 1], [1, 0]]


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 10_000))
def test_pack_unpack_round_trips_any_collated_batch(seed: int) -> None:
    batch = collate(_episodes(seed))
    back = ILQLBatch.unpack(torch.from_numpy(batch.pack()))
    for name in ("tokens", "attn_mask", "state_idxs", "action_idxs", "terminals", "action_mask"):
        assert torch.equal(getattr(back, name).to(getattr(batch, name).dtype), getattr(batch, name))
    torch.testing.assert_close(back.rewards, batch.rewards)


@settings(max_examples=30, deadline=None)
@given(st.lists(st.floats(-1e3, 1e3, width=32), min_size=1, max_size=40))
def test_unpack_rejects_rows_whose_header_and_width_disagree(values: list[float]) -> None:
    packed = torch.tensor([values], dtype=torch.float32)
    try:
        batch = ILQLBatch.unpack(packed)
    except ValueError as exc:
        assert "Packed ILQL" in str(exc)
    else:
        length, n_act = batch.tokens.shape[1], batch.action_idxs.shape[1]
        assert packed.shape[1] == 2 + 2 * length + 5 * n_act + 2


def test_malformed_episodes_are_rejected_with_their_fault() -> None:
    with pytest.raises(ValueError, match="first token"):
        Episode([1, 2], [True, False], [1.0])
    with pytest.raises(ValueError, match="rewards"):
        Episode([1, 2, 3], [False, True, True], [1.0])
    with pytest.raises(ValueError, match="finite"):
        Episode([1, 2], [False, True], [float("nan")])


# -- the loss ------------------------------------------------------------------------------------


def _reference_terms(net: ILQLNetwork, batch: ILQLBatch) -> dict[str, float]:
    """The ILQL terms by explicit loops over episodes and actions (token reduction)."""
    cfg = net.config
    with torch.no_grad():
        hidden, _ = net.hidden_states(batch.tokens, batch.attn_mask)
        logits = net.pi(hidden)
    sums = dict.fromkeys(("v", "q", "cql", "dm", "token"), 0.0)
    n_act, n_tok = 0, 0
    for b in range(batch.tokens.shape[0]):
        weights = {}
        for k in range(batch.action_idxs.shape[1]):
            if not batch.action_mask[b, k]:
                continue
            n_act += 1
            h = hidden[b, int(batch.action_idxs[b, k])]
            a = int(batch.tokens[b, int(batch.action_idxs[b, k]) + 1])
            v = float(net.v(hidden[b, int(batch.state_idxs[b, k])]))
            v_next = float(net.v(hidden[b, int(batch.state_idxs[b, k + 1])]))
            tq = min(float(net.target_q(h)[a]), float(net.target_q2(h)[a]))
            diff = tq - v
            sums["v"] += (cfg.tau if diff >= 0 else 1 - cfg.tau) * diff**2
            y = (
                float(batch.rewards[b, k])
                + cfg.gamma * (1 - float(batch.terminals[b, k + 1])) * v_next
            )
            for head in (net.q, net.q2):
                qs = head(h)
                sums["q"] += (y - float(qs[a])) ** 2
                sums["cql"] += float(-torch.log_softmax(qs / cfg.cql_temp, -1)[a])
                sums["dm"] += float((torch.relu(qs - qs[a] + cfg.dm_margin) ** 2).sum())
            weights[int(batch.action_idxs[b, k])] = np.exp(cfg.beta * diff)
        for t in range(batch.tokens.shape[1] - 1):
            if not batch.attn_mask[b, t + 1]:
                continue
            n_tok += 1
            w = min(weights.get(t, cfg.transition_weight), cfg.clip_weight or np.inf)
            ce = float(-torch.log_softmax(logits[b, t], -1)[int(batch.tokens[b, t + 1])])
            sums["token"] += w * ce
    return {
        **{key: sums[key] / n_act for key in ("v", "q", "cql", "dm")},
        "token": sums["token"] / n_tok,
    }


def test_loss_terms_match_an_explicit_per_action_computation() -> None:
    config = ILQLConfig(
        beta=0.7, tau=0.7, gamma=0.9, dm_margin=0.1, cql_temp=0.5, transition_weight=0.2,
        clip_weight=1.5, cql_loss_weight=0.3, dm_loss_weight=0.2,
    )  # fmt: skip
    net = _net(config).eval()
    with torch.no_grad():  # targets differ from the online heads, as after training
        for p in net.target_q2.parameters():
            p.add_(0.05 * torch.randn_like(p))
    batch = collate(_episodes(3))
    with torch.no_grad():
        terms = ilql_loss(net, batch, reduction="token")
        expected = _reference_terms(net, batch)
    for key, value in expected.items():
        assert float(getattr(terms, key)) == pytest.approx(value, rel=1e-4, abs=1e-6), key
    total = terms.token + terms.v + terms.q + 0.3 * terms.cql + 0.2 * terms.dm
    assert float(terms.total) == pytest.approx(float(total), rel=1e-6)


def test_episode_and_token_reductions_agree_on_equal_length_episodes() -> None:
    net = _net(ILQLConfig(beta=1.0)).eval()
    task = CodeTask(n_contexts=4, n_symbols=9)
    batch = collate(task.behaviour_episodes(range(4), 16, seed=1))
    with torch.no_grad():
        per_token = ilql_loss(net, batch, "token")
        per_episode = ilql_loss(net, batch, "episode")
    for key in ("total", "token", "v", "q", "cql", "dm"):
        torch.testing.assert_close(getattr(per_episode, key).mean(), getattr(per_token, key))


def test_gradients_reach_only_the_online_parts() -> None:
    net = _net()
    ilql_loss(net, collate(_episodes(1))).total.backward()
    for name, param in net.named_parameters():
        if name.startswith("target_"):
            assert param.grad is None and not param.requires_grad, name
        else:
            assert param.grad is not None, name


# -- target heads --------------------------------------------------------------------------------


def test_soft_update_hard_update_and_clone() -> None:
    net = _net(ILQLConfig(alpha=0.25))
    with torch.no_grad():
        for p in net.q.parameters():
            p.add_(1.0)
    old = [p.clone() for p in net.target_q.parameters()]
    net.soft_update()
    for new, prev, online in zip(net.target_q.parameters(), old, net.q.parameters(), strict=True):
        torch.testing.assert_close(new, 0.75 * prev + 0.25 * online)
    net.hard_update()
    for target, online in zip(net.target_q2.parameters(), net.q2.parameters(), strict=True):
        assert torch.equal(target, online)
    twin = net.clone()
    assert all(
        torch.equal(a, b)
        for a, b in zip(twin.state_dict().values(), net.state_dict().values(), strict=True)
    )
    with torch.no_grad():
        next(twin.q.parameters()).add_(1.0)
    assert not torch.equal(next(twin.q.parameters()), next(net.q.parameters()))


@pytest.mark.parametrize(
    "optim",
    [
        {"lrate": 0.1},
        {"lrate": 0.01, "modules": ["adam"]},
        {"lrate": 0.1, "regularizers": [["fedprox", {"alpha": 0.1}]]},
        {"lrate": 0.1, "modules": ["scaffold-client"]},
    ],
    ids=["sgd", "adam", "fedprox", "scaffold"],
)
def test_every_optimizer_step_trains_online_weights_and_polyak_steps_the_targets(
    optim: dict[str, object],
) -> None:
    task = CodeTask(n_contexts=4)
    model = ILQLModel(task.net_config(), ILQLConfig(alpha=0.3), seed=0)
    trainable = set(model.get_weights(trainable=True).coefs)
    every = set(model.get_weights().coefs)
    targets = sorted(every - trainable)
    assert targets and all(name.startswith("target_q") for name in targets)
    dataset = task.dataset(task.behaviour_episodes(range(4), 32, seed=0))
    optimizer = Optimizer.from_config(optim)
    before = model.get_weights().coefs
    batch = next(dataset.generate_batches(32))
    optimizer.run_train_step(model, batch)
    after = model.get_weights().coefs
    for name in targets:
        online = name.replace("target_", "")
        expected = 0.7 * before[name] + 0.3 * after[online]
        torch.testing.assert_close(after[name], expected)
    assert not torch.equal(before["trunk.wte.weight"], after["trunk.wte.weight"])
    assert np.isfinite(model.collect_training_losses()).all()


def test_sample_wise_clipping_is_refused_with_a_clear_message() -> None:
    task = CodeTask(n_contexts=2)
    model = ILQLModel(task.net_config(), seed=0)
    batch = next(task.dataset(task.behaviour_episodes([0, 1], 8)).generate_batches(8))
    with pytest.raises(ValueError, match="sample-wise gradient clipping"):
        model.compute_batch_gradients(batch, max_norm=1.0)


def test_model_config_is_json_and_rebuilds_the_same_architecture() -> None:
    model = ILQLModel(TINY, ILQLConfig(tau=0.7), seed=3)
    config = json.loads(json.dumps(model.get_config()))
    twin = ILQLModel.from_config(config)
    assert twin.get_config() == model.get_config()
    assert {k: v.shape for k, v in twin.get_weights().coefs.items()} == {
        k: v.shape for k, v in model.get_weights().coefs.items()
    }


# -- checkpoints ---------------------------------------------------------------------------------


def _run(model: ILQLModel, optim: Optimizer, dataset, steps: int) -> None:  # type: ignore[no-untyped-def]
    done = 0
    while done < steps:
        for batch in dataset.generate_batches(16, shuffle=True):
            optim.run_train_step(model, batch)
            done += 1
            if done == steps:
                return


def test_resuming_from_a_checkpoint_continues_bit_identically(tmp_path: Path) -> None:
    task = CodeTask(n_contexts=4)
    episodes = task.behaviour_episodes(range(4), 64, seed=2)
    config = {"lrate": 0.01, "modules": [["scaffold-client", {}], "adam"]}

    def fresh() -> tuple[ILQLModel, Optimizer, object]:
        model = ILQLModel(task.net_config(dropout=0.1), ILQLConfig(alpha=0.2), seed=1)
        return model, Optimizer.from_config(config), task.dataset(episodes, seed=5)

    torch.manual_seed(11)
    model, optim, data = fresh()
    _run(model, optim, data, 6)
    path = save_checkpoint(tmp_path / "run.npz", model, optim, dataset=data, metadata={"step": 6})
    _run(model, optim, data, 6)
    straight = model.get_weights().coefs

    torch.manual_seed(999)  # a different RNG state: the checkpoint must restore it
    resumed, optim2, data2 = fresh()
    assert load_checkpoint(path, resumed, optim2, dataset=data2) == {"step": 6}
    for name, value in resumed.get_weights().coefs.items():  # every network, targets included
        assert name in straight
        assert value.shape == straight[name].shape
    _run(resumed, optim2, data2, 6)
    for name, value in resumed.get_weights().coefs.items():
        assert torch.equal(value, straight[name]), name
    with np.load(path, allow_pickle=False) as contents:  # no pickled object anywhere
        assert {"weight/target_q2.4.weight", "optimizer_state"} <= set(contents.files)


def test_loading_a_checkpoint_of_another_model_changes_nothing(tmp_path: Path) -> None:
    task = CodeTask(n_contexts=4)
    small = ILQLModel(task.net_config(), seed=0)
    path = save_checkpoint(tmp_path / "small.npz", small)
    other = ILQLModel(task.net_config(n_embd=32), seed=0)
    before = other.get_weights().coefs
    with pytest.raises(ValueError, match="another config"):
        load_checkpoint(path, other)
    for name, value in other.get_weights().coefs.items():
        assert torch.equal(value, before[name])

"""ILQL learns the safe-vs-gamble task (tiny trunk: 2 layers, 64 dims) where cloning cannot.

One training per seed serves every check: the decoded expected reward with
beta = 16 (ILQL) and beta = 0 (the policy head: behaviour cloning), the Q
ranking of the two first symbols; a separate tau = 0.5 run checks that V
approaches the behaviour policy's value.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from flwr_declearn.ilql import ILQLConfig, ILQLModel, collate, decode  # noqa: E402
from tests.ilql._helpers import (  # noqa: E402
    CONFIG,
    DECODE_BETA,
    N_EPISODES,
    STEPS,
    TASK,
    train,
)

SEEDS = (0, 1, 2)


@functools.cache
def trained(seed: int) -> ILQLModel:
    episodes = TASK.behaviour_episodes(range(TASK.n_contexts), N_EPISODES, seed=seed)
    return train(TASK.dataset(episodes, seed=seed), STEPS, seed)


@functools.cache
def scores(seed: int) -> dict[str, dict[str, float]]:
    net = trained(seed).network
    return {
        "ilql": TASK.evaluate(net, beta=DECODE_BETA),
        "bc": TASK.evaluate(net, beta=0.0),
    }


def test_ilql_decodes_the_safe_codes_while_behaviour_cloning_gambles() -> None:
    ilql = [scores(seed)["ilql"]["expected_reward"] for seed in SEEDS]
    bc = [scores(seed)["bc"]["expected_reward"] for seed in SEEDS]
    print(f"expected reward: ILQL {ilql} (mean {np.mean(ilql):.3f}), BC {bc}")
    assert np.mean(ilql) >= 0.9
    assert np.mean(bc) <= 0.5


def test_q_ranks_the_safe_first_symbol_above_the_gamble_one() -> None:
    for seed in SEEDS:
        result = scores(seed)["ilql"]
        assert result["q_safe_first"] > result["q_gamble_first"], seed
        assert result["safe_first_ranked"] >= 0.9, seed


def test_beta_zero_decodes_like_behaviour_cloning() -> None:
    net = trained(0).network
    prompts = torch.arange(TASK.n_contexts)[:, None]
    allowed = TASK.symbol_mask()
    tokens = decode(net, prompts, TASK.code_len, beta=0.0, allowed_tokens=allowed)
    # Greedy cloning picks the data's most frequent code: the gamble one in every context.
    assert (tokens[:, 1:].numpy() == TASK.gamble_codes).all()
    # ... and beta = 0 is exactly the policy head's greedy decoding.
    with torch.no_grad():
        seq = prompts
        for _ in range(TASK.code_len):
            hidden, _ = net.hidden_states(seq)
            logits = net.pi(hidden[:, -1]).masked_fill(~allowed, float("-inf"))
            seq = torch.cat([seq, logits.argmax(-1, keepdim=True)], dim=1)
    assert torch.equal(seq, tokens)


def test_cached_and_uncached_decoding_agree_on_the_trained_agent() -> None:
    net = trained(0).network
    assert TASK.evaluate(net, DECODE_BETA, use_cache=True) == TASK.evaluate(
        net, DECODE_BETA, use_cache=False
    )


@pytest.mark.slow
def test_with_tau_one_half_v_approaches_the_behaviour_value() -> None:
    seed = 0
    episodes = TASK.behaviour_episodes(range(TASK.n_contexts), N_EPISODES, seed=seed)
    config = ILQLConfig(**{**CONFIG.to_dict(), "tau": 0.5})
    # V climbs to the behaviour value from below: 0.30-0.35 after STEPS, 0.36 after twice as many.
    model = train(TASK.dataset(episodes, seed=seed), 2 * STEPS, seed, config=config)
    batch = collate(episodes)
    contexts = batch.tokens[:, 0].numpy()
    returns = batch.rewards[:, -1].numpy() * config.gamma ** (TASK.code_len - 1)
    behaviour = np.array([returns[contexts == c].mean() for c in range(TASK.n_contexts)])
    value = TASK.evaluate(model.network, beta=0.0)["v_mean"]
    optimistic = scores(seed)["ilql"]["v_mean"]  # tau = 0.8: an upper expectile
    print(
        f"V(context): tau=0.5 {value:.3f}, tau=0.8 {optimistic:.3f}; "
        f"behaviour value {behaviour.mean():.3f}"
    )
    assert value == pytest.approx(behaviour.mean(), abs=0.08)
    assert optimistic > value + 0.08

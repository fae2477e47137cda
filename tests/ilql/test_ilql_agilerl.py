"""Our ILQL loss terms vs agilerl 2.58's, on the same tensors (optional oracle).

Runs only where agilerl is installed (`nox -s tests-agilerl`). agilerl's
networks differ from ours (separate policy and target GPTs, MLP policy head),
so the comparison feeds agilerl's term functions (`get_v_loss`, `get_q_loss`,
`get_cql_loss`, `get_dm_loss`, `get_weights`, `awac_loss`) the V, Q, target-Q
and logits that our network computes on a batch, and compares each term with
`ilql_loss(..., reduction="token")`. Finished episodes only: agilerl derives
the action mask from the terminals and the action count from
`argmax(action_idxs)`, which is right only then.
"""

from __future__ import annotations

import types

import pytest

torch = pytest.importorskip("torch")
agilerl_ilql = pytest.importorskip("agilerl.algorithms.ilql")

from flwr_declearn.ilql import CodeTask, ILQLConfig, ILQLNetwork, collate, ilql_loss  # noqa: E402
from flwr_declearn.ilql._loss import _gather_positions  # noqa: E402

ILQL = agilerl_ilql.ILQL


@pytest.mark.parametrize("exp_weights", [True, False])
def test_each_loss_term_matches_agilerl(exp_weights: bool) -> None:
    task = CodeTask(n_contexts=6, n_symbols=7, code_len=3)
    config = ILQLConfig(
        tau=0.7, gamma=0.9, beta=0.4 if exp_weights else 0.8, cql_temp=0.5, dm_margin=0.1,
        transition_weight=0.3, clip_weight=1.2, exp_weights=exp_weights,
    )  # fmt: skip
    torch.manual_seed(0)
    net = ILQLNetwork(task.net_config(), config).eval()
    with torch.no_grad():
        for p in net.target_q2.parameters():
            p.add_(0.05 * torch.randn_like(p))
    batch = collate(task.behaviour_episodes(range(6), 12, seed=3))
    with torch.no_grad():
        ours = ilql_loss(net, batch, reduction="token")
        hidden, _ = net.hidden_states(batch.tokens, batch.attn_mask)
        h_state = _gather_positions(hidden, batch.state_idxs)
        h_action = _gather_positions(hidden, batch.action_idxs)
        vs = net.value(h_state)
        q_all = net.online_q(h_action)
        actions = batch.action_tokens
        q_data = [torch.gather(q, 2, actions.unsqueeze(-1)).squeeze(-1) for q in q_all]
        target = torch.gather(net.target_values(h_action), 2, actions.unsqueeze(-1)).squeeze(-1)
        logits = net.pi(hidden)
    agent = types.SimpleNamespace(
        tau=config.tau, double_q=True, cql_temp=config.cql_temp, device="cpu",
        beta=config.beta, exp_weights=config.exp_weights,
        transition_weight=config.transition_weight, clip_weight=config.clip_weight,
    )  # fmt: skip
    terminals = batch.terminals
    expected = {
        "v": ILQL.get_v_loss(agent, vs[:, :-1], target, terminals),
        "q": ILQL.get_q_loss(agent, vs[:, 1:], tuple(q_data), batch.rewards, config.gamma,
                             terminals),
        "cql": ILQL.get_cql_loss(agent, tuple(q_all), actions, terminals),
        "dm": ILQL.get_dm_loss(agent, tuple(q_all), tuple(q_data), terminals, config.dm_margin),
    }  # fmt: skip
    weights = ILQL.get_weights(
        agent, batch.tokens, vs[:, :-1], target, batch.state_idxs, batch.action_idxs, terminals
    )
    expected["token"] = ILQL.awac_loss(agent, batch.tokens, batch.attn_mask, logits, weights)
    for key, value in expected.items():
        assert float(getattr(ours, key)) == pytest.approx(float(value), rel=1e-5, abs=1e-7), key

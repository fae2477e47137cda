"""The ILQL loss (Snell et al., 2023): expectile V, TD Q, CQL, DM and AWR token terms.

With hidden states h, actions a_k at action positions, states s_k:

- V:   L_V = E[ |tau - 1(Qt(s, a) < V(s))| * (Qt(s, a) - V(s))^2 ]  (Qt: target heads, min, clipped)
- Q:   L_Q = sum_i E[ (r + gamma * (1 - done') * V(s')' - Q_i(s, a))^2 ]  (V(s') detached)
- CQL: L_CQL = sum_i E[ CE(Q_i(s, .) / cql_temp, a) ]
- DM:  L_DM = sum_i E[ sum_b max(Q_i(s, b) - Q_i(s, a) + margin, 0)^2 ]
- token (AWR): L_pi = E_tokens[ w * CE(pi(h_t), x_{t+1}) ], with w = exp(beta * (Qt - V)) on
  action tokens (or beta / 1 - beta on the advantage's sign), `transition_weight` on the
  others, clipped to `clip_weight`.

Action-level expectations average over real actions, token-level ones over real
next tokens: per episode (`reduction="episode"`, the Model API's sample-wise
losses) or over the whole batch (`reduction="token"`, agilerl's reduction; the
two agree when every episode has as many actions and tokens).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, Literal, Protocol

import torch
from torch.nn import functional as F

from flwr_declearn.ilql._batch import ILQLBatch
from flwr_declearn.ilql._config import ILQLConfig

__all__ = ["ILQLLoss", "ilql_loss"]


class ILQLNetwork(Protocol):
    """What the loss reads of a network (`flwr_declearn.ilql.ILQLNetwork` has it all)."""

    @property
    def config(self) -> ILQLConfig: ...

    @property
    def pi(self) -> Callable[[torch.Tensor], torch.Tensor]: ...

    def hidden_states(
        self, tokens: torch.Tensor, attn_mask: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, Any]: ...

    def online_q(self, hidden: torch.Tensor) -> list[torch.Tensor]: ...

    def target_values(self, hidden: torch.Tensor) -> torch.Tensor: ...

    def value(self, hidden: torch.Tensor) -> torch.Tensor: ...


Reduction = Literal["episode", "token"]


@dataclasses.dataclass
class ILQLLoss:
    """Total weighted loss, each term and diagnostics (scalars, or `(B,)` per episode)."""

    total: torch.Tensor
    token: torch.Tensor
    v: torch.Tensor
    q: torch.Tensor
    cql: torch.Tensor
    dm: torch.Tensor
    q_mean: torch.Tensor
    v_mean: torch.Tensor
    advantage_mean: torch.Tensor

    def as_floats(self) -> dict[str, float]:
        """Batch means of every field, as floats."""
        return {
            field.name: float(getattr(self, field.name).detach().mean())
            for field in dataclasses.fields(self)
        }


def _reduce(values: torch.Tensor, mask: torch.Tensor, reduction: Reduction) -> torch.Tensor:
    masked = values * mask
    if reduction == "token":
        return masked.sum() / mask.sum().clamp(min=1.0)
    return masked.sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)


def _gather_positions(hidden: torch.Tensor, idxs: torch.Tensor) -> torch.Tensor:
    index = idxs.unsqueeze(-1).expand(-1, -1, hidden.shape[-1])
    return torch.gather(hidden, 1, index)


def _maybe_detach(tensor: torch.Tensor, detach: bool) -> torch.Tensor:
    return tensor.detach() if detach else tensor


def awr_weights(net: ILQLNetwork, batch: ILQLBatch, advantage: torch.Tensor) -> torch.Tensor:
    """Token-loss weights `(B, T)`: AWR weights where actions are chosen, else transition_weight.

    The weight at position t multiplies the loss of predicting token t + 1.
    """
    cfg = net.config
    advantage = advantage.detach()
    if cfg.exp_weights:
        w_action = torch.exp(cfg.beta * advantage)
    else:
        positive = (advantage > 0.0).to(advantage.dtype)
        w_action = cfg.beta * positive + (1.0 - cfg.beta) * (1.0 - positive)
    length = batch.tokens.shape[1]
    # One-hot placement (not scatter): padded actions may share a position with real ones.
    onehot = F.one_hot(batch.action_idxs, length).to(w_action.dtype) * batch.action_mask[..., None]
    is_action = onehot.sum(dim=1) > 0
    weights = torch.where(
        is_action,
        (onehot * w_action[..., None]).sum(dim=1),
        torch.full_like(is_action, cfg.transition_weight, dtype=w_action.dtype),
    )
    if cfg.clip_weight is not None:
        weights = weights.clamp(max=cfg.clip_weight)
    return weights


def ilql_loss(net: ILQLNetwork, batch: ILQLBatch, reduction: Reduction = "token") -> ILQLLoss:
    """Compute the ILQL loss terms of `batch` under `net`.

    Parameters
    ----------
    net:
        The network (its `config` holds the hyper-parameters and loss weights).
    batch:
        Padded episodes (see `collate`).
    reduction:
        "token": scalars averaged over the batch's actions / tokens (agilerl's);
        "episode": `(B,)` tensors, each averaged within its episode.
    """
    cfg = net.config
    hidden, _ = net.hidden_states(batch.tokens, batch.attn_mask)
    valid = batch.action_mask
    actions = batch.action_tokens

    h_state = _gather_positions(hidden, batch.state_idxs)
    h_action = _gather_positions(hidden, batch.action_idxs)
    vs = net.value(_maybe_detach(h_state, cfg.detach_v))
    v_now, v_next = vs[:, :-1], vs[:, 1:]
    q_all = net.online_q(_maybe_detach(h_action, cfg.detach_q))
    q_data = [torch.gather(q, 2, actions.unsqueeze(-1)).squeeze(-1) for q in q_all]
    target_q = torch.gather(net.target_values(h_action), 2, actions.unsqueeze(-1)).squeeze(-1)

    # Expectile value loss towards the target Q of the data's action.
    diff = target_q - v_now
    expectile = torch.where(diff >= 0, cfg.tau, 1.0 - cfg.tau)
    v_loss = _reduce(expectile * diff.square(), valid, reduction)

    # TD loss of each Q head towards r + gamma * V(s').
    not_done = 1.0 - batch.terminals[:, 1:]
    td_target = batch.rewards + cfg.gamma * not_done * v_next.detach()
    q_loss = sum(_reduce((td_target - q).square(), valid, reduction) for q in q_data)

    # CQL: cross-entropy of Q / cql_temp on the data's token; DM: margin hinge, squared.
    vocab = q_all[0].shape[-1]
    cql_loss = sum(
        _reduce(
            F.cross_entropy(
                (q / cfg.cql_temp).reshape(-1, vocab), actions.reshape(-1), reduction="none"
            ).view_as(actions),
            valid,
            reduction,
        )
        for q in q_all
    )
    dm_loss = sum(
        _reduce(F.relu(q - qd.unsqueeze(-1) + cfg.dm_margin).square().sum(dim=-1), valid, reduction)
        for q, qd in zip(q_all, q_data, strict=True)
    )

    # Advantage-weighted (AWR) token loss of the policy head.
    weights = awr_weights(net, batch, target_q - v_now)
    logits = net.pi(_maybe_detach(hidden, cfg.detach_pi))
    token_ce = F.cross_entropy(
        logits[:, :-1].reshape(-1, logits.shape[-1]),
        batch.tokens[:, 1:].reshape(-1),
        reduction="none",
    ).view(batch.tokens.shape[0], -1)
    token_mask = batch.attn_mask[:, 1:]
    token_loss = _reduce(token_ce * weights[:, :-1], token_mask, reduction)

    total = (
        cfg.awac_weight * token_loss
        + cfg.v_loss_weight * v_loss
        + cfg.q_loss_weight * q_loss
        + cfg.cql_loss_weight * cql_loss
        + cfg.dm_loss_weight * dm_loss
    )
    with torch.no_grad():
        q_first = q_data[0]
        q_mean = _reduce(q_first, valid, reduction)
        v_mean = _reduce(v_now, valid, reduction)
        adv_mean = _reduce(target_q - v_now, valid, reduction)
    return ILQLLoss(
        total=total,  # type: ignore[arg-type]
        token=token_loss,
        v=v_loss,
        q=q_loss,  # type: ignore[arg-type]
        cql=cql_loss,  # type: ignore[arg-type]
        dm=dm_loss,  # type: ignore[arg-type]
        q_mean=q_mean,
        v_mean=v_mean,
        advantage_mean=adv_mean,
    )

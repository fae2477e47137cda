"""The ILQL network: a causal GPT trunk with policy, V, Q (and Q2) heads and target Q heads."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from flwr_declearn.ilql._batch import ILQLBatch
from flwr_declearn.ilql._config import GPTConfig, ILQLConfig
from flwr_declearn.ilql._gpt import GPT

__all__ = ["ILQLNetwork"]


def _mlp(width: int, n_out: int) -> nn.Sequential:
    """Two hidden ReLU layers of twice the trunk's width (agilerl's head shape)."""
    return nn.Sequential(
        nn.Linear(width, 2 * width),
        nn.ReLU(),
        nn.Linear(2 * width, 2 * width),
        nn.ReLU(),
        nn.Linear(2 * width, n_out),
    )


class ILQLNetwork(nn.Module):
    """Causal GPT trunk shared by a policy (LM) head, a V head, Q heads and target Q heads.

    `q` (and `q2` with `double_q`) map a state's hidden state to one value per
    token of the vocabulary; `target_q` / `target_q2` are copies that follow
    them by Polyak averaging (`soft_update`) and never receive gradients
    (`requires_grad=False`). The target heads read the same trunk, detached.

    `forward(packed)` is the training objective: it returns the ILQL loss of
    every episode of a packed batch (see `ILQLBatch.pack` and `ilql_loss`),
    so that a `TorchModel` can train the network on `InMemoryDataset` rows.

    Parameters
    ----------
    net_config:
        Trunk hyper-parameters (`GPTConfig` or a dict like agilerl's `net_config`).
    config:
        ILQL hyper-parameters (`ILQLConfig` or a dict).
    """

    def __init__(
        self,
        net_config: GPTConfig | Mapping[str, Any],
        config: ILQLConfig | Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.net_config = (
            net_config if isinstance(net_config, GPTConfig) else GPTConfig.from_dict(net_config)
        )
        if config is None:
            config = ILQLConfig()
        self.config = config if isinstance(config, ILQLConfig) else ILQLConfig.from_dict(config)
        width, vocab = self.net_config.n_embd, self.net_config.vocab_size
        self.trunk = GPT(self.net_config)
        self.pi = nn.Linear(width, vocab, bias=False)
        nn.init.normal_(self.pi.weight, mean=0.0, std=0.02)
        self.v = _mlp(width, 1)
        self.q = _mlp(width, vocab)
        self.q2 = _mlp(width, vocab) if self.config.double_q else None
        self.target_q = copy.deepcopy(self.q).requires_grad_(False)
        self.target_q2 = None if self.q2 is None else copy.deepcopy(self.q2).requires_grad_(False)

    # -- heads -----------------------------------------------------------------------------------

    @property
    def hidden_states(self) -> GPT:
        """The trunk: `hidden_states(tokens, attn_mask=None, cache=None, use_cache=False)`.

        It returns the hidden states `(B, T, n_embd)` and the extended KV cache
        (or None); see `GPT.forward`.
        """
        return self.trunk

    def online_q(self, hidden: torch.Tensor) -> list[torch.Tensor]:
        """Q values over the vocabulary from each online Q head."""
        heads = [self.q] if self.q2 is None else [self.q, self.q2]
        return [head(hidden) for head in heads]

    @torch.no_grad()
    def target_values(self, hidden: torch.Tensor) -> torch.Tensor:
        """Target Q over the vocabulary: min over target heads, clipped to the value bounds."""
        hidden = hidden.detach()
        values = self.target_q(hidden)
        if self.target_q2 is not None:
            values = torch.minimum(values, self.target_q2(hidden))
        cfg = self.config
        if cfg.value_min is not None or cfg.value_max is not None:
            values = values.clamp(min=cfg.value_min, max=cfg.value_max)
        return values

    def value(self, hidden: torch.Tensor) -> torch.Tensor:
        """V of each hidden state (last axis squeezed)."""
        return self.v(hidden).squeeze(-1)  # type: ignore[no-any-return]

    def next_token_logits(self, hidden: torch.Tensor, beta: float | None = None) -> torch.Tensor:
        """Decoding logits `pi(h) + beta * (Q_target(h) - V(h))` (beta: config's by default).

        With beta = 0 these are the policy head's logits (behaviour cloning).
        """
        beta = self.config.beta if beta is None else float(beta)
        logits = self.pi(hidden)
        if beta != 0.0:
            advantage = self.target_values(hidden) - self.value(hidden).unsqueeze(-1)
            logits = logits + beta * advantage
        return logits  # type: ignore[no-any-return]

    # -- target heads ----------------------------------------------------------------------------

    def _head_pairs(self) -> list[tuple[nn.Module, nn.Module]]:
        pairs: list[tuple[nn.Module, nn.Module]] = [(self.q, self.target_q)]
        if self.q2 is not None and self.target_q2 is not None:
            pairs.append((self.q2, self.target_q2))
        return pairs

    @torch.no_grad()
    def soft_update(self, alpha: float | None = None) -> None:
        """Polyak step of the target heads: `target <- alpha * q + (1 - alpha) * target`."""
        alpha = self.config.alpha if alpha is None else float(alpha)
        targets: list[torch.Tensor] = []
        sources: list[torch.Tensor] = []
        for online, target in self._head_pairs():
            targets.extend(target.parameters())
            sources.extend(online.parameters())
        torch._foreach_lerp_(targets, sources, alpha)

    @torch.no_grad()
    def hard_update(self) -> None:
        """Copy the online Q heads into the target heads."""
        for online, target in self._head_pairs():
            for dst, src in zip(target.parameters(), online.parameters(), strict=True):
                dst.copy_(src)

    def clone(self) -> ILQLNetwork:
        """Return an independent copy (same weights, configs and train/eval mode)."""
        return copy.deepcopy(self)

    # -- training objective ----------------------------------------------------------------------

    def forward(self, packed: torch.Tensor) -> torch.Tensor:
        """Per-episode ILQL loss `(B,)` of a packed batch (see `ILQLBatch.pack`)."""
        from flwr_declearn.ilql._loss import ilql_loss

        batch = ILQLBatch.unpack(packed)
        return ilql_loss(self, batch, reduction="episode").total

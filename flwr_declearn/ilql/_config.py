"""Hyper-parameters of the ILQL network and loss, with agilerl's names and defaults."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any, Self

from flwr_declearn.utils._dataclasses import dataclass_from_mapping

__all__ = ["GPTConfig", "ILQLConfig"]

_ACTIVATIONS = ("GELU", "ReLU", "SiLU", "Tanh")
_EVOLUTION_KEYS = ("arch", "min_layers", "max_layers")  # agilerl's evolvable-net bookkeeping


@dataclasses.dataclass(frozen=True)
class GPTConfig:
    """Causal GPT trunk: agilerl's `net_config` names and defaults (GPT-2 small).

    `arch`, `min_layers` and `max_layers` (agilerl's architecture-mutation
    bounds) are accepted by `from_dict` and ignored. `dim_feedfwd` defaults
    to 4 * n_embd when None.
    """

    vocab_size: int = 50257
    n_layer: int = 12
    n_head: int = 12
    n_embd: int = 768
    block_size: int = 1024
    dim_feedfwd: int | None = None
    dropout: float = 0.1
    activation: str = "GELU"
    layer_norm_eps: float = 1e-5
    bias: bool = True

    def __post_init__(self) -> None:
        for name in ("vocab_size", "n_layer", "n_head", "n_embd", "block_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"GPTConfig.{name} must be a positive int, not {value!r}.")
        if self.n_embd % self.n_head:
            raise ValueError(
                f"GPTConfig.n_embd ({self.n_embd}) must be a multiple of n_head ({self.n_head})."
            )
        if self.dim_feedfwd is not None and (
            not isinstance(self.dim_feedfwd, int) or self.dim_feedfwd < 1
        ):
            raise ValueError("GPTConfig.dim_feedfwd must be a positive int or None.")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"GPTConfig.dropout must lie in [0, 1), not {self.dropout!r}.")
        if self.activation not in _ACTIVATIONS:
            raise ValueError(
                f"GPTConfig.activation must be one of {_ACTIVATIONS}, not {self.activation!r}."
            )
        if not self.layer_norm_eps > 0:
            raise ValueError("GPTConfig.layer_norm_eps must be positive.")

    @property
    def hidden_ff(self) -> int:
        """Width of the feed-forward layers."""
        return 4 * self.n_embd if self.dim_feedfwd is None else self.dim_feedfwd

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, config: Mapping[str, Any]) -> Self:
        """Build from a dict such as agilerl's `net_config` (activation names are case-blind)."""
        config = dict(config)
        if isinstance(config.get("activation"), str):
            by_lower = {name.lower(): name for name in _ACTIVATIONS}
            config["activation"] = by_lower.get(config["activation"].lower(), config["activation"])
        return dataclass_from_mapping(cls, config, _EVOLUTION_KEYS)


@dataclasses.dataclass(frozen=True)
class ILQLConfig:
    """ILQL hyper-parameters (Snell et al., 2023), named as agilerl's `ILQL`.

    Attributes
    ----------
    gamma:
        Discount factor of the TD target `r + gamma * V(s')`.
    tau:
        Expectile of the value loss: V fits the tau-expectile of target Q.
        0.5 makes V the behaviour policy's value (a mean).
    alpha:
        Polyak rate of the target Q heads: `target <- alpha * q + (1 - alpha) * target`
        after every local step.
    beta:
        Advantage temperature of the AWR token weights `exp(beta * (Q - V))` in
        training, and the default of decoding's `logits + beta * (Q - V)`.
        0 trains (and decodes) the policy head by plain behaviour cloning.
    cql_temp:
        Temperature of the CQL term (cross-entropy of Q / cql_temp on the data's token).
    dm_margin:
        Margin of the DM term `sum_a max(Q(s, a) - Q(s, a_data) + margin, 0)^2`.
    double_q:
        Two Q heads (and targets); the TD/CQL/DM terms sum over both, targets take the min.
    exp_weights:
        AWR weights `exp(beta * A)` if True, else `beta` where A > 0 and `1 - beta` elsewhere.
    clip_weight:
        Upper bound of the AWR weights (None: no bound).
    transition_weight:
        Token-loss weight of tokens that are not actions (e.g. environment text).
    value_min, value_max:
        Bounds of the target Q values (None: unbounded).
    detach_v, detach_q, detach_pi:
        Stop the V / Q / policy losses' gradients at the trunk (heads only).
    awac_weight, v_loss_weight, q_loss_weight, cql_loss_weight, dm_loss_weight:
        Weights of the token (AWR/BC), value, TD, CQL and DM terms in the total
        loss. `awac_weight` must be positive: decoding starts from the policy head.
    """

    gamma: float = 0.99
    tau: float = 0.6
    alpha: float = 0.005
    beta: float = 0.0
    cql_temp: float = 1.0
    dm_margin: float = 0.0
    double_q: bool = True
    exp_weights: bool = True
    clip_weight: float | None = None
    transition_weight: float = 0.0
    value_min: float | None = None
    value_max: float | None = None
    detach_v: bool = False
    detach_q: bool = False
    detach_pi: bool = False
    awac_weight: float = 1.0
    v_loss_weight: float = 1.0
    q_loss_weight: float = 1.0
    cql_loss_weight: float = 0.01
    dm_loss_weight: float = 0.0

    def __post_init__(self) -> None:
        for name in (
            "gamma",
            "tau",
            "alpha",
            "beta",
            "cql_temp",
            "dm_margin",
            "transition_weight",
            "awac_weight",
            "v_loss_weight",
            "q_loss_weight",
            "cql_loss_weight",
            "dm_loss_weight",
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise TypeError(f"ILQLConfig.{name} must be a number, not {value!r}.")
            if not math.isfinite(value):
                raise ValueError(f"ILQLConfig.{name} must be finite, not {value!r}.")
        for name in ("gamma", "alpha"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"ILQLConfig.{name} must lie in [0, 1].")
        if not 0.0 < self.tau < 1.0:
            raise ValueError(f"ILQLConfig.tau must lie in (0, 1), not {self.tau!r}.")
        if self.cql_temp <= 0:
            raise ValueError("ILQLConfig.cql_temp must be positive.")
        for name in ("v_loss_weight", "q_loss_weight", "cql_loss_weight", "dm_loss_weight"):
            if getattr(self, name) < 0:
                raise ValueError(f"ILQLConfig.{name} must be non-negative.")
        if self.awac_weight <= 0:
            raise ValueError(
                "ILQLConfig.awac_weight must be positive: with 0 the policy head never trains, "
                "yet decoding starts from its logits."
            )
        if (
            self.value_min is not None
            and self.value_max is not None
            and self.value_min > self.value_max
        ):
            raise ValueError("ILQLConfig.value_min must not exceed value_max.")
        if self.clip_weight is not None and self.clip_weight <= 0:
            raise ValueError("ILQLConfig.clip_weight must be positive or None.")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, config: Mapping[str, Any]) -> Self:
        return dataclass_from_mapping(cls, config)

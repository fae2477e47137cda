"""Client-level differential privacy on the server (DP-FedAvg with fixed clipping).

Each round, every client's update `d_k = w_global - w_k` is clipped to an L2
norm of at most `clip_norm` (over the trainable weights), the clipped updates
are averaged with equal weights, and Gaussian noise of standard deviation
`noise_multiplier * clip_norm / n` (n: the round's accepted clients) is added
to the average, before the server Optimizer sees it (McMahan et al., 2018,
"Learning Differentially Private Recurrent Language Models"; Flower's
`DifferentialPrivacyServerSideFixedClipping` computes the same).

The (epsilon, delta) spent is accounted as one Poisson-subsampled Gaussian
step per aggregated round, with the round's sample rate (sampled clients /
available clients), by `flwr_declearn.privacy.PrivacyAccountant` (needs the
`dp` extra, Google's `dp-accounting`). The guarantee is for one client's
whole data, as seen by anyone who sees the global models; it does not cover
the server itself (it sees every update), nor non-trainable weights (a
strategy with DP refuses a model that has some).
"""

from __future__ import annotations

import dataclasses
import importlib.util
import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from flwr_declearn.privacy import PrivacyAccountant

__all__ = ["ServerDP"]


@dataclasses.dataclass(frozen=True)
class ServerDP:
    """Settings of client-level DP on the server.

    Attributes
    ----------
    clip_norm:
        Bound on the L2 norm of each client's update.
    noise_multiplier:
        Noise standard deviation over `clip_norm` (on the sum of the clipped updates).
    delta:
        The delta of the reported (epsilon, delta) guarantee.
    seed:
        Seed of the noise (with the round index); None draws fresh OS entropy
        every round. A seed makes runs reproducible, and the noise known to
        whoever knows the seed.
    """

    clip_norm: float
    noise_multiplier: float
    delta: float = 1e-5
    seed: int | None = None

    def __post_init__(self) -> None:
        for name in ("clip_norm", "noise_multiplier"):
            value = getattr(self, name)
            if (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or not (0 <= value < math.inf)
            ):
                raise ValueError(f"'{name}' must be a finite non-negative float, not {value!r}.")
        if not self.clip_norm > 0:
            raise ValueError(f"'clip_norm' must be positive, not {self.clip_norm!r}.")
        if self.seed is not None and (
            isinstance(self.seed, bool) or not isinstance(self.seed, int)
        ):
            raise ValueError(f"'seed' must be an int or None, not {self.seed!r}.")
        PrivacyAccountant(self.delta)  # checks delta
        if importlib.util.find_spec("dp_accounting") is None:
            raise ImportError(
                "Client-level DP accounting needs Google's dp-accounting: "
                "pip install 'flwr-declearn[dp]'."
            )

    @classmethod
    def build(cls, spec: ServerDP | Mapping[str, Any] | None) -> ServerDP | None:
        """Return `spec` as a ServerDP (None stays None)."""
        if spec is None or isinstance(spec, ServerDP):
            return spec
        return cls(**spec)

    def aggregator_spec(self) -> tuple[str, dict[str, Any]]:
        """The aggregator DP needs: the equal-weight mean of clipped updates."""
        return ("clipped-mean", {"max_norm": float(self.clip_norm), "weighted": False})

    def add_noise(
        self, aggregate: dict[str, np.ndarray], names: list[str], n_clients: int, server_round: int
    ) -> None:
        """Add the round's Gaussian noise to the float64 average of `n_clients` clipped updates."""
        std = self.noise_multiplier * self.clip_norm / n_clients
        if std == 0:
            return
        entropy = None if self.seed is None else [self.seed, server_round]
        rng = np.random.default_rng(entropy)
        for name in names:
            aggregate[name] = aggregate[name] + rng.normal(0.0, std, aggregate[name].shape)

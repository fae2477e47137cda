"""Momentum-like modules: heavy-ball/Nesterov momentum, EWMA, Yogi's additive EWMA."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

from flwr_declearn.model.api import Vector
from flwr_declearn.optimizer._checks import check_beta, pop_state, vector_or_none
from flwr_declearn.optimizer._fused import FusedStep
from flwr_declearn.optimizer._kernels import axpy, ewma, yogi_ewma, zeros_like
from flwr_declearn.optimizer.modules._api import OptiModule, SingleStateModule

__all__ = ["EWMAModule", "MomentumModule", "YogiMomentumModule"]


class MomentumModule(OptiModule):
    """Momentum (heavy-ball) or Nesterov acceleration, torch.optim.SGD-style.

    With velocity `v_0 = 0`:

        v_t = beta * v_{t-1} + g_t
        out = beta * v_t + g_t   if nesterov   else   v_t

    The learning rate multiplies the whole output (in the Optimizer), as in
    `torch.optim.SGD(momentum=beta, dampening=0)` and `optax.sgd`.

    Parameters
    ----------
    beta:
        Momentum coefficient, in [0, 1).
    nesterov:
        Whether to use Nesterov's variant.
    round_reset:
        Whether to reset the velocity to zero when a training round starts.
    """

    name: ClassVar[str] = "momentum"

    def __init__(
        self, beta: float = 0.9, nesterov: bool = False, round_reset: bool = False
    ) -> None:
        self.beta = check_beta(beta)
        self.nesterov = bool(nesterov)
        self.round_reset = bool(round_reset)
        self.velocity: Vector | None = None

    def run(self, gradients: Vector) -> Vector:
        if self.velocity is None:
            self.velocity = zeros_like(gradients)
        self.velocity = axpy(self.beta, self.velocity, gradients)
        if self.nesterov:
            return axpy(self.beta, self.velocity, gradients)
        return self.velocity

    def fused_step(self, zeros: Callable[[], Vector]) -> FusedStep:
        velocity = zeros() if self.velocity is None else self.velocity
        formula = "nesterov_step" if self.nesterov else "momentum_step"
        return FusedStep(formula, (velocity,), (self.beta,), self._commit)

    def _commit(self, states: tuple[Vector, ...]) -> None:
        (self.velocity,) = states

    def on_round_start(self) -> None:
        if self.round_reset:
            self.velocity = None

    def get_config(self) -> dict[str, Any]:
        return {"beta": self.beta, "nesterov": self.nesterov, "round_reset": self.round_reset}

    def get_state(self) -> dict[str, Any]:
        return {"velocity": self.velocity}

    def set_state(self, state: dict[str, Any]) -> None:
        (velocity,) = pop_state(state, ("velocity",), type(self).__name__)
        self.velocity = vector_or_none(velocity, "velocity", type(self).__name__)


class EWMAModule(SingleStateModule):
    """Exponentially-weighted moving average of gradients.

    With `s_0 = 0`:

        s_t = beta * s_{t-1} + (1 - beta) * g_t
        out = s_t

    Parameters
    ----------
    beta:
        Weight of the past average, in [0, 1).
    round_reset:
        Whether to reset the average to zero when a training round starts.
    """

    name: ClassVar[str] = "ewma"

    def __init__(self, beta: float = 0.9, round_reset: bool = False) -> None:
        self.beta = check_beta(beta)
        self.round_reset = bool(round_reset)
        self.state: Vector | None = None

    def _update(self, state: Vector, gradients: Vector) -> Vector:
        return ewma(state, gradients, self.beta)

    def run(self, gradients: Vector) -> Vector:
        if self.state is None:
            self.state = zeros_like(gradients)
        self.state = self._update(self.state, gradients)
        return self.state

    formula: ClassVar[str] = "ewma_step"
    """Name of the fused formula of `_update`."""

    @property
    def fused_scalars(self) -> tuple[float, ...]:
        return (self.beta,)

    def get_config(self) -> dict[str, Any]:
        return {"beta": self.beta, "round_reset": self.round_reset}


class YogiMomentumModule(EWMAModule):
    """Yogi's additive moving average (Zaheer et al., 2018).

    With `s_0 = 0`:

        s_t = s_{t-1} - (1 - beta) * sign(s_{t-1} - g_t) * g_t
        out = s_t

    Meant for squared gradients: the step size of `s` depends on the input
    only, not on `s` (unlike an EWMA).

    Parameters
    ----------
    beta:
        Coefficient of the update, in [0, 1).
    round_reset:
        Whether to reset the state to zero when a training round starts.
    """

    name: ClassVar[str] = "yogi-momentum"
    formula: ClassVar[str] = "yogi_ewma_step"

    def _update(self, state: Vector, gradients: Vector) -> Vector:
        return yogi_ewma(state, gradients, self.beta)

"""Adaptive step-size modules: AdaGrad, RMSProp, Adam (and AMSGrad), Yogi.

All put `eps` outside the square root, as declearn and torch.optim do:
`out = m / (sqrt(v) + eps)`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

from flwr_declearn.model.api import Vector
from flwr_declearn.optimizer._checks import check_beta, check_positive, pop_state, vector_or_none
from flwr_declearn.optimizer._fused import FusedStep
from flwr_declearn.optimizer._kernels import (
    adam_step,
    adaptive_scale,
    add_squared,
    ewma,
    ewma_squared,
    square,
    yogi_ewma,
    zeros_like,
)
from flwr_declearn.optimizer.modules._api import OptiModule, SingleStateModule

__all__ = ["AdaGradModule", "AdamModule", "RMSPropModule", "YogiModule"]


class AdaGradModule(SingleStateModule):
    """AdaGrad (Duchi et al., 2011): scale by the root of summed squared gradients.

    With `s_0 = 0`:

        s_t = s_{t-1} + g_t ** 2
        out = g_t / (sqrt(s_t) + eps)

    Equals `torch.optim.Adagrad(lr_decay=0, initial_accumulator_value=0)`.

    Parameters
    ----------
    eps:
        Stability term added to the denominator.
    round_reset:
        Whether to reset the sum to zero when a training round starts.
    """

    name: ClassVar[str] = "adagrad"

    def __init__(self, eps: float = 1e-7, round_reset: bool = False) -> None:
        self.eps = check_positive(eps, "eps", strict=False)
        self.round_reset = bool(round_reset)
        self.state: Vector | None = None

    def run(self, gradients: Vector) -> Vector:
        if self.state is None:
            self.state = zeros_like(gradients)
        self.state = add_squared(self.state, gradients)
        return adaptive_scale(gradients, self.state, self.eps)

    formula: ClassVar[str] = "adagrad_step"

    @property
    def fused_scalars(self) -> tuple[float, ...]:
        return (self.eps,)

    def get_config(self) -> dict[str, Any]:
        return {"eps": self.eps, "round_reset": self.round_reset}


class RMSPropModule(SingleStateModule):
    """RMSProp (Tieleman & Hinton, 2012): scale by the root of an EWMA of squared gradients.

    With `v_0 = 0` (no bias correction):

        v_t = beta * v_{t-1} + (1 - beta) * g_t ** 2
        out = g_t / (sqrt(v_t) + eps)

    Equals `torch.optim.RMSprop(alpha=beta)` and
    `optax.rmsprop(decay=beta, eps_in_sqrt=False)`.

    Parameters
    ----------
    beta:
        Weight of the past average of squared gradients, in [0, 1).
    eps:
        Stability term added to the denominator.
    round_reset:
        Whether to reset the average to zero when a training round starts.
    """

    name: ClassVar[str] = "rmsprop"

    def __init__(self, beta: float = 0.9, eps: float = 1e-7, round_reset: bool = False) -> None:
        self.beta = check_beta(beta)
        self.eps = check_positive(eps, "eps", strict=False)
        self.round_reset = bool(round_reset)
        self.state: Vector | None = None

    def run(self, gradients: Vector) -> Vector:
        if self.state is None:
            self.state = zeros_like(gradients)
        self.state = ewma_squared(self.state, gradients, self.beta)
        return adaptive_scale(gradients, self.state, self.eps)

    formula: ClassVar[str] = "rmsprop_step"

    @property
    def fused_scalars(self) -> tuple[float, ...]:
        return (self.beta, self.eps)

    def get_config(self) -> dict[str, Any]:
        return {"beta": self.beta, "eps": self.eps, "round_reset": self.round_reset}


class AdamModule(OptiModule):
    """Adam (Kingma & Ba, 2014), optionally AMSGrad (Reddi et al., 2018).

    With `m_0 = v_0 = 0` and step index `t` starting at 1:

        m_t = beta_1 * m_{t-1} + (1 - beta_1) * g_t
        v_t = beta_2 * v_{t-1} + (1 - beta_2) * g_t ** 2
        m_hat = m_t / (1 - beta_1 ** t)
        v_hat = v_t / (1 - beta_2 ** t)
        v_hat = max(v_hat, v_hat_max)            # AMSGrad only; v_hat_max = v_hat
        out = m_hat / (sqrt(v_hat) + eps)

    Without AMSGrad this equals `torch.optim.Adam` and `optax.adam`. The
    AMSGrad maximum is taken over bias-corrected `v_hat` (as in declearn and
    `optax.amsgrad`), not over raw `v_t` (as in `torch.optim.Adam(amsgrad=True)`).

    Parameters
    ----------
    beta_1:
        Weight of the past gradients' average, in [0, 1).
    beta_2:
        Weight of the past squared gradients' average, in [0, 1).
    amsgrad:
        Whether to use the AMSGrad variant.
    eps:
        Stability term added to the denominator.
    round_reset:
        Whether to reset moments, step count and AMSGrad maximum when a
        training round starts.
    """

    name: ClassVar[str] = "adam"
    yogi: ClassVar[bool] = False
    """Whether `v_t` follows Yogi's additive rule (see `YogiModule`)."""

    def __init__(
        self,
        beta_1: float = 0.9,
        beta_2: float = 0.99,
        amsgrad: bool = False,
        eps: float = 1e-7,
        round_reset: bool = False,
    ) -> None:
        self.beta_1 = check_beta(beta_1, "beta_1")
        self.beta_2 = check_beta(beta_2, "beta_2")
        self.amsgrad = bool(amsgrad)
        self.eps = check_positive(eps, "eps", strict=False)
        self.round_reset = bool(round_reset)
        self.steps = 0
        self.momentum: Vector | None = None
        self.velocity: Vector | None = None
        self.vmax: Vector | None = None

    def _update_velocity(self, velocity: Vector, gradients: Vector) -> Vector:
        """Return `v_t` from `v_{t-1}` and `g_t`."""
        return ewma_squared(velocity, gradients, self.beta_2)

    def run(self, gradients: Vector) -> Vector:
        if self.momentum is None:
            self.momentum = zeros_like(gradients)
        if self.velocity is None:
            self.velocity = zeros_like(gradients)
        self.steps += 1
        if not self.amsgrad:  # m_t, v_t and out in one fused kernel
            self.momentum, self.velocity, out = adam_step(
                self.momentum,
                self.velocity,
                gradients,
                self.beta_1,
                self.beta_2,
                self.eps,
                self.steps,
                yogi=self.yogi,
            )
            return out
        self.momentum = ewma(self.momentum, gradients, self.beta_1)
        self.velocity = self._update_velocity(self.velocity, gradients)
        bias_1 = 1.0 - self.beta_1**self.steps
        bias_2 = 1.0 - self.beta_2**self.steps
        v_hat = self.velocity / bias_2
        self.vmax = v_hat if self.vmax is None else v_hat.maximum(self.vmax)
        return adaptive_scale(self.momentum, self.vmax, self.eps, bias_1)

    def fused_step(self, zeros: Callable[[], Vector]) -> FusedStep | None:
        if self.amsgrad:
            return None
        steps = self.steps + 1
        momentum = zeros() if self.momentum is None else self.momentum
        velocity = zeros() if self.velocity is None else self.velocity

        def commit(states: tuple[Vector, ...]) -> None:
            self.momentum, self.velocity = states
            self.steps = steps

        bias_1, bias_2 = 1.0 - self.beta_1**steps, 1.0 - self.beta_2**steps
        return FusedStep(
            "yogi_step" if self.yogi else "adam_step",
            (momentum, velocity),
            (self.beta_1, self.beta_2, self.eps, bias_1, bias_2),
            commit,
        )

    def on_round_start(self) -> None:
        if self.round_reset:
            self.steps = 0
            self.momentum = self.velocity = self.vmax = None

    def get_config(self) -> dict[str, Any]:
        return {
            "beta_1": self.beta_1,
            "beta_2": self.beta_2,
            "amsgrad": self.amsgrad,
            "eps": self.eps,
            "round_reset": self.round_reset,
        }

    def get_state(self) -> dict[str, Any]:
        return {
            "steps": self.steps,
            "momentum": self.momentum,
            "velocity": self.velocity,
            "vmax": self.vmax,
        }

    def set_state(self, state: dict[str, Any]) -> None:
        owner = type(self).__name__
        steps, momentum, velocity, vmax = pop_state(
            state, ("steps", "momentum", "velocity", "vmax"), owner
        )
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
            raise TypeError(f"{owner}: state variable 'steps' must be an int >= 0, not {steps!r}.")
        self.steps = steps
        self.momentum = vector_or_none(momentum, "momentum", owner)
        self.velocity = vector_or_none(velocity, "velocity", owner)
        self.vmax = vector_or_none(vmax, "vmax", owner)


class YogiModule(AdamModule):
    """Yogi (Zaheer et al., 2018): Adam with an additive second-moment update.

    As `AdamModule` (bias correction and optional AMSGrad included), but:

        v_t = v_{t-1} - (1 - beta_2) * sign(v_{t-1} - g_t ** 2) * g_t ** 2

    Parameters
    ----------
    beta_1, beta_2, amsgrad, eps, round_reset:
        As for `AdamModule`.
    """

    name: ClassVar[str] = "yogi"
    yogi: ClassVar[bool] = True

    def _update_velocity(self, velocity: Vector, gradients: Vector) -> Vector:
        return yogi_ewma(velocity, square(gradients), self.beta_2)

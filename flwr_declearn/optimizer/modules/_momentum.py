"""Momentum-like modules: heavy-ball/Nesterov momentum, EWMA, Yogi's additive EWMA."""

from __future__ import annotations

from typing import Any, ClassVar

from flwr_declearn.model.api import Vector
from flwr_declearn.optimizer._arrays import Arrays, Hyper
from flwr_declearn.optimizer._checks import check_beta
from flwr_declearn.optimizer.modules._api import OptiModule

__all__ = ["EWMAModule", "MomentumModule", "YogiMomentumModule"]


def heavy_ball(states: tuple[Arrays, ...], g: Arrays, h: Hyper) -> Any:
    v = states[0].axpy(h["beta"], g)  # beta * v + g
    return (v,), v


def nesterov_momentum(states: tuple[Arrays, ...], g: Arrays, h: Hyper) -> Any:
    v = states[0].axpy(h["beta"], g)
    return (v,), v.axpy(h["beta"], g)


class MomentumModule(OptiModule):
    """Momentum (heavy-ball) or Nesterov acceleration, torch.optim.SGD-style.

    With velocity `v_0 = 0`:

        v_t = beta * v_{t-1} + g_t
        out = beta * v_t + g_t   if nesterov   else   v_t

    The learning rate multiplies the whole output (in the Optimizer), as in
    `torch.optim.SGD(momentum=beta, dampening=0)` and `optax.sgd`.
    `round_reset` resets the velocity when a training round starts.
    """

    name: ClassVar[str] = "momentum"
    state_names = ("velocity",)
    hyper_names = ("beta",)

    def __init__(
        self, beta: float = 0.9, nesterov: bool = False, round_reset: bool = False
    ) -> None:
        self.beta = check_beta(beta)
        self.nesterov = bool(nesterov)
        self.round_reset = bool(round_reset)
        self.step = nesterov_momentum if self.nesterov else heavy_ball
        self.velocity: Vector | None = None


def moving_average(states: tuple[Arrays, ...], g: Arrays, h: Hyper) -> Any:
    s = states[0].ewma(g, h["beta"])
    return (s,), s


def yogi_average(states: tuple[Arrays, ...], g: Arrays, h: Hyper) -> Any:
    s = states[0].yogi_ewma(g, h["beta"])
    return (s,), s


class EWMAModule(OptiModule):
    """Exponentially-weighted moving average of gradients.

    With `s_0 = 0`: `s_t = beta * s_{t-1} + (1 - beta) * g_t`, `out = s_t`.
    `round_reset` resets the average when a training round starts.
    """

    name: ClassVar[str] = "ewma"
    step = staticmethod(moving_average)
    state_names = ("state",)
    hyper_names = ("beta",)

    def __init__(self, beta: float = 0.9, round_reset: bool = False) -> None:
        self.beta = check_beta(beta)
        self.round_reset = bool(round_reset)
        self.state: Vector | None = None


class YogiMomentumModule(EWMAModule):
    """Yogi's additive moving average (Zaheer et al., 2018).

    With `s_0 = 0`: `s_t = s_{t-1} - (1 - beta) * sign(s_{t-1} - g_t) * g_t`,
    `out = s_t`. Meant for squared gradients: the step size of `s` depends
    on the input only, not on `s` (unlike an EWMA).
    """

    name: ClassVar[str] = "yogi-momentum"
    step = staticmethod(yogi_average)

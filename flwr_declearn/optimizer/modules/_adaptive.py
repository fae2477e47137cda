"""Adaptive step-size modules: AdaGrad, RMSProp, Adam (and AMSGrad), Yogi.

All put `eps` outside the square root, as declearn and torch.optim do:
`out = m / (sqrt(v) + eps)`.
"""

from __future__ import annotations

from functools import partial
from typing import Any, ClassVar

from flwr_declearn.model.api import Vector
from flwr_declearn.optimizer._arrays import Arrays, Hyper
from flwr_declearn.optimizer._checks import (
    check_beta,
    check_positive,
    required_state,
    vector_or_none,
)
from flwr_declearn.optimizer.modules._api import OptiModule

__all__ = ["AdaGradModule", "AdamModule", "RMSPropModule", "YogiModule"]


def adagrad(states: tuple[Arrays, ...], g: Arrays, h: Hyper) -> Any:
    s = states[0].addcmul(g, g)  # s + g ** 2
    return (s,), g.adaptive_scale(s, h["eps"])  # g / (sqrt(s) + eps)


def rmsprop(states: tuple[Arrays, ...], g: Arrays, h: Hyper) -> Any:
    v = states[0].ewma_squares(g, h["beta"])
    return (v,), g.adaptive_scale(v, h["eps"])  # g / (sqrt(v) + eps)


class AdaGradModule(OptiModule):
    """AdaGrad (Duchi et al., 2011): scale by the root of summed squared gradients.

    With `s_0 = 0`: `s_t = s_{t-1} + g_t ** 2`, `out = g_t / (sqrt(s_t) + eps)`.
    Equals `torch.optim.Adagrad(lr_decay=0, initial_accumulator_value=0)`.
    `round_reset` resets the sum when a training round starts.
    """

    name: ClassVar[str] = "adagrad"
    step = staticmethod(adagrad)
    state_names = ("state",)
    hyper_names = ("eps",)

    def __init__(self, eps: float = 1e-7, round_reset: bool = False) -> None:
        self.eps = check_positive(eps, "eps", strict=False)
        self.round_reset = bool(round_reset)
        self.state: Vector | None = None


class RMSPropModule(OptiModule):
    """RMSProp (Tieleman & Hinton, 2012): scale by the root of an EWMA of squared gradients.

    With `v_0 = 0` (no bias correction):
    `v_t = beta * v_{t-1} + (1 - beta) * g_t ** 2`, `out = g_t / (sqrt(v_t) + eps)`.
    Equals `torch.optim.RMSprop(alpha=beta)` and
    `optax.rmsprop(decay=beta, eps_in_sqrt=False)`.
    """

    name: ClassVar[str] = "rmsprop"
    step = staticmethod(rmsprop)
    state_names = ("state",)
    hyper_names = ("beta", "eps")

    def __init__(self, beta: float = 0.9, eps: float = 1e-7, round_reset: bool = False) -> None:
        self.beta = check_beta(beta)
        self.eps = check_positive(eps, "eps", strict=False)
        self.round_reset = bool(round_reset)
        self.state: Vector | None = None


def adam(states: tuple[Arrays, ...], g: Arrays, h: Hyper, yogi: bool, amsgrad: bool) -> Any:
    m, v, *vmax = states
    m = m.ewma(g, h["beta_1"])
    v = v.yogi_ewma(g * g, h["beta_2"]) if yogi else v.ewma_squares(g, h["beta_2"])
    if amsgrad:  # vmax_t = max(v / bias_2, vmax_{t-1})
        vmax = [(v / h["bias_2"]).maximum(vmax[0])]
        return (m, v, *vmax), m.adaptive_scale(vmax[0], h["eps"], h["bias_1"])
    return (m, v), m.adaptive_scale(v, h["eps"], h["bias_1"], h["bias_2"])


_ADAM_STEPS = {
    (y, a): partial(adam, yogi=y, amsgrad=a) for y in (False, True) for a in (False, True)
}


class AdamModule(OptiModule):
    """Adam (Kingma & Ba, 2014), optionally AMSGrad (Reddi et al., 2018).

    With `m_0 = v_0 = 0` and step index `t` starting at 1:

        m_t = beta_1 * m_{t-1} + (1 - beta_1) * g_t
        v_t = beta_2 * v_{t-1} + (1 - beta_2) * g_t ** 2
        v_hat = v_t / (1 - beta_2 ** t)
        v_hat = vmax_t = max(v_hat, vmax_{t-1})     # AMSGrad only
        out = (m_t / (1 - beta_1 ** t)) / (sqrt(v_hat) + eps)

    Without AMSGrad this equals `torch.optim.Adam` and `optax.adam`; the
    AMSGrad maximum is over bias-corrected `v_hat`, as in declearn and
    `optax.amsgrad`. `round_reset` resets moments, step count and maximum
    when a training round starts.
    """

    name: ClassVar[str] = "adam"
    hyper_names = ("beta_1", "beta_2", "eps")
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
        self.step = _ADAM_STEPS[(self.yogi, self.amsgrad)]
        self.state_names = ("momentum", "velocity", "vmax")[: 3 if self.amsgrad else 2]
        self.steps = 0
        self.momentum: Vector | None = None
        self.velocity: Vector | None = None
        self.vmax: Vector | None = None

    @property
    def fusable(self) -> bool:
        return not self.amsgrad  # AMSGrad stays on the eager path, as documented and tested

    def hyper(self) -> dict[str, float]:
        t = self.steps + 1  # bias corrections of step t
        bias = {"bias_1": 1.0 - self.beta_1**t, "bias_2": 1.0 - self.beta_2**t}
        return {**super().hyper(), **bias}

    def advance(self, states: tuple[Vector, ...]) -> None:
        super().advance(states)
        self.steps += 1

    def on_round_start(self) -> None:
        if self.round_reset:
            self.steps = 0
            self.momentum = self.velocity = self.vmax = None

    def get_state(self) -> dict[str, Any]:
        return {
            "steps": self.steps,
            "momentum": self.momentum,
            "velocity": self.velocity,
            "vmax": self.vmax,
        }

    def set_state(self, state: dict[str, Any]) -> None:
        """Restore a `get_state` output, or declearn's (moments as `{"state": ...}`)."""
        owner = type(self).__name__
        keys = ("steps", "momentum", "velocity", "vmax")
        steps, *vectors = required_state(state, keys, owner)
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
            raise TypeError(f"{owner}: state variable 'steps' must be an int >= 0, not {steps!r}.")
        for i, key in enumerate(keys[1:3]):  # declearn nests each moment in an EWMA's state
            if isinstance(vectors[i], dict):
                (vectors[i],) = required_state(vectors[i], ("state",), f"{owner} '{key}'")
        checked = [
            vector_or_none(vec, key, owner) for vec, key in zip(vectors, keys[1:], strict=True)
        ]
        self.steps = steps
        self.momentum, self.velocity, self.vmax = checked


class YogiModule(AdamModule):
    """Yogi (Zaheer et al., 2018): Adam with an additive second-moment update.

    As `AdamModule` (bias correction and optional AMSGrad included), but
    `v_t = v_{t-1} - (1 - beta_2) * sign(v_{t-1} - g_t ** 2) * g_t ** 2`.
    """

    name: ClassVar[str] = "yogi"
    yogi: ClassVar[bool] = True

"""FedProx, Lasso (L1) and Ridge (L2) regularizers."""

from __future__ import annotations

from typing import ClassVar

from flwr_declearn.model.api import Vector
from flwr_declearn.optimizer.regularizers._api import Regularizer

__all__ = ["FedProxRegularizer", "LassoRegularizer", "RidgeRegularizer"]


class FedProxRegularizer(Regularizer):
    """FedProx proximal term (Li et al., 2020): keep local weights near the round's start.

    With `w_0` the weights seen at the round's first step:

        loss += alpha / 2 * ||w - w_0||^2
        grads += alpha * (w - w_0)

    The first step of a round records `w_0` (its correction is zero).
    """

    name: ClassVar[str] = "fedprox"

    def __init__(self, alpha: float = 0.01) -> None:
        super().__init__(alpha)
        self.ref_wgt: Vector | None = None

    def on_round_start(self) -> None:
        self.ref_wgt = None

    def run(self, gradients: Vector, weights: Vector) -> Vector:
        if self.ref_wgt is None:
            self.ref_wgt = weights * 1.0  # own copy: the model may reuse its buffers
            return gradients
        return (weights - self.ref_wgt) * self.alpha + gradients


class LassoRegularizer(Regularizer):
    """L1 (Lasso) penalty.

    loss += alpha * ||w||_1
    grads += alpha * sign(w)
    """

    name: ClassVar[str] = "lasso"

    def run(self, gradients: Vector, weights: Vector) -> Vector:
        return weights.sign() * self.alpha + gradients


class RidgeRegularizer(Regularizer):
    """L2 (Ridge) penalty.

    loss += alpha * ||w||_2^2
    grads += 2 * alpha * w
    """

    name: ClassVar[str] = "ridge"

    def run(self, gradients: Vector, weights: Vector) -> Vector:
        return weights * (2.0 * self.alpha) + gradients

"""`Regularizer`: loss-regularization term, applied to gradients before any module."""

from __future__ import annotations

from abc import ABCMeta, abstractmethod
from typing import Any, ClassVar

from flwr_declearn.model.api import Vector
from flwr_declearn.optimizer._checks import check_positive, init_config
from flwr_declearn.utils import create_types_registry
from flwr_declearn.utils._plugin import RegisteredPlugin

__all__ = ["Regularizer"]


@create_types_registry(name="Regularizer")
class Regularizer(RegisteredPlugin, metaclass=ABCMeta, register=False):
    """Add the gradient of a regularization term `alpha * R(weights)` to gradients.

    Regularizers run first in an `Optimizer`, on the raw gradients, in
    their listed order. Unlike OptiModules, they exchange no aux-vars.
    Subclasses are registered under their `name` in the "Regularizer"
    group, unless declared with `register=False`.

    Parameters
    ----------
    alpha:
        Coefficient of the regularization term in the loss (>= 0).
    """

    plugin_group: ClassVar[str] = "Regularizer"

    def __init__(self, alpha: float = 0.01) -> None:
        self.alpha = check_positive(alpha, "alpha", strict=False)

    @abstractmethod
    def run(self, gradients: Vector, weights: Vector) -> Vector:
        """Return `gradients` plus the regularization term's gradient at `weights`."""

    def on_round_start(self) -> None:
        """Hook called when a training round starts (no-op by default)."""
        return None

    def get_config(self) -> dict[str, Any]:
        """Return the JSON-serializable keyword arguments that rebuild this regularizer."""
        return init_config(self)

"""`Regularizer`: loss-regularization term, applied to gradients before any module."""

from __future__ import annotations

from abc import ABCMeta, abstractmethod
from typing import Any, ClassVar, Self

from flwr_declearn.model.api import Vector
from flwr_declearn.optimizer._checks import check_positive
from flwr_declearn.utils import access_registered, create_types_registry, register_type

__all__ = ["Regularizer"]


@create_types_registry(name="Regularizer")
class Regularizer(metaclass=ABCMeta):
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

    name: ClassVar[str] = NotImplemented
    """Unique name of the regularizer type, used for registration and configs."""

    def __init_subclass__(cls, register: bool = True, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if register:
            if not isinstance(cls.__dict__.get("name"), str):
                raise TypeError(
                    f"Regularizer subclass '{cls.__qualname__}' must define a str 'name' class "
                    "attribute (or be declared with register=False)."
                )
            register_type(cls, name=cls.name, group="Regularizer")

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
        return {"alpha": self.alpha}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Self:
        """Build a regularizer from its `get_config` output.

        Raises
        ------
        TypeError
            If `config` holds unexpected or lacks required parameters.
        """
        try:
            return cls(**config)
        except TypeError as exc:
            raise TypeError(f"Invalid config for Regularizer '{cls.name}': {exc}") from exc

    @staticmethod
    def from_specs(name: str, config: dict[str, Any]) -> Regularizer:
        """Build the regularizer registered under `name` from its config dict.

        Raises
        ------
        KeyError
            If no Regularizer is registered under `name`.
        """
        cls = access_registered(name, group="Regularizer")
        return cls.from_config(config)  # type: ignore[attr-defined, no-any-return]

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"

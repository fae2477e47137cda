"""Framework-agnostic `Model` API."""

from __future__ import annotations

from abc import ABCMeta, abstractmethod
from collections.abc import Callable
from typing import Any, ClassVar, Generic, Self, TypeVar

import numpy as np

from flwr_declearn.data import Batch
from flwr_declearn.model.api._vector import Vector
from flwr_declearn.utils import DevicePolicy, create_types_registry

__all__ = ["Model"]

VectorT = TypeVar("VectorT", bound=Vector)


@create_types_registry(name="Model")
class Model(Generic[VectorT], metaclass=ABCMeta):
    """Interface to a framework-specific model: weights, gradients, predictions.

    Weights and gradients are exchanged as the framework's Vector type, so
    that optimization algorithms are written once for every framework.
    Device placement follows the global `DevicePolicy` at instantiation and
    on `update_device_policy`.
    """

    def __init__(self, model: Any) -> None:
        self._model = model
        self._loss_history: list[float] = []

    def get_wrapped_model(self) -> Any:
        """Return the wrapped framework-specific model (for users, not internals)."""
        return self._model

    @property
    @abstractmethod
    def device_policy(self) -> DevicePolicy:
        """Device-placement policy currently used by this model."""

    @property
    @abstractmethod
    def required_data_info(self) -> set[str]:
        """Names of the `data_info` fields `initialize` needs (empty once initialized)."""

    @abstractmethod
    def initialize(self, data_info: dict[str, Any]) -> None:
        """Initialize the model from data specifications.

        Raises
        ------
        KeyError
            If a field of `required_data_info` is missing.
        """

    @abstractmethod
    def get_config(self) -> dict[str, Any]:
        """Return a JSON-serializable dict from which `from_config` rebuilds the model."""

    @classmethod
    @abstractmethod
    def from_config(cls, config: dict[str, Any]) -> Self:
        """Instantiate a model from its configuration dict."""

    @abstractmethod
    def get_weights(self, trainable: bool = False) -> VectorT:
        """Return the model's weights, restricted to the trainable ones if `trainable`."""

    @abstractmethod
    def set_weights(self, weights: VectorT, trainable: bool = False) -> None:
        """Assign all the model's weights (only the trainable ones if `trainable`).

        Raises
        ------
        KeyError
            If the names of `weights` differ from the model's.
        TypeError
            If `weights` is not of this model's Vector type.
        """

    @abstractmethod
    def compute_batch_gradients(self, batch: Batch, max_norm: float | None = None) -> VectorT:
        """Return the batch-averaged gradients of the loss w.r.t. the trainable weights.

        Records the batch loss (see `collect_training_losses`).

        Parameters
        ----------
        batch:
            `(inputs, y_true, s_wght)` tuple.
        max_norm:
            If set, clip each sample's gradients to this L2 norm before averaging.
        """

    @abstractmethod
    def apply_updates(self, updates: VectorT, scale: float = 1.0) -> None:
        """Add `scale * updates` to the trainable weights, in place.

        `scale` lets an Optimizer apply `-lrate * direction` in the same pass
        over the weights, instead of materializing the scaled updates first.
        """

    fused_vector_type: ClassVar[type[Vector] | None] = None
    """Vector type whose compiled kernels `run_fused_step` can trace (None: cannot)."""

    def run_fused_step(
        self,
        batch: Batch,
        max_norm: float | None,
        rule: Callable[[dict[str, Any], dict[str, Any], Any], tuple[dict[str, Any], Any]],
        args: Any,
    ) -> Any:
        """Compute gradients on `batch` and update the weights by `rule`, in one compiled call.

        `rule(weights, gradients, args) -> (new_weights, outputs)` is a pure
        function of dicts of framework arrays (the trainable weights, by
        name), traceable by the framework's compiler; `args` is a nest of
        arrays and scalars whose structure and shapes depend only on `rule`
        and on the trainable weights. Records the batch loss, as
        `compute_batch_gradients` does.

        Returns
        -------
        The rule's `outputs`, as framework arrays.

        Raises
        ------
        NotImplementedError
            If this model has no compiled steps (`fused_vector_type` is None).
        """
        raise NotImplementedError(f"{type(self).__name__} has no fused training steps.")

    def collect_training_losses(self) -> list[float]:
        """Return the batch losses recorded since the last call, and forget them."""
        losses, self._loss_history = self._loss_history, []
        return losses

    @abstractmethod
    def compute_batch_predictions(
        self, batch: Batch
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """Return `(y_true, y_pred, s_wght)` as numpy arrays for a batch."""

    @abstractmethod
    def loss_function(self, y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
        """Return the sample-wise loss values of predictions, as a 1-d numpy array."""

    @abstractmethod
    def update_device_policy(self, policy: DevicePolicy | None = None) -> None:
        """Move the model to `policy`'s device (the global policy if None)."""

"""Server-side holder of the global weights, that the server Optimizer updates."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any, Self

import numpy as np

from flwr_declearn.data import Batch
from flwr_declearn.model.api import Model
from flwr_declearn.model.numpy import NumpyVector
from flwr_declearn.utils import DevicePolicy

__all__ = ["GlobalWeights"]


class GlobalWeights(Model[NumpyVector]):
    """Global model weights on the server, as a numpy-backed `Model`.

    The server Optimizer is written against the `Model` API (weight decay
    and regularizers read `get_weights(trainable=True)`, updates go through
    `apply_updates`). The server holds weights but no data: the data-related
    methods (gradients, predictions, loss) raise a TypeError.

    Parameters
    ----------
    weights:
        All the model's weights, trainable or not.
    trainable:
        Names of the trainable weights; the others (e.g. batch-norm running
        statistics) are assigned, never optimized.
    """

    def __init__(self, weights: NumpyVector, trainable: Collection[str]) -> None:
        super().__init__(None)
        unknown = sorted(set(trainable) - set(weights.coefs))
        if unknown:
            raise KeyError(f"Trainable weight names {unknown} are not among the weights.")
        self._weights = {name: np.array(value, copy=True) for name, value in weights.pack().items()}
        self._trainable = [name for name in weights.coefs if name in set(trainable)]

    @property
    def trainable_names(self) -> list[str]:
        """Names of the trainable weights."""
        return list(self._trainable)

    @property
    def device_policy(self) -> DevicePolicy:
        return DevicePolicy(gpu=False, idx=None)

    @property
    def required_data_info(self) -> set[str]:
        return set()

    def initialize(self, data_info: dict[str, Any]) -> None:
        """Nothing to initialize: the weights are given at instantiation."""

    def get_config(self) -> dict[str, Any]:
        return {
            "specs": {k: [list(v.shape), v.dtype.name] for k, v in self._weights.items()},
            "trainable": list(self._trainable),
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Self:
        """Build zero-valued weights with the specs of `config`."""
        weights = {
            name: np.zeros(shape, dtype=dtype) for name, (shape, dtype) in config["specs"].items()
        }
        return cls(NumpyVector(weights), config["trainable"])

    def get_weights(self, trainable: bool = False) -> NumpyVector:
        names = self._trainable if trainable else list(self._weights)
        return NumpyVector({name: self._weights[name] for name in names})

    def set_weights(self, weights: NumpyVector, trainable: bool = False) -> None:
        if not isinstance(weights, NumpyVector):
            raise TypeError(f"GlobalWeights takes a NumpyVector, not {type(weights).__name__}.")
        self.get_weights(trainable).check_specs(weights)
        for name, value in weights.coefs.items():
            self._weights[name] = np.asarray(value)

    def apply_updates(self, updates: NumpyVector, scale: float = 1.0) -> None:
        current = self.get_weights(trainable=True)
        # The addition checks names, shapes and dtypes.
        new = current + (updates if scale == 1.0 else updates * scale)
        for name, value in new.coefs.items():
            self._weights[name] = np.asarray(value, dtype=self._weights[name].dtype)

    def _no_data(self, method: str) -> TypeError:
        return TypeError(
            f"GlobalWeights.{method}: the server-side global model holds weights only; "
            "it has no data, loss or predictions."
        )

    def compute_batch_gradients(self, batch: Batch, max_norm: float | None = None) -> NumpyVector:
        raise self._no_data("compute_batch_gradients")

    def compute_batch_predictions(
        self, batch: Batch
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        raise self._no_data("compute_batch_predictions")

    def loss_function(self, y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
        raise self._no_data("loss_function")

    def update_device_policy(self, policy: DevicePolicy | None = None) -> None:
        """Nothing to move: the global weights always live in host memory."""

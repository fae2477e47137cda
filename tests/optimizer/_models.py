"""A small numpy linear-regression Model (test fixture implementing the Model API).

Weights live as numpy arrays; `get_weights`/`apply_updates` exchange them as
any of our Vector types, so optimizers can be tested on every backend.
"""

from __future__ import annotations

from typing import Any, Self

import numpy as np

from flwr_declearn.data import Batch
from flwr_declearn.model.api import Model, Vector, load_vector_type
from flwr_declearn.model.numpy import NumpyVector
from flwr_declearn.utils import DevicePolicy, get_device_policy

__all__ = ["NumpyLinearModel"]


class NumpyLinearModel(Model[Vector]):
    """`y = x @ kernel + bias`, with loss `0.5 * ||y - y_true||^2` per sample.

    Batch gradients are the mean over samples of the (sample-weighted,
    optionally L2-clipped) per-sample gradients.
    """

    def __init__(
        self, n_features: int, n_outputs: int, vector_type: str = "NumpyVector", seed: int = 0
    ) -> None:
        rng = np.random.default_rng(seed)
        weights = {
            "kernel": rng.normal(size=(n_features, n_outputs)),
            "bias": rng.normal(size=(n_outputs,)),
        }
        super().__init__(weights)
        self.weights: dict[str, np.ndarray] = weights
        self.vector_type = load_vector_type(vector_type)
        self.seed = seed
        self._policy = get_device_policy()

    @classmethod
    def from_shapes(
        cls, shapes: dict[str, tuple[int, ...]], vector_type: str = "NumpyVector"
    ) -> Self:
        """Build a model whose kernel has the shape `shapes["kernel"]`."""
        n_features, n_outputs = shapes["kernel"]
        return cls(n_features, n_outputs, vector_type)

    @property
    def device_policy(self) -> DevicePolicy:
        return self._policy

    @property
    def required_data_info(self) -> set[str]:
        return set()

    def initialize(self, data_info: dict[str, Any]) -> None:
        return None

    def get_config(self) -> dict[str, Any]:
        n_features, n_outputs = self.weights["kernel"].shape
        return {
            "n_features": n_features,
            "n_outputs": n_outputs,
            "vector_type": self.vector_type.__name__,
            "seed": self.seed,
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Self:
        return cls(**config)

    def get_weights(self, trainable: bool = False) -> Vector:
        return self.vector_type.unpack({k: v.copy() for k, v in self.weights.items()})

    def set_weights(self, weights: Vector, trainable: bool = False) -> None:
        packed = weights.pack()
        if packed.keys() != self.weights.keys():
            raise KeyError(f"Expected weights {sorted(self.weights)}, got {sorted(packed)}.")
        self.weights = {k: np.array(v, dtype=np.float64) for k, v in packed.items()}

    def _sample_gradients(self, batch: Batch) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        inputs, y_true, s_wght = batch
        x = np.asarray(inputs, dtype=np.float64)
        resid = x @ self.weights["kernel"] + self.weights["bias"] - np.asarray(y_true)
        grad_k = x[:, :, None] * resid[:, None, :]  # (n, d, k)
        grad_b = resid  # (n, k)
        weights = np.ones(len(x)) if s_wght is None else np.asarray(s_wght, dtype=np.float64)
        return grad_k, grad_b, weights

    def compute_batch_gradients(self, batch: Batch, max_norm: float | None = None) -> Vector:
        grad_k, grad_b, s_wght = self._sample_gradients(batch)
        if max_norm is not None:
            norms = np.sqrt((grad_k**2).sum(axis=(1, 2)) + (grad_b**2).sum(axis=1))
            scale = np.minimum(1.0, max_norm / np.maximum(norms, 1e-300))
            s_wght = s_wght * scale
        inputs, y_true, _ = batch
        loss = self.loss_function(np.asarray(y_true), self._predict(inputs))
        self._loss_history.append(float(np.mean(loss)))
        grads = {
            "kernel": np.einsum("n,ndk->dk", s_wght, grad_k) / len(s_wght),
            "bias": np.einsum("n,nk->k", s_wght, grad_b) / len(s_wght),
        }
        return self.vector_type.unpack(grads)

    def apply_updates(self, updates: Vector, scale: float = 1.0) -> None:
        packed = updates.pack()
        self.weights = {k: v + scale * np.asarray(packed[k]) for k, v in self.weights.items()}

    def _predict(self, inputs: Any) -> np.ndarray:
        return np.asarray(inputs) @ self.weights["kernel"] + self.weights["bias"]  # type: ignore[no-any-return]

    def compute_batch_predictions(
        self, batch: Batch
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        inputs, y_true, s_wght = batch
        return np.asarray(y_true), self._predict(inputs), s_wght

    def loss_function(self, y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
        return 0.5 * np.sum((y_pred - y_true) ** 2, axis=-1)  # type: ignore[no-any-return]

    def update_device_policy(self, policy: DevicePolicy | None = None) -> None:
        self._policy = policy or get_device_policy()

    def weights_vector(self) -> NumpyVector:
        """Return the current weights as a NumpyVector (copies)."""
        return NumpyVector({k: v.copy() for k, v in self.weights.items()})

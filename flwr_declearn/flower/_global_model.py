"""Server-side holder of the global weights, that the server Optimizer updates."""

from __future__ import annotations

from collections.abc import Collection

import numpy as np

from flwr_declearn.model.numpy import NumpyVector

__all__ = ["GlobalWeights"]


class GlobalWeights:
    """Global model weights on the server: named numpy arrays, some of them trainable.

    It is what the server Optimizer needs of a model
    (`optimizer.SupportsUpdates`: `get_weights(trainable=...)` and
    `apply_updates`), and nothing else: the server holds no data. Updates
    never modify an array in place (each one is replaced), so a shallow copy
    of `arrays` is a snapshot.

    Parameters
    ----------
    weights:
        All the model's weights, trainable or not.
    trainable:
        Names of the trainable weights; the others (e.g. batch-norm running
        statistics) are assigned, never optimized.
    """

    def __init__(self, weights: NumpyVector, trainable: Collection[str]) -> None:
        unknown = sorted(set(trainable) - set(weights.coefs))
        if unknown:
            raise KeyError(f"Trainable weight names {unknown} are not among the weights.")
        self.arrays: dict[str, np.ndarray] = {
            name: np.array(value, copy=True) for name, value in weights.pack().items()
        }
        self.trainable_names = [name for name in weights.coefs if name in set(trainable)]

    def get_weights(self, trainable: bool = False) -> NumpyVector:
        """Return the (trainable) weights as a NumpyVector sharing our arrays."""
        names = self.trainable_names if trainable else list(self.arrays)
        return NumpyVector({name: self.arrays[name] for name in names})

    def set_weights(self, weights: NumpyVector, trainable: bool = False) -> None:
        """Replace (trainable) weights, after checking their names and specs.

        Raises
        ------
        VectorSpecError
            If names, shapes or dtypes differ from ours.
        """
        self.get_weights(trainable).check_specs(weights)
        for name, value in weights.pack().items():
            self.arrays[name] = np.asarray(value)

    def apply_updates(self, updates: NumpyVector, scale: float = 1.0) -> None:
        """Add `scale * updates` to the trainable weights (names and specs checked)."""
        current = self.get_weights(trainable=True)
        new = current + (updates if scale == 1.0 else updates * scale)
        for name, value in new.pack().items():
            self.arrays[name] = np.asarray(value, dtype=self.arrays[name].dtype)

"""In-memory dataset yielding `(inputs, y_true, s_wght)` batches."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import numpy as np

__all__ = ["Batch", "DataSpecs", "InMemoryDataset"]

Batch = tuple[Any, Any | None, Any | None]
"""`(inputs, y_true, s_wght)`: input data, optional targets, optional sample weights."""


@dataclasses.dataclass(frozen=True)
class DataSpecs:
    """Specifications of a dataset, shared with the server as `data_info`."""

    n_samples: int
    features_shape: tuple[int, ...]
    classes: list[Any] | None = None
    data_type: str | None = None

    def to_data_info(self) -> dict[str, Any]:
        """Return the specs as a JSON-serializable `data_info` dict."""
        info: dict[str, Any] = {
            "n_samples": self.n_samples,
            "features_shape": list(self.features_shape),
        }
        if self.classes is not None:
            info["classes"] = list(self.classes)
        if self.data_type is not None:
            info["data_type"] = self.data_type
        return info


class InMemoryDataset:
    """Dataset held in memory as numpy arrays.

    Parameters
    ----------
    data:
        Input features, batched along the first axis.
    target:
        Optional targets, aligned with `data`.
    s_wght:
        Optional sample weights, aligned with `data`.
    seed:
        Seed of the generator used for shuffling and Poisson sampling.
    """

    def __init__(
        self,
        data: Any,
        target: Any | None = None,
        s_wght: Any | None = None,
        seed: int | None = None,
    ) -> None:
        self.data = np.asarray(data)
        if self.data.ndim == 0:
            raise ValueError("'data' must have a batch (first) axis.")
        n_samples = len(self.data)
        self.target = None if target is None else np.asarray(target)
        self.s_wght = None if s_wght is None else np.asarray(s_wght)
        for name, arr in (("target", self.target), ("s_wght", self.s_wght)):
            if arr is not None and len(arr) != n_samples:
                raise ValueError(f"'{name}' has {len(arr)} samples while 'data' has {n_samples}.")
        self.seed = seed
        self._rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        return len(self.data)

    def get_data_specs(self) -> DataSpecs:
        """Return the dataset's specifications."""
        classes = None
        if self.target is not None and (
            np.issubdtype(self.target.dtype, np.integer) or self.target.dtype.kind in "bUS"
        ):
            classes = np.unique(self.target).tolist()
        return DataSpecs(
            n_samples=len(self.data),
            features_shape=tuple(self.data.shape[1:]),
            classes=classes,
            data_type=self.data.dtype.name,
        )

    def generate_batches(
        self,
        batch_size: int,
        shuffle: bool = False,
        drop_remainder: bool = True,
        replacement: bool = False,
        poisson: bool = False,
    ) -> Iterator[Batch]:
        """Yield batches of samples, covering the dataset once (one epoch).

        Parameters
        ----------
        batch_size:
            Number of samples per batch (the expected number with `poisson`).
        shuffle:
            Whether to shuffle the samples before batching.
        drop_remainder:
            Whether to drop a last batch smaller than `batch_size`.
        replacement:
            Whether to draw each batch's samples with replacement (implies shuffling).
        poisson:
            Whether to draw each batch by Poisson sampling: every sample is included
            independently with probability `batch_size / n_samples`, as DP-SGD's privacy
            accounting assumes. Batches may then be empty; those are skipped.
        """
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"'batch_size' must be a positive int, not {batch_size!r}.")
        n_samples = len(self.data)
        n_batches = n_samples // batch_size
        if not drop_remainder and n_samples % batch_size:
            n_batches += 1
        if poisson:
            rate = min(1.0, batch_size / n_samples)
            for _ in range(n_batches):
                idx = np.flatnonzero(self._rng.random(n_samples) < rate)
                if idx.size:
                    yield self._take(idx)
            return
        if replacement:
            for _ in range(n_batches):
                yield self._take(self._rng.integers(0, n_samples, size=batch_size))
            return
        order = self._rng.permutation(n_samples) if shuffle else np.arange(n_samples)
        for start in range(0, n_batches * batch_size, batch_size):
            idx = order[start : start + batch_size]
            yield self._take(idx) if shuffle else self._slice(start, start + len(idx))

    def _take(self, idx: np.ndarray) -> Batch:
        return (
            self.data[idx],
            None if self.target is None else self.target[idx],
            None if self.s_wght is None else self.s_wght[idx],
        )

    def _slice(self, start: int, stop: int) -> Batch:
        return (
            self.data[start:stop],
            None if self.target is None else self.target[start:stop],
            None if self.s_wght is None else self.s_wght[start:stop],
        )

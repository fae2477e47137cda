"""In-memory dataset yielding `(inputs, y_true, s_wght)` batches."""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Iterator
from typing import Any

import numpy as np

from flwr_declearn.data._io import is_pandas, is_sparse, load_data_array, save_data_array

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
    """Dataset held in memory: numpy arrays, scipy sparse matrices or pandas objects.

    Parameters
    ----------
    data:
        Input data, batched along the first axis: an array, a scipy sparse
        matrix, a pandas DataFrame or Series, or the path of a ".csv",
        ".npy" or sparse ".npz" file (see `save_data_array`).
    target:
        Optional targets, aligned with `data`: an array-like, a file path,
        or the name of a column of a DataFrame `data`.
    s_wght:
        Optional sample weights, given as `target` is.
    f_cols:
        Optional feature columns of a DataFrame `data` (names or positions)
        or of a 2-d array; default: every column that is not `target` or
        `s_wght`.
    expose_classes:
        Whether `classes` (and the data specs) tell the target labels.
        Default (None): only for integer, boolean or string targets.
    expose_data_type:
        Whether `data_type` (and the data specs) tell the features' dtype.
        Default (None): yes, unless a DataFrame mixes dtypes.
    seed:
        Seed of the generator used for shuffling and Poisson sampling.
    """

    def __init__(
        self,
        data: Any,
        target: Any | None = None,
        s_wght: Any | None = None,
        f_cols: list[int] | list[str] | None = None,
        expose_classes: bool | None = None,
        expose_data_type: bool | None = None,
        seed: int | None = None,
    ) -> None:
        self._sources = {"data": data, "target": target, "s_wght": s_wght}
        self.data = _as_data(load_data_array(data) if _is_path(data) else data)
        used: list[str] = []
        self.target = self._side_input("target", target, used)
        self.weights = self._side_input("s_wght", s_wght, used)
        self.f_cols = f_cols
        self.feats = _select_features(self.data, f_cols, used)
        self.expose_classes = expose_classes
        self.expose_data_type = expose_data_type
        self._x = _rows(self.feats)
        if self._x.ndim == 0:
            raise ValueError("'data' must have a batch (first) axis.")
        n_samples = self._x.shape[0]
        self._y = None if self.target is None else _rows(self.target)
        self._w = None if self.weights is None else _rows(self.weights)
        for name, arr in (("target", self._y), ("s_wght", self._w)):
            if arr is not None and arr.shape[0] != n_samples:
                raise ValueError(
                    f"'{name}' has {arr.shape[0]} samples while 'data' has {n_samples}."
                )
        self.seed = seed
        self._rng = np.random.default_rng(seed)

    def _side_input(self, name: str, value: Any, used: list[str]) -> Any:
        """Resolve a target / weights input: a column of `data`, a file, or an array-like."""
        if value is None:
            return None
        if isinstance(value, str) and is_pandas(self.data) and hasattr(self.data, "columns"):
            if value in self.data.columns:
                used.append(value)
                return self.data[value]
        if _is_path(value):
            return _as_data(load_data_array(value))
        return _as_data(value)

    @property
    def s_wght(self) -> Any | None:
        """Sample weights (alias of `weights`)."""
        return self.weights

    def __len__(self) -> int:
        return int(self._x.shape[0])

    @property
    def classes(self) -> set[Any] | None:
        """Set of target labels, if exposed (see `expose_classes`)."""
        if self._y is None:
            return None
        if self.expose_classes is None and _dtype_of(self.target).kind not in "biuUS":
            return None
        if self.expose_classes is False:
            return None
        if is_sparse(self.target):
            csr = self.target.tocsr()
            values = np.unique(csr.data)
            if csr.nnz < np.prod(csr.shape):
                values = np.union1d(values, np.zeros(1, dtype=values.dtype))
        else:
            values = np.unique(self._y)
        return set(values.tolist())

    @property
    def data_type(self) -> str | None:
        """Name of the features' dtype, if exposed (see `expose_data_type`).

        Raises
        ------
        ValueError
            If exposed, and `data` is a DataFrame whose columns mix dtypes.
        """
        if self.expose_data_type is False:
            return None
        if is_pandas(self.feats) and hasattr(self.feats, "columns"):
            names = {np.dtype(dt).name for dt in self.feats.dtypes}
            if len(names) != 1:
                if self.expose_data_type is None:
                    return None
                raise ValueError(f"The feature columns mix dtypes {sorted(names)}.")
            return names.pop()
        return _dtype_of(self.feats).name

    def get_data_specs(self) -> DataSpecs:
        """Return the dataset's specifications (classes and dtype as exposed)."""
        classes = self.classes
        return DataSpecs(
            n_samples=len(self),
            features_shape=tuple(int(d) for d in self._x.shape[1:]),
            classes=None if classes is None else _sorted(classes),
            data_type=self.data_type,
        )

    @classmethod
    def from_svmlight(
        cls,
        path: str,
        f_cols: list[int] | None = None,
        dtype: str = "float64",
        **kwargs: Any,
    ) -> InMemoryDataset:
        """Load a dataset from an svmlight / libsvm file (needs scikit-learn).

        Features load as a scipy CSR matrix and targets as a numpy array;
        `kwargs` go to the constructor (e.g. `expose_classes`, `seed`).
        """
        try:
            from sklearn.datasets import load_svmlight_file
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise ImportError("InMemoryDataset.from_svmlight needs scikit-learn.") from exc
        feats, target = load_svmlight_file(path, dtype=np.dtype(dtype))
        return cls(data=feats, target=target, f_cols=f_cols, **kwargs)

    def save_to_json(self, path: str | os.PathLike[str]) -> None:
        """Write this dataset's config to a JSON file, saving in-memory arrays beside it.

        Arrays given as paths or column names are referenced as such; other
        inputs are saved with `save_data_array` next to the JSON file (pandas
        objects as CSV, whose dtypes pandas infers again on loading).
        """
        path = os.fspath(path)
        stem = os.path.splitext(path)[0]
        config: dict[str, Any] = {}
        for name, value in self._sources.items():
            if value is None or isinstance(value, str) or _is_path(value):
                config[name] = None if value is None else os.fspath(value)
            else:
                array = (
                    self.data
                    if name == "data"
                    else getattr(self, "weights" if name == "s_wght" else name)
                )
                config[name] = os.path.abspath(save_data_array(f"{stem}.{name}", _savable(array)))
        config.update(
            f_cols=self.f_cols,
            expose_classes=self.expose_classes,
            expose_data_type=self.expose_data_type,
            seed=self.seed,
        )
        with open(path, "w", encoding="utf-8") as file:
            json.dump({"config": config}, file, indent=2)

    @classmethod
    def load_from_json(cls, path: str | os.PathLike[str]) -> InMemoryDataset:
        """Rebuild a dataset from a JSON file written by `save_to_json`.

        Raises
        ------
        KeyError
            If the file does not hold a complete dataset config.
        """
        with open(path, encoding="utf-8") as file:
            dump = json.load(file)
        if not isinstance(dump, dict) or "config" not in dump:
            raise KeyError(f"'{os.fspath(path)}' holds no 'config' of an InMemoryDataset.")
        config = dump["config"]
        needed = ("data", "target", "s_wght", "f_cols", "expose_classes", "expose_data_type")
        missing = [key for key in needed if key not in config]
        if missing:
            raise KeyError(f"The InMemoryDataset config in '{os.fspath(path)}' lacks {missing}.")
        return cls(**{key: config[key] for key in (*needed, "seed") if key in config})

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
        n_samples = len(self)
        n_batches = n_samples // batch_size
        if not drop_remainder and n_samples % batch_size:
            n_batches += 1
        if poisson:
            rate = min(1.0, batch_size / n_samples)
            for _ in range(n_batches):
                idx = np.flatnonzero(self._rng.random(n_samples) < rate)
                if idx.size:
                    yield self.take(idx)
            return
        if replacement:
            for _ in range(n_batches):
                yield self.take(self._rng.integers(0, n_samples, size=batch_size))
            return
        order = self._rng.permutation(n_samples) if shuffle else np.arange(n_samples)
        for start in range(0, n_batches * batch_size, batch_size):
            idx = order[start : start + batch_size]
            yield self.take(idx) if shuffle else self._slice(start, start + len(idx))

    def take(self, idx: np.ndarray) -> Batch:
        """Return the samples at positions `idx` as a batch (numpy arrays, or CSR rows)."""
        return (
            self._x[idx],
            None if self._y is None else self._y[idx],
            None if self._w is None else self._w[idx],
        )

    def _slice(self, start: int, stop: int) -> Batch:
        return (
            self._x[start:stop],
            None if self._y is None else self._y[start:stop],
            None if self._w is None else self._w[start:stop],
        )


def _is_path(value: Any) -> bool:
    return isinstance(value, str | os.PathLike)


def _as_data(value: Any) -> Any:
    """Keep arrays, sparse matrices and pandas objects as given; turn the rest into arrays."""
    if isinstance(value, np.ndarray) or is_pandas(value) or is_sparse(value):
        return value
    return np.asarray(value)


def _rows(value: Any) -> Any:
    """Row-indexable view used for batching: numpy for pandas, CSR for sparse."""
    if is_pandas(value):
        return value.to_numpy()
    if is_sparse(value):
        return value.tocsr()
    return value


def _dtype_of(value: Any) -> np.dtype:
    if is_pandas(value) and hasattr(value, "columns"):
        return np.result_type(*value.dtypes)
    return np.dtype(value.dtype)


def _select_features(data: Any, f_cols: list[int] | list[str] | None, used: list[str]) -> Any:
    """Feature part of `data`: `f_cols` if given, else all but the target / weight columns."""
    if f_cols is None:
        if used and is_pandas(data):
            return data.drop(columns=used)
        return data
    cols = list(f_cols)
    if is_pandas(data) and hasattr(data, "columns"):
        if all(isinstance(c, str) for c in cols):
            return data[cols]
        if all(isinstance(c, int | np.integer) for c in cols):
            return data.iloc[:, cols]
        raise TypeError("'f_cols' must be all column names or all column positions.")
    if not all(isinstance(c, int | np.integer) for c in cols):
        raise TypeError("'f_cols' of non-DataFrame data must be column positions.")
    if is_sparse(data):
        return data.tocsc()[:, cols]
    array = np.asarray(data)
    if array.ndim < 2:
        raise ValueError(f"'f_cols' selects columns, but 'data' has {array.ndim} dimension(s).")
    if any(not -array.shape[1] <= c < array.shape[1] for c in cols):
        raise ValueError(f"'f_cols' {cols} out of range for {array.shape[1]} column(s).")
    return array[:, np.asarray(cols, dtype=np.int64)]


def _savable(value: Any) -> Any:
    return value if (is_pandas(value) or is_sparse(value)) else np.asarray(value)


def _sorted(values: set[Any]) -> list[Any]:
    try:
        return sorted(values)
    except TypeError:
        return list(values)

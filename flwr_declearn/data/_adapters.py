"""Turn the datasets Flower users hold into `InMemoryDataset`s, importing no framework.

`as_dataset` accepts:

- an `InMemoryDataset` (returned as is);
- numpy-like `(x, y)` or `(x, y, s_wght)` tuples (or a single array `x`);
- a torch `Dataset` (map-style or iterable) whose items are tensors or
  `(x, y[, s_wght])` tuples, or a torch `DataLoader` (iterated once);
- a `tf.data.Dataset` of tensors or `(x, y[, s_wght])` tuples, per sample or
  batched (see `from_tf_dataset`);
- a Hugging Face `datasets.Dataset`, as flwr-datasets partitioners return
  (see `from_hf_dataset` for the choice of columns).

Samples keep their order. A shuffling DataLoader is iterated once, so its
order is the one drawn then; batching and shuffling during training follow
the server's `TrainingConfig`, not the loader's settings.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from flwr_declearn.data._dataset import InMemoryDataset

__all__ = ["as_dataset", "from_hf_dataset", "from_tf_dataset", "from_torch"]

_TARGET_COLUMNS = ("label", "labels", "target", "targets", "y")


def as_dataset(data: Any, seed: int | None = None) -> InMemoryDataset:
    """Return `data` as an InMemoryDataset (see the module docstring for accepted types).

    Parameters
    ----------
    data:
        The dataset, in any accepted form.
    seed:
        Batching seed of the returned dataset (ignored for an InMemoryDataset).

    Raises
    ------
    TypeError
        If `data` is of no accepted type.
    ValueError
        If its samples cannot be stacked into arrays.
    """
    if isinstance(data, InMemoryDataset):
        return data
    if _is_instance(data, "torch", "utils.data", ("Dataset", "DataLoader", "IterableDataset")):
        return from_torch(data, seed=seed)
    if _is_instance(data, "tensorflow", "data", ("Dataset",)):
        return from_tf_dataset(data, seed=seed)
    if _is_instance(data, "datasets", "", ("Dataset",)):
        return from_hf_dataset(data, seed=seed)
    if isinstance(data, tuple | list) and 1 <= len(data) <= 3:
        return _build([_numpy(part) for part in data], seed)
    if isinstance(data, np.ndarray):
        return InMemoryDataset(data, seed=seed)
    raise TypeError(
        "Training data must be an InMemoryDataset, a numpy (x, y[, s_wght]) tuple, a torch "
        "Dataset or DataLoader, a tf.data.Dataset or a Hugging Face datasets.Dataset, not "
        f"{type(data).__module__}.{type(data).__qualname__}."
    )


def from_torch(data: Any, seed: int | None = None) -> InMemoryDataset:
    """Load a torch Dataset (in index order) or DataLoader (one pass) into memory."""
    torch_data = sys.modules["torch"].utils.data
    if isinstance(data, torch_data.DataLoader):
        return _from_batches(iter(data), "DataLoader", seed)
    if isinstance(data, torch_data.IterableDataset) or not hasattr(data, "__len__"):
        return _from_samples(iter(data), "torch IterableDataset", seed)
    return _from_samples((data[i] for i in range(len(data))), "torch Dataset", seed)


def from_tf_dataset(
    data: Any, seed: int | None = None, batched: bool | None = None
) -> InMemoryDataset:
    """Load a `tf.data.Dataset` into memory (one pass).

    Parameters
    ----------
    data:
        Dataset of tensors or `(x, y[, s_wght])` tuples.
    seed:
        Batching seed of the returned dataset.
    batched:
        Whether elements are batches (concatenated) or samples (stacked).
        None guesses: batches if every component's first dimension is
        unknown (as `Dataset.batch` without `drop_remainder` gives).
    """
    if batched is None:
        specs = data.element_spec
        parts = specs if isinstance(specs, tuple | list) else (specs,)
        shapes = [spec.shape for spec in parts if hasattr(spec, "shape")]
        batched = bool(shapes) and all(shape.rank and shape[0] is None for shape in shapes)
    items = data.as_numpy_iterator()
    if batched:
        return _from_batches(items, "tf.data.Dataset", seed)
    return _from_samples(items, "tf.data.Dataset", seed)


def from_hf_dataset(
    data: Any,
    seed: int | None = None,
    *,
    features: str | Sequence[str] | None = None,
    target: str | None = None,
    s_wght: str | None = None,
) -> InMemoryDataset:
    """Load a Hugging Face `datasets.Dataset` (e.g. a flwr-datasets partition) into memory.

    Columns are read in numpy format (images are decoded into arrays).

    Parameters
    ----------
    data:
        The dataset.
    seed:
        Batching seed of the returned dataset.
    features:
        Input column(s); several are stacked along a last axis (tabular data).
        Default: every column but the target and weights columns.
    target:
        Target column; default: the first of "label", "labels", "target",
        "targets", "y" present (none: no target).
    s_wght:
        Optional sample-weights column.
    """
    columns = list(data.column_names)
    if target is None:
        target = next((name for name in _TARGET_COLUMNS if name in columns), None)
    if isinstance(features, str):
        features = [features]
    if features is None:
        features = [name for name in columns if name not in (target, s_wght)]
    unknown = [name for name in (*features, target, s_wght) if name and name not in columns]
    if unknown or not features:
        raise ValueError(
            f"Cannot use columns {unknown or features!r} of a datasets.Dataset with columns "
            f"{columns}."
        )
    table = data.with_format("numpy")[:]
    if len(features) == 1:
        inputs = np.asarray(table[features[0]])
    else:
        inputs = np.stack([np.asarray(table[name]) for name in features], axis=-1)
    return InMemoryDataset(
        inputs,
        None if target is None else np.asarray(table[target]),
        None if s_wght is None else np.asarray(table[s_wght]),
        seed=seed,
    )


def _is_instance(data: Any, package: str, submodule: str, names: tuple[str, ...]) -> bool:
    """Whether `data` is an instance of `package.submodule.<name>`, if `package` is imported."""
    module = sys.modules.get(package)
    if module is None:
        return False
    for part in filter(None, submodule.split(".")):
        module = getattr(module, part, None)
        if module is None:
            return False
    classes = tuple(cls for cls in (getattr(module, n, None) for n in names) if cls is not None)
    return bool(classes) and isinstance(data, classes)


def _build(arrays: Sequence[np.ndarray | None], seed: int | None) -> InMemoryDataset:
    data, target, s_wght = (*arrays, None, None)[:3]
    return InMemoryDataset(data, target, s_wght, seed=seed)


def _numpy(value: Any) -> np.ndarray | None:
    """Convert an array-like (numpy, torch, tensorflow, jax) to numpy; keep None."""
    if value is None:
        return None
    if hasattr(value, "detach"):  # torch tensors
        return value.detach().cpu().numpy()  # type: ignore[no-any-return]
    if hasattr(value, "numpy") and not isinstance(value, np.ndarray):  # tensorflow
        return np.asarray(value.numpy())
    return np.asarray(value)


def _parts(item: Any) -> tuple[Any, ...]:
    parts = tuple(item) if isinstance(item, tuple | list) else (item,)
    if not 1 <= len(parts) <= 3:
        raise ValueError(
            f"Dataset items must be x or (x, y[, s_wght]) tuples, not {len(parts)}-tuples."
        )
    return parts


def _collect(items: Iterable[Any], source: str) -> list[list[np.ndarray]]:
    columns: list[list[np.ndarray]] | None = None
    for item in items:
        parts = _parts(item)
        if columns is None:
            columns = [[] for _ in parts]
        if len(parts) != len(columns):
            raise ValueError(f"{source} items have varying lengths ({len(columns)}, {len(parts)}).")
        for column, part in zip(columns, parts, strict=True):
            column.append(_numpy(part))  # type: ignore[arg-type]
    if not columns:
        raise ValueError(f"The {source} holds no sample.")
    return columns


def _from_samples(items: Iterable[Any], source: str, seed: int | None) -> InMemoryDataset:
    try:
        arrays = [np.stack(column) for column in _collect(items, source)]
    except ValueError as exc:
        raise ValueError(f"Cannot stack the samples of a {source}: {exc}") from exc
    return _build(arrays, seed)


def _from_batches(items: Iterable[Any], source: str, seed: int | None) -> InMemoryDataset:
    try:
        arrays = [np.concatenate(column) for column in _collect(items, source)]
    except ValueError as exc:
        raise ValueError(f"Cannot concatenate the batches of a {source}: {exc}") from exc
    return _build(arrays, seed)

"""Turn the datasets Flower users hold into `InMemoryDataset`s, importing no framework.

`as_dataset` accepts:

- an `InMemoryDataset` (returned as is, or as a copy with the given seed);
- numpy-like `(x, y)` or `(x, y, s_wght)` tuples (or a single array `x`);
- a torch `Dataset` (map-style or iterable) whose items are tensors,
  `(x, y[, s_wght])` tuples or dicts, or a torch `DataLoader` (iterated once)
  of such batches; a Hugging Face dataset in torch format gives dicts such as
  `{"img": ..., "label": ...}`;
- a `tf.data.Dataset` of tensors, `(x, y[, s_wght])` tuples or dicts, per
  sample or batched (see `from_tf_dataset`);
- a Hugging Face `datasets.Dataset`, as flwr-datasets partitioners return
  (see `from_hf_dataset`).

Dict items and Hugging Face columns are read the same way, by the
`features`, `target` and `s_wght` keys that `Columns` documents (the
target defaults to a "label"-like key, the features to every other key).

Samples keep their order. A shuffling DataLoader is iterated once, so its
order is the one drawn then; batching and shuffling during training follow
the server's `TrainingConfig` and the dataset's `seed`, not the loader's
settings.
"""

from __future__ import annotations

import copy
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TypedDict, Unpack

import numpy as np

from flwr_declearn.data._dataset import InMemoryDataset

__all__ = ["as_dataset", "from_hf_dataset", "from_tf_dataset", "from_torch"]

_TARGET_COLUMNS = ("label", "labels", "target", "targets", "y")


class Columns(TypedDict, total=False):
    """Keyword options of the adapters naming the keys of dict items / columns of a table.

    Attributes
    ----------
    features:
        Input key(s); several are stacked along a last axis (tabular data).
        Default: every key but the target and weights keys.
    target:
        Target key; default: the first of "label", "labels", "target",
        "targets", "y" present (none: no target).
    s_wght:
        Optional sample-weights key (default: none).
    """

    features: str | Sequence[str] | None
    target: str | None
    s_wght: str | None


def as_dataset(
    data: Any,
    seed: int | None = None,
    **columns: Unpack[Columns],
) -> InMemoryDataset:
    """Return `data` as an InMemoryDataset (see the module docstring for accepted types).

    Parameters
    ----------
    data:
        The dataset, in any accepted form.
    seed:
        Batching (shuffling) seed of the returned dataset. For an
        InMemoryDataset, None returns it as is and a seed returns a copy
        shuffling with that seed.
    **columns:
        `features`, `target`, `s_wght`: keys of dict items / names of
        columns (see `Columns`).

    Raises
    ------
    TypeError
        If `data` is of no accepted type.
    ValueError
        If its samples cannot be stacked into arrays, or keys are missing.
    """
    keys = _Keys(**columns)
    if isinstance(data, InMemoryDataset):
        return data if seed is None else _reseeded(data, seed)
    if _is_instance(data, "torch", "utils.data", ("Dataset", "DataLoader", "IterableDataset")):
        return _from_torch(data, seed, keys)
    if _is_instance(data, "tensorflow", "data", ("Dataset",)):
        return _from_tf(data, seed, None, keys)
    if _is_instance(data, "datasets", "", ("Dataset",)):
        return from_hf_dataset(data, seed, **columns)
    if isinstance(data, tuple | list) and 1 <= len(data) <= 3:
        return _build([_numpy(part) for part in data], seed)
    if isinstance(data, np.ndarray):
        return InMemoryDataset(data, seed=seed)
    raise TypeError(
        "Training data must be an InMemoryDataset, a numpy (x, y[, s_wght]) tuple, a torch "
        "Dataset or DataLoader, a tf.data.Dataset or a Hugging Face datasets.Dataset, not "
        f"{type(data).__module__}.{type(data).__qualname__}."
    )


def from_torch(
    data: Any,
    seed: int | None = None,
    **columns: Unpack[Columns],
) -> InMemoryDataset:
    """Load a torch Dataset (in index order) or DataLoader (one pass) into memory.

    `columns` name the keys of dict items (see `as_dataset` and `Columns`).
    """
    return _from_torch(data, seed, _Keys(**columns))


def _from_torch(data: Any, seed: int | None, keys: _Keys) -> InMemoryDataset:
    torch_data = sys.modules["torch"].utils.data
    if isinstance(data, torch_data.DataLoader):
        return _load(iter(data), "DataLoader", seed, keys, np.concatenate)
    if isinstance(data, torch_data.IterableDataset) or not hasattr(data, "__len__"):
        return _load(iter(data), "torch IterableDataset", seed, keys, np.stack)
    return _load((data[i] for i in range(len(data))), "torch Dataset", seed, keys, np.stack)


def from_tf_dataset(
    data: Any,
    seed: int | None = None,
    batched: bool | None = None,
    **columns: Unpack[Columns],
) -> InMemoryDataset:
    """Load a `tf.data.Dataset` into memory (one pass).

    Parameters
    ----------
    data:
        Dataset of tensors, `(x, y[, s_wght])` tuples or dicts.
    seed:
        Batching seed of the returned dataset.
    batched:
        Whether elements are batches (concatenated) or samples (stacked).
        None guesses: batches if every component's first dimension is
        unknown (as `Dataset.batch` without `drop_remainder` gives).
    **columns:
        Keys of dict elements (see `Columns`).
    """
    return _from_tf(data, seed, batched, _Keys(**columns))


def _from_tf(data: Any, seed: int | None, batched: bool | None, keys: _Keys) -> InMemoryDataset:
    if batched is None:
        specs = data.element_spec
        if isinstance(specs, Mapping):
            specs = list(specs.values())
        parts = specs if isinstance(specs, tuple | list) else (specs,)
        shapes = [spec.shape for spec in parts if hasattr(spec, "shape")]
        batched = bool(shapes) and all(shape.rank and shape[0] is None for shape in shapes)
    combine = np.concatenate if batched else np.stack
    return _load(data.as_numpy_iterator(), "tf.data.Dataset", seed, keys, combine)


def from_hf_dataset(
    data: Any,
    seed: int | None = None,
    **columns: Unpack[Columns],
) -> InMemoryDataset:
    """Load a Hugging Face `datasets.Dataset` (e.g. a flwr-datasets partition) into memory.

    Columns are read in numpy format (images are decoded into arrays); a
    dataset with a transform (`with_transform`) is read through it.

    `seed` is the batching seed of the returned dataset; `columns` name the
    input, target and sample-weights columns (see `Columns`).
    """
    keys = _Keys(**columns)
    if data.format.get("type") == "custom":  # with_transform: read through the transform
        table = data[:]
    else:
        table = data.with_format("numpy")[:]
    return _build(keys.split(table, "datasets.Dataset", list(data.column_names)), seed)


class _Keys:
    """Which keys of a dict item (or columns of a table) are the features, target and weights."""

    def __init__(self, **columns: Unpack[Columns]) -> None:
        unknown = set(columns) - set(Columns.__annotations__)
        if unknown:
            raise TypeError(
                f"Unknown column option(s) {sorted(unknown)}; use {list(Columns.__annotations__)}."
            )
        features = columns.get("features")
        self.features = [features] if isinstance(features, str) else features
        self.target = columns.get("target")
        self.s_wght = columns.get("s_wght")

    def split(
        self, item: Mapping[str, Any], source: str, names: Sequence[str] | None = None
    ) -> list[np.ndarray | None]:
        """Return `[x, y, s_wght]` of a dict item, several features stacked on a last axis."""
        names = list(item) if names is None else names
        target = self.target
        if target is None:
            target = next((name for name in _TARGET_COLUMNS if name in names), None)
        features = self.features
        if features is None:
            features = [name for name in names if name not in (target, self.s_wght)]
        unknown = [key for key in (*features, target, self.s_wght) if key and key not in names]
        if unknown or not features:
            raise ValueError(
                f"Cannot use keys {unknown or features!r} of a {source} with keys {names}; "
                "name them with `features`, `target` and `s_wght` (see flwr_declearn.data."
                "as_dataset)."
            )
        inputs = [_numpy(item[key]) for key in features]
        x = inputs[0] if len(inputs) == 1 else np.stack(inputs, axis=-1)  # type: ignore[arg-type]
        return [x, *(None if key is None else _numpy(item[key]) for key in (target, self.s_wght))]


def _reseeded(data: InMemoryDataset, seed: int) -> InMemoryDataset:
    """A shallow copy of `data` shuffling with `seed` (the arrays are shared)."""
    clone = copy.copy(data)
    clone.seed = seed
    clone._rng = np.random.default_rng(seed)
    return clone


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
    if isinstance(value, list) and value and hasattr(value[0], "detach"):  # lists of tensors
        return np.stack([_numpy(part) for part in value])  # type: ignore[misc]
    return np.asarray(value)


def _parts(item: Any, source: str, keys: _Keys) -> list[Any]:
    if isinstance(item, Mapping):
        return [part for part in keys.split(item, source) if part is not None]
    parts = list(item) if isinstance(item, tuple | list) else [item]
    if not 1 <= len(parts) <= 3:
        raise ValueError(
            f"{source} items must be x, (x, y[, s_wght]) tuples or dicts, not {len(parts)}-tuples."
        )
    return [_numpy(part) for part in parts]


def _load(
    items: Iterable[Any],
    source: str,
    seed: int | None,
    keys: _Keys,
    combine: Callable[[list[np.ndarray]], np.ndarray],
) -> InMemoryDataset:
    """Collect samples (`combine=np.stack`) or batches (`np.concatenate`) into a dataset."""
    columns: list[list[np.ndarray]] | None = None
    for item in items:
        parts = _parts(item, source, keys)
        if columns is None:
            columns = [[] for _ in parts]
        if len(parts) != len(columns):
            raise ValueError(f"{source} items have varying lengths ({len(columns)}, {len(parts)}).")
        for column, part in zip(columns, parts, strict=True):
            column.append(part)
    if not columns:
        raise ValueError(f"The {source} holds no sample.")
    try:
        arrays = [combine(column) for column in columns]
    except ValueError as exc:
        what = "stack the samples" if combine is np.stack else "concatenate the batches"
        raise ValueError(f"Cannot {what} of a {source}: {exc}") from exc
    return _build(arrays, seed)

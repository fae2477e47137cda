"""Save and load an InMemoryDataset's arrays (numpy, scipy sparse, pandas); never pickled."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

__all__ = ["is_pandas", "is_sparse", "load_data_array", "save_data_array"]


def is_pandas(value: Any) -> bool:
    """Whether `value` is a pandas DataFrame or Series (without importing pandas)."""
    return type(value).__module__.split(".", 1)[0] == "pandas" and hasattr(value, "to_numpy")


def is_sparse(value: Any) -> bool:
    """Whether `value` is a scipy sparse matrix or array (without importing scipy)."""
    if not type(value).__module__.startswith("scipy.sparse"):
        return False
    import scipy.sparse

    return bool(scipy.sparse.issparse(value))


def save_data_array(path: str | os.PathLike[str], array: Any) -> str:
    """Save a data array to `path` plus the extension of its format; return that file's path.

    pandas objects go to ".csv", scipy sparse matrices to ".npz"
    (`scipy.sparse.save_npz`), numpy arrays to ".npy".

    Raises
    ------
    TypeError
        If `array` is none of these.
    """
    path = os.fspath(path)
    if is_pandas(array):
        path += ".csv"
        array.to_csv(path, index=False)
    elif is_sparse(array):
        import scipy.sparse

        path += ".npz"
        scipy.sparse.save_npz(path, array, compressed=False)
    elif isinstance(array, np.ndarray):
        if array.dtype.hasobject:
            raise TypeError("Object arrays cannot be saved (they would need pickling).")
        path += ".npy"
        np.save(path, array, allow_pickle=False)
    else:
        raise TypeError(f"Cannot save data of type {type(array).__qualname__}.")
    return path


def load_data_array(path: str | os.PathLike[str]) -> Any:
    """Load a data array saved by `save_data_array` (or any ".csv" / ".npy" / sparse ".npz").

    A one-column ".csv" file loads as a pandas Series, others as a DataFrame.

    Raises
    ------
    ValueError
        If the file extension is not a supported format.
    """
    path = os.fspath(path)
    ext = os.path.splitext(path)[1].lower()
    if ext == ".csv":
        import pandas as pd

        frame = pd.read_csv(path)
        return frame.iloc[:, 0] if frame.shape[1] == 1 else frame
    if ext == ".npy":
        return np.load(path, allow_pickle=False)
    if ext == ".npz":
        import scipy.sparse

        return scipy.sparse.load_npz(path)
    raise ValueError(f"Unsupported data file format '{ext}' ({path}): use .csv, .npy or .npz.")

"""Pickling and batch helpers shared by the framework-specific Model classes.

(Checks of weights and updates live in the `Model` base class.)"""

from __future__ import annotations

import pickle
from typing import Any

__all__ = ["dump_pickle_hex", "load_pickle_hex", "require_pickle_permission", "split_batch"]


def dump_pickle_hex(obj: Any, what: str) -> str:
    """Pickle `obj` into a hex string (for local persistence only).

    Raises
    ------
    TypeError
        If `obj` cannot be pickled (e.g. a lambda or a locally defined function).
    """
    try:
        return pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL).hex()
    except (pickle.PicklingError, AttributeError, TypeError) as exc:
        raise TypeError(
            f"Cannot serialize the {what} with pickle ({exc}); define it at module level "
            "so that it is importable."
        ) from exc


def require_pickle_permission(what: str, allow_pickle: bool) -> None:
    """Refuse to unpickle unless the caller passed `allow_pickle=True`.

    Raises
    ------
    ValueError
        If `allow_pickle` is False: unpickling runs arbitrary code, so it must be
        an explicit choice, made for trusted, locally stored configs only.
    """
    if not allow_pickle:
        raise ValueError(
            f"This config describes the {what} with pickle, which can run arbitrary code "
            "when loaded. Pass `allow_pickle=True` to `from_config` only for a config "
            "you stored yourself; never for one received over the network."
        )


def load_pickle_hex(data: str, what: str, allow_pickle: bool) -> Any:
    """Unpickle a hex string made by `dump_pickle_hex`, only if `allow_pickle`.

    Raises
    ------
    ValueError
        If `allow_pickle` is False (see `require_pickle_permission`).
    """
    require_pickle_permission(what, allow_pickle)
    return pickle.loads(bytes.fromhex(data))


def split_batch(batch: Any) -> tuple[Any, Any, Any]:
    """Return `(inputs, y_true, s_wght)` from a batch, or raise a TypeError saying what it needs."""
    if not isinstance(batch, tuple | list) or len(batch) != 3:
        raise TypeError(
            "A batch must be an (inputs, y_true, s_wght) tuple (y_true and s_wght may be "
            f"None), not {type(batch).__name__}"
            + (f" of length {len(batch)}." if isinstance(batch, tuple | list) else ".")
        )
    return batch[0], batch[1], batch[2]

"""Merge client-wise `data_info` dicts into the specs a Model is initialized with."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

__all__ = ["aggregate_data_info"]


def _sum_ints(field: str, values: Sequence[Any]) -> int:
    for val in values:
        if not isinstance(val, int) or isinstance(val, bool) or val < 0:
            raise ValueError(f"data_info field '{field}' must be a non-negative int, not {val!r}.")
    return int(sum(values))


def _union(field: str, values: Sequence[Any]) -> list[Any]:
    merged: set[Any] = set()
    for val in values:
        if not isinstance(val, list | tuple | set):
            raise ValueError(f"data_info field '{field}' must be a list of labels, not {val!r}.")
        merged.update(val)
    return sorted(merged)


def _all_equal(field: str, values: Sequence[Any]) -> Any:
    first = values[0]
    norm = [list(v) if isinstance(v, tuple) else v for v in values]
    if any(v != norm[0] for v in norm[1:]):
        raise ValueError(f"data_info field '{field}' differs across clients: {values!r}.")
    return list(first) if isinstance(first, tuple) else first


_MERGERS: dict[str, Callable[[str, Sequence[Any]], Any]] = {
    "n_samples": _sum_ints,
    "classes": _union,
    "features_shape": _all_equal,
    "data_type": _all_equal,
}


def aggregate_data_info(
    infos: Iterable[dict[str, Any]],
    required: set[str] | None = None,
) -> dict[str, Any]:
    """Merge client-wise `data_info` dicts.

    `n_samples` are summed, `classes` united, and every other field
    (`features_shape`, `data_type`, unknown ones) must agree.

    Parameters
    ----------
    infos:
        Client-wise data_info dicts.
    required:
        Fields that must be present in every dict; the output is restricted
        to them when given.

    Raises
    ------
    KeyError
        If a required field is missing from some dict.
    ValueError
        If a field's values are inconsistent or ill-typed.
    """
    infos = list(infos)
    if not infos:
        raise ValueError("aggregate_data_info needs at least one data_info dict.")
    fields = set(required) if required is not None else set().union(*infos)
    missing = {f: i for i, info in enumerate(infos) for f in fields if f not in info}
    if missing:
        raise KeyError(
            "Missing required data_info fields: "
            + ", ".join(f"'{f}' (in dict #{i})" for f, i in sorted(missing.items()))
        )
    return {
        field: _MERGERS.get(field, _all_equal)(field, [info[field] for info in infos])
        for field in sorted(fields)
    }

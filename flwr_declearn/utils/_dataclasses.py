"""Build a dataclass from a received mapping, rejecting unknown fields."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

__all__ = ["dataclass_from_mapping"]

T = TypeVar("T")


def dataclass_from_mapping(
    cls: type[T], config: Mapping[str, Any], ignore: Iterable[str] = ()
) -> T:
    """Return `cls(**config)`, after checking that `config` names only fields of `cls`.

    Keys in `ignore` are accepted and dropped (e.g. another library's
    bookkeeping entries); the dataclass' own checks (`__post_init__`) then
    validate the values.

    Raises
    ------
    ValueError
        If `config` is not a mapping or holds keys that are neither fields
        of `cls` nor in `ignore`.
    """
    if not isinstance(config, Mapping):
        raise ValueError(f"{cls.__name__} must be built from a dict, not {type(config).__name__}.")
    fields = {field.name for field in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(config) - fields - set(ignore))
    if unknown:
        raise ValueError(f"Unknown {cls.__name__} field(s) {unknown}; known: {sorted(fields)}.")
    return cls(**{key: value for key, value in config.items() if key in fields})

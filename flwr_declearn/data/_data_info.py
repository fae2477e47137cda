"""`data_info` fields: what clients may tell about their data, and how the server merges it.

Each known field is a `DataInfoField` subclass, registered under its `field`
name (registry group "DataInfoField"), that validates one client's value
and combines all clients' values. `aggregate_data_info` merges client-wise
dicts field by field; fields nobody registered are kept as the list of the
clients' values, with a warning.
"""

from __future__ import annotations

import warnings
from abc import ABCMeta, abstractmethod
from collections.abc import Iterable
from typing import Any, ClassVar

import numpy as np

from flwr_declearn.utils import (
    access_types_mapping,
    create_types_registry,
    register_from_attr,
)

__all__ = [
    "ClassesField",
    "DataInfoField",
    "DataTypeField",
    "FeaturesShapeField",
    "NbSamplesField",
    "aggregate_data_info",
    "get_data_info_fields_documentation",
    "register_data_info_field",
]


@create_types_registry(name="DataInfoField")
class DataInfoField(metaclass=ABCMeta):
    """One `data_info` field: its name, valid values, and how clients' values combine."""

    field: ClassVar[str]
    """Name of the field in `data_info` dicts."""
    types: ClassVar[tuple[type, ...]]
    """Types a valid value may have."""
    doc: ClassVar[str]
    """One-line description of the field."""

    @classmethod
    def is_valid(cls, value: Any) -> bool:
        """Whether `value` is a valid value for this field."""
        return isinstance(value, cls.types)

    @classmethod
    def _check(cls, values: tuple[Any, ...]) -> None:
        bad = [v for v in values if not cls.is_valid(v)]
        if bad:
            raise ValueError(
                f"data_info field '{cls.field}' got invalid values {bad!r} (expected: {cls.doc})"
            )

    @classmethod
    @abstractmethod
    def combine(cls, *values: Any) -> Any:
        """Combine clients' values of this field into one.

        Raises
        ------
        ValueError
            If a value is invalid, or the values are incompatible.
        """


def register_data_info_field(cls: type[DataInfoField]) -> type[DataInfoField]:
    """Register a DataInfoField subclass under its `field` name (usable as a decorator).

    Raises
    ------
    TypeError
        If `cls` is not a DataInfoField subclass.
    KeyError
        If its `field` name is already registered.
    """
    if not (isinstance(cls, type) and issubclass(cls, DataInfoField)):
        raise TypeError(f"{cls!r} is not a DataInfoField subclass.")
    return register_from_attr(cls, "field", group="DataInfoField")


def get_data_info_fields_documentation() -> dict[str, str]:
    """Return `{field name: description}` for every registered data_info field."""
    return {name: cls.doc for name, cls in _fields().items()}


def _fields() -> dict[str, type[DataInfoField]]:
    return access_types_mapping("DataInfoField")  # type: ignore[return-value]


@register_data_info_field
class NbSamplesField(DataInfoField):
    """`n_samples`: number of samples; summed across clients."""

    field = "n_samples"
    types = (int,)
    doc = "Number of samples in the dataset, a non-negative int."

    @classmethod
    def is_valid(cls, value: Any) -> bool:
        return value is not None and _is_dim(value)

    @classmethod
    def combine(cls, *values: Any) -> int:
        cls._check(values)
        return int(sum(values))


@register_data_info_field
class ClassesField(DataInfoField):
    """`classes`: labels present in the dataset; united across clients."""

    field = "classes"
    types = (list, set, tuple, np.ndarray)
    doc = "Set of classification target labels in the dataset."

    @classmethod
    def is_valid(cls, value: Any) -> bool:
        if isinstance(value, np.ndarray):
            return bool(value.ndim == 1)
        return isinstance(value, list | set | tuple)

    @classmethod
    def combine(cls, *values: Any) -> set[Any]:
        cls._check(values)
        merged: set[Any] = set()
        for value in values:
            merged.update(value.tolist() if isinstance(value, np.ndarray) else value)
        return merged


def _is_dim(dim: Any) -> bool:
    if dim is None:
        return True
    return isinstance(dim, int | np.integer) and not isinstance(dim, bool) and bool(dim >= 0)


@register_data_info_field
class FeaturesShapeField(DataInfoField):
    """`features_shape`: shape of one sample's features (None for a variable size); shared."""

    field = "features_shape"
    types = (list, tuple)
    doc = "Shape of one sample's input features (None marks a variable dimension)."

    @classmethod
    def is_valid(cls, value: Any) -> bool:
        return isinstance(value, list | tuple) and all(_is_dim(dim) for dim in value)

    @classmethod
    def combine(cls, *values: Any) -> tuple[int | None, ...]:
        cls._check(values)
        shapes = {tuple(None if d is None else int(d) for d in v) for v in values}
        if len(shapes) != 1:
            raise ValueError(f"data_info field 'features_shape' differs across clients: {values}.")
        return shapes.pop()


@register_data_info_field
class DataTypeField(DataInfoField):
    """`data_type`: numpy dtype name of the input features; shared."""

    field = "data_type"
    types = (str,)
    doc = "Name of the numpy dtype of the input features."

    @classmethod
    def is_valid(cls, value: Any) -> bool:
        if not isinstance(value, str):
            return False
        try:
            np.dtype(value)
        except TypeError:
            return False
        return True

    @classmethod
    def combine(cls, *values: Any) -> str:
        cls._check(values)
        if len(set(values)) != 1:
            raise ValueError(f"data_info field 'data_type' differs across clients: {values}.")
        return str(values[0])


def aggregate_data_info(
    clients_data_info: Iterable[dict[str, Any]],
    required_fields: set[str] | None = None,
) -> dict[str, Any]:
    """Merge client-wise `data_info` dicts, field by field.

    Registered fields combine as their `DataInfoField` says (`n_samples`
    summed, `classes` united into a set, `features_shape` (a tuple) and
    `data_type` shared). A field nobody registered is kept as the list of
    the clients' values, with a warning.

    Parameters
    ----------
    clients_data_info:
        Client-wise data_info dicts.
    required_fields:
        Fields that must be present in every dict; the output is restricted
        to them when given.

    Raises
    ------
    KeyError
        If a required field is missing from some dict.
    ValueError
        If a field's values are invalid or incompatible.
    """
    infos = list(clients_data_info)
    if not infos:
        raise ValueError("aggregate_data_info needs at least one data_info dict.")
    if required_fields is None:
        fields = sorted(set().union(*infos))
    else:
        fields = sorted(required_fields)
        missing = {f: i for i, info in enumerate(infos) for f in fields if f not in info}
        if missing:
            raise KeyError(
                "Missing required data_info fields: "
                + ", ".join(f"'{f}' (in dict #{i})" for f, i in sorted(missing.items()))
            )
    known = _fields()
    unknown = [f for f in fields if f not in known]
    if unknown:
        warnings.warn(
            f"Unknown data_info fields {unknown}: kept as the list of the clients' values.",
            UserWarning,
            stacklevel=2,
        )
    merged: dict[str, Any] = {}
    for field in fields:
        values = [info[field] for info in infos if field in info]
        merged[field] = known[field].combine(*values) if field in known else values
    return merged

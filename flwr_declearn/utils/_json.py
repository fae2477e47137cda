"""JSON encoding of states and aux-vars that hold numpy arrays and Vectors (never pickle)."""

from __future__ import annotations

import base64
import json
from typing import Any

import numpy as np

__all__ = ["from_jsonable", "json_dumps", "json_loads", "to_jsonable"]

_ARRAY = "__ndarray__"
_VECTOR = "__vector__"
_SCALAR = "__npscalar__"
_TUPLE = "__tuple__"


def _encode_array(array: np.ndarray) -> dict[str, Any]:
    if array.dtype.hasobject:
        raise TypeError("Object arrays cannot be serialized.")
    return {
        "dtype": array.dtype.str,
        "shape": list(array.shape),
        "data": base64.b64encode(array.tobytes(order="C")).decode("ascii"),
    }


def _decode_array(spec: dict[str, Any]) -> np.ndarray:
    dtype = np.dtype(spec["dtype"])
    if dtype.hasobject:
        raise TypeError("Object arrays cannot be deserialized.")
    raw = base64.b64decode(spec["data"])
    return np.frombuffer(bytearray(raw), dtype=dtype).reshape(spec["shape"])


def to_jsonable(obj: Any) -> Any:
    """Turn a structure holding Vectors, numpy arrays and scalars into JSON-able data."""
    from flwr_declearn.model.api._vector import Vector

    if isinstance(obj, Vector):
        packed = obj.pack()
        return {
            _VECTOR: type(obj).__name__,
            "coefs": {k: _encode_array(v) for k, v in packed.items()},
        }
    if isinstance(obj, np.ndarray):
        return {_ARRAY: _encode_array(obj)}
    if isinstance(obj, np.generic):
        return {_SCALAR: _encode_array(np.asarray(obj))}
    if isinstance(obj, dict):
        for key in obj:
            if not isinstance(key, str):
                raise TypeError(f"Only str keys can be serialized, not {key!r}.")
        return {k: to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, tuple):
        return {_TUPLE: [to_jsonable(v) for v in obj]}
    if isinstance(obj, list):
        return [to_jsonable(v) for v in obj]
    if obj is None or isinstance(obj, bool | int | float | str):
        return obj
    raise TypeError(f"Cannot serialize object of type {type(obj).__qualname__}.")


def from_jsonable(obj: Any) -> Any:
    """Invert `to_jsonable`."""
    if isinstance(obj, dict):
        if _VECTOR in obj:
            from flwr_declearn.model.api._vector import load_vector_type

            cls = load_vector_type(obj[_VECTOR])
            return cls.unpack({k: _decode_array(v) for k, v in obj["coefs"].items()})
        if _ARRAY in obj:
            return _decode_array(obj[_ARRAY])
        if _SCALAR in obj:
            return _decode_array(obj[_SCALAR])[()]
        if _TUPLE in obj:
            return tuple(from_jsonable(v) for v in obj[_TUPLE])
        return {k: from_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [from_jsonable(v) for v in obj]
    return obj


def json_dumps(obj: Any, **kwargs: Any) -> str:
    """Serialize a structure holding Vectors and numpy arrays to a JSON string."""
    return json.dumps(to_jsonable(obj), **kwargs)


def json_loads(string: str | bytes) -> Any:
    """Deserialize a string produced by `json_dumps`."""
    return from_jsonable(json.loads(string))

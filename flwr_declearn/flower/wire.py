"""The wire format of flwr_declearn: every structured value that crosses the network.

Structured payloads (auxiliary variables, optimizer and training configs,
client optimizer states kept in `context.state`) travel as `bytes` values in
Flower configs, metrics and ConfigRecords. They are encoded with a versioned
protobuf schema, built at import time from a `FileDescriptorProto` (no
generated code, no pickle):

```
message Array   { string name = 1; string dtype = 2; repeated uint64 shape = 3; bytes data = 4; }
message Vector  { repeated Array arrays = 1; }
message List    { repeated Value items = 1; }
message Dict    { repeated string keys = 1; repeated Value values = 2; }
message Null    { }
message Value   { oneof kind { Null none = 1; bool bool = 2; sint64 int = 3; double float = 4;
                               string str = 5; bytes bytes = 6; Array array = 7;
                               Array np_scalar = 8; Vector vector = 9; List list = 10;
                               List tuple = 11; Dict dict = 12; } }
message Payload { uint32 version = 1; Value root = 2; }
```

Arrays travel as little-endian raw bytes with their dtype name and shape;
only boolean, integer and floating dtypes are allowed. Decoding validates
everything and raises a `ValueError` naming the offending value's path.
Vectors are decoded into a Vector type chosen by the receiver (e.g. a torch
client decodes into `TorchVector`; the server works on `NumpyVector`).

(The `KEY_*` names are re-exported from `protocol`, where every key is defined;
they are not part of `__all__`.)

Model weights travel as Flower NDArrays in a fixed order: sorted weight names
(see `weight_names`, `vector_to_ndarrays` and `ndarrays_to_vector`).
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.message import DecodeError, Message

from flwr_declearn.flower.protocol import (  # noqa: F401 (re-exported, see above)
    KEY_AUX_VAR,
    KEY_CONFIG_ID,
    KEY_EVAL_CONFIG,
    KEY_OPTIMIZER,
    KEY_ROUND,
    KEY_TRAIN_CONFIG,
)
from flwr_declearn.model.api import Vector, VectorSpecError
from flwr_declearn.model.numpy import NumpyVector

__all__ = [
    "ALLOWED_DTYPES",
    "MAX_DEPTH",
    "MAX_NDIM",
    "WIRE_VERSION",
    "WeightSpecs",
    "check_ndarrays",
    "decode",
    "decode_npy",
    "encode",
    "ndarrays_to_vector",
    "vector_specs",
    "vector_to_ndarrays",
    "weight_names",
]

WIRE_VERSION = 1
"""Version of the schema written by `encode`; `decode` only reads this version."""
SUPPORTED_VERSIONS = frozenset({1})

ALLOWED_DTYPES = frozenset(
    {
        "bool",
        "int8", "int16", "int32", "int64",
        "uint8", "uint16", "uint32", "uint64",
        "float16", "float32", "float64",
    }
)  # fmt: skip
"""Array dtypes that may travel on the wire (no object, string, complex or void dtypes)."""

MAX_DEPTH = 32
"""Maximum nesting depth of containers (lists, tuples, dicts) in a payload."""
MAX_NDIM = 32
"""Maximum number of dimensions of an array."""
MAX_PAYLOAD_BYTES = 2**31 - 1
"""Largest payload `decode` accepts (protobuf's own message size limit)."""

_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


# -- schema --------------------------------------------------------------------------------------

_PACKAGE = "flwr_declearn.wire.v1"
_F = descriptor_pb2.FieldDescriptorProto


def _build_schema() -> dict[str, type[Message]]:
    """Build the protobuf message classes of the schema (see module docstring)."""
    proto = descriptor_pb2.FileDescriptorProto(
        name="flwr_declearn/wire_v1.proto", package=_PACKAGE, syntax="proto3"
    )

    def message(name: str, *fields: tuple[str, int, int, str | None, bool], oneof: bool = False):
        msg = proto.message_type.add(name=name)
        if oneof:
            msg.oneof_decl.add(name="kind")
        for fname, number, ftype, type_name, repeated in fields:
            field = msg.field.add(
                name=fname,
                number=number,
                type=ftype,  # type: ignore[arg-type]
                label=_F.LABEL_REPEATED if repeated else _F.LABEL_OPTIONAL,
            )
            if type_name is not None:
                field.type_name = f".{_PACKAGE}.{type_name}"
            if oneof:
                field.oneof_index = 0
        return msg

    message(
        "Array",
        ("name", 1, _F.TYPE_STRING, None, False),
        ("dtype", 2, _F.TYPE_STRING, None, False),
        ("shape", 3, _F.TYPE_UINT64, None, True),
        ("data", 4, _F.TYPE_BYTES, None, False),
    )
    message("Vector", ("arrays", 1, _F.TYPE_MESSAGE, "Array", True))
    message("List", ("items", 1, _F.TYPE_MESSAGE, "Value", True))
    message(
        "Dict",
        ("keys", 1, _F.TYPE_STRING, None, True),
        ("values", 2, _F.TYPE_MESSAGE, "Value", True),
    )
    message("Null")
    message(
        "Value",
        ("none", 1, _F.TYPE_MESSAGE, "Null", False),
        ("bool", 2, _F.TYPE_BOOL, None, False),
        ("int", 3, _F.TYPE_SINT64, None, False),
        ("float", 4, _F.TYPE_DOUBLE, None, False),
        ("str", 5, _F.TYPE_STRING, None, False),
        ("bytes", 6, _F.TYPE_BYTES, None, False),
        ("array", 7, _F.TYPE_MESSAGE, "Array", False),
        ("np_scalar", 8, _F.TYPE_MESSAGE, "Array", False),
        ("vector", 9, _F.TYPE_MESSAGE, "Vector", False),
        ("list", 10, _F.TYPE_MESSAGE, "List", False),
        ("tuple", 11, _F.TYPE_MESSAGE, "List", False),
        ("dict", 12, _F.TYPE_MESSAGE, "Dict", False),
        oneof=True,
    )
    message(
        "Payload",
        ("version", 1, _F.TYPE_UINT32, None, False),
        ("root", 2, _F.TYPE_MESSAGE, "Value", False),
    )
    pool = descriptor_pool.DescriptorPool()  # private pool: no clash with other protos
    pool.Add(proto)
    return {
        msg.name: message_factory.GetMessageClass(
            pool.FindMessageTypeByName(f"{_PACKAGE}.{msg.name}")
        )
        for msg in proto.message_type
    }


_SCHEMA = _build_schema()
_Payload = _SCHEMA["Payload"]


# -- encoding ------------------------------------------------------------------------------------


def encode(obj: Any) -> bytes:
    """Serialize a structure of values to wire bytes.

    Supported values: None, bool, int (64-bit), float, str, bytes, numpy
    arrays and scalars of an allowed dtype, Vectors, and lists, tuples and
    str-keyed dicts of these (nested up to `MAX_DEPTH` levels).

    Raises
    ------
    TypeError
        If a value (or an array's dtype) cannot be encoded; the message names
        the value's path in `obj`.
    ValueError
        If an int is out of the 64-bit range or the nesting is too deep.
    """
    payload = _Payload(version=WIRE_VERSION)
    _encode_value(obj, payload.root, "root", 0)
    return bytes(payload.SerializeToString())


def _encode_value(obj: Any, out: Any, path: str, depth: int) -> None:
    if obj is None:
        out.none.SetInParent()
    elif isinstance(obj, np.generic):  # before python types: np.float64 subclasses float
        _encode_array(np.asarray(obj), out.np_scalar, path)
    elif isinstance(obj, bool):
        out.bool = obj
    elif isinstance(obj, int):
        if not _INT64_MIN <= obj <= _INT64_MAX:
            raise ValueError(f"Cannot encode {path}: int {obj} is out of the 64-bit range.")
        out.int = obj
    elif isinstance(obj, float):
        out.float = obj
    elif isinstance(obj, str):
        out.str = obj
    elif isinstance(obj, bytes | bytearray | memoryview):
        out.bytes = bytes(obj)
    elif isinstance(obj, np.ndarray):
        _encode_array(obj, out.array, path)
    elif isinstance(obj, Vector):
        vec = out.vector
        vec.SetInParent()
        for name, array in obj.pack().items():
            entry = vec.arrays.add(name=name)
            _encode_array(array, entry, f"{path}[{name!r}]")
    elif isinstance(obj, list | tuple | dict):
        if depth >= MAX_DEPTH:
            raise ValueError(f"Cannot encode {path}: nesting deeper than {MAX_DEPTH} levels.")
        if isinstance(obj, dict):
            dct = out.dict
            dct.SetInParent()
            for key, val in obj.items():
                if not isinstance(key, str):
                    raise TypeError(f"Cannot encode {path}: dict key {key!r} is not a str.")
                dct.keys.append(key)
                _encode_value(val, dct.values.add(), f"{path}[{key!r}]", depth + 1)
        else:
            seq = out.list if isinstance(obj, list) else out.tuple
            seq.SetInParent()
            for idx, val in enumerate(obj):
                _encode_value(val, seq.items.add(), f"{path}[{idx}]", depth + 1)
    else:
        raise TypeError(f"Cannot encode {path}: unsupported type {type(obj).__qualname__}.")


def _encode_array(array: np.ndarray, out: Any, path: str) -> None:
    name = array.dtype.name
    if name not in ALLOWED_DTYPES:
        raise TypeError(
            f"Cannot encode {path}: dtype '{array.dtype}' is not allowed on the wire "
            f"(allowed: {sorted(ALLOWED_DTYPES)})."
        )
    if array.ndim > MAX_NDIM:
        raise ValueError(f"Cannot encode {path}: more than {MAX_NDIM} dimensions.")
    little = array.dtype.newbyteorder("<")
    if array.dtype != little:
        array = array.astype(little)
    out.dtype = name
    out.shape.extend(array.shape)
    out.data = array.tobytes()


# -- decoding ------------------------------------------------------------------------------------


def decode(data: bytes, vector_type: type[Vector] = NumpyVector) -> Any:
    """Deserialize wire bytes produced by `encode`, validating everything.

    Parameters
    ----------
    data:
        Bytes received over the network.
    vector_type:
        Vector class into which encoded Vectors are unpacked (placed on its
        device per the global device policy).

    Returns
    -------
    The decoded structure. Decoded numpy arrays and scalars are read-only
    views of the received bytes where possible.

    Raises
    ------
    ValueError
        If the bytes are not a valid payload of a supported version, or any
        value is invalid (disallowed dtype, inconsistent shape and data size,
        duplicate or missing keys, too deep nesting...); the message names
        what was wrong and where.
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise ValueError(f"Wire payload must be bytes, not {type(data).__qualname__}.")
    if len(data) > MAX_PAYLOAD_BYTES:
        raise ValueError(f"Wire payload of {len(data)} bytes exceeds {MAX_PAYLOAD_BYTES}.")
    payload = _Payload()
    try:
        payload.ParseFromString(bytes(data))
    except (DecodeError, RuntimeError, ValueError) as exc:
        raise ValueError(f"Wire payload is not a valid flwr_declearn message: {exc}") from exc
    if payload.version not in SUPPORTED_VERSIONS:
        found = "missing" if payload.version == 0 else str(payload.version)
        raise ValueError(
            f"Unsupported wire payload version: {found}; this flwr_declearn reads "
            f"version(s) {sorted(SUPPORTED_VERSIONS)}."
        )
    if not payload.HasField("root"):
        raise ValueError("Wire payload has no root value.")
    return _decode_value(payload.root, "root", 0, vector_type)


def _decode_value(msg: Any, path: str, depth: int, vector_type: type[Vector]) -> Any:
    kind = msg.WhichOneof("kind")
    if kind is None:
        raise ValueError(f"Invalid wire payload: {path} holds no value.")
    if kind == "none":
        return None
    if kind in ("bool", "int", "float", "str", "bytes"):
        return getattr(msg, kind)
    if kind == "array":
        return _decode_array(msg.array, path)
    if kind == "np_scalar":
        array = _decode_array(msg.np_scalar, path)
        if array.ndim:
            raise ValueError(f"Invalid wire payload: numpy scalar {path} has a non-empty shape.")
        return array[()]
    if kind == "vector":
        return _decode_vector(msg.vector, path, vector_type)
    if depth >= MAX_DEPTH:
        raise ValueError(f"Invalid wire payload: {path} is nested deeper than {MAX_DEPTH} levels.")
    if kind == "dict":
        keys, values = msg.dict.keys, msg.dict.values
        if len(keys) != len(values):
            raise ValueError(
                f"Invalid wire payload: dict {path} has {len(keys)} keys but {len(values)} values."
            )
        out: dict[str, Any] = {}
        for key, val in zip(keys, values, strict=True):
            if key in out:
                raise ValueError(f"Invalid wire payload: dict {path} repeats key {key!r}.")
            out[key] = _decode_value(val, f"{path}[{key!r}]", depth + 1, vector_type)
        return out
    # list or tuple
    items = [
        _decode_value(val, f"{path}[{idx}]", depth + 1, vector_type)
        for idx, val in enumerate(getattr(msg, kind).items)
    ]
    return items if kind == "list" else tuple(items)


def _decode_array(msg: Any, path: str) -> np.ndarray:
    name = msg.dtype
    if name not in ALLOWED_DTYPES:
        raise ValueError(
            f"Invalid wire payload: array {path} has dtype {name!r}, which is not allowed "
            f"(allowed: {sorted(ALLOWED_DTYPES)})."
        )
    shape = tuple(int(dim) for dim in msg.shape)
    if len(shape) > MAX_NDIM:
        raise ValueError(
            f"Invalid wire payload: array {path} has {len(shape)} dimensions (at most {MAX_NDIM})."
        )
    dtype = np.dtype(name).newbyteorder("<")
    expected = math.prod(shape) * dtype.itemsize
    if expected != len(msg.data):
        raise ValueError(
            f"Invalid wire payload: array {path} of shape {list(shape)} and dtype {name} "
            f"needs {expected} bytes, but {len(msg.data)} were received."
        )
    try:
        return np.frombuffer(msg.data, dtype=dtype).reshape(shape)
    except ValueError as exc:  # e.g. a zero-size array with absurd dimensions
        raise ValueError(f"Invalid wire payload: array {path}: {exc}") from exc


def _decode_vector(msg: Any, path: str, vector_type: type[Vector]) -> Vector:
    coefs: dict[str, np.ndarray] = {}
    for entry in msg.arrays:
        name = entry.name
        if not name:
            raise ValueError(f"Invalid wire payload: vector {path} holds an unnamed array.")
        if name in coefs:
            raise ValueError(f"Invalid wire payload: vector {path} repeats array {name!r}.")
        coefs[name] = _decode_array(entry, f"{path}[{name!r}]")
    return vector_type.unpack(coefs)


# -- model weights as Flower NDArrays ------------------------------------------------------------

WeightSpecs = dict[str, tuple[tuple[int, ...], str]]
"""Weight name -> (shape, numpy dtype name)."""


def weight_names(weights: Vector | Mapping[str, Any]) -> list[str]:
    """Return the fixed order in which named weights travel as NDArrays: sorted names."""
    coefs = weights.coefs if isinstance(weights, Vector) else weights
    return sorted(coefs)


def vector_specs(weights: Vector) -> WeightSpecs:
    """Return the `{name: (shape, dtype)}` specs of a Vector's arrays."""
    shapes, dtypes = weights.shapes(), weights.dtypes()
    return {name: (tuple(shapes[name]), dtypes[name]) for name in weights.coefs}


def vector_to_ndarrays(weights: Vector, names: Sequence[str] | None = None) -> list[np.ndarray]:
    """Return a Vector's arrays as numpy arrays in wire order, without copying.

    Parameters
    ----------
    weights:
        Vector to convert (`pack()` is zero-copy for CPU torch tensors and numpy).
    names:
        Order of the arrays; defaults to `weight_names(weights)`.
    """
    packed = weights.pack()
    order = sorted(packed) if names is None else names
    return [packed[name] for name in order]


def check_ndarrays(arrays: Sequence[np.ndarray], specs: WeightSpecs) -> None:
    """Check that NDArrays in wire order match `specs` (count, shapes, dtypes).

    Raises
    ------
    ValueError
        Naming every mismatching weight.
    """
    names = sorted(specs)
    if len(arrays) != len(names):
        raise ValueError(f"Expected {len(names)} weight arrays, received {len(arrays)}.")
    bad = []
    for name, array in zip(names, arrays, strict=True):
        shape, dtype = specs[name]
        if not isinstance(array, np.ndarray):
            bad.append(f"'{name}': not a numpy array ({type(array).__qualname__})")
        elif tuple(array.shape) != tuple(shape) or array.dtype.name != dtype:
            bad.append(
                f"'{name}': expected {dtype}{list(shape)}, "
                f"received {array.dtype.name}{list(array.shape)}"
            )
    if bad:
        raise ValueError("Weight arrays do not match the model: " + "; ".join(bad) + ".")


def ndarrays_to_vector(
    arrays: Sequence[np.ndarray],
    specs: WeightSpecs,
    vector_type: type[Vector] = NumpyVector,
) -> Vector:
    """Turn NDArrays in wire order into a Vector, after checking them against `specs`.

    Arrays are wrapped without copies where the Vector type allows it (numpy,
    and torch for writeable CPU arrays).

    Raises
    ------
    ValueError
        If the arrays do not match `specs` (see `check_ndarrays`).
    """
    check_ndarrays(arrays, specs)
    return vector_type.unpack(dict(zip(sorted(specs), arrays, strict=True)))


def decode_npy(data: bytes, shape: Sequence[int], dtype: str, name: str = "array") -> np.ndarray:
    """Decode one array serialized by `numpy.save` (Flower's array format), checked against a spec.

    The `.npy` header is parsed and compared with the expected shape and
    dtype, and the payload size with what they need, BEFORE any memory is
    allocated; the array is then a read-only view of `data` (no copy).

    Parameters
    ----------
    data:
        The `.npy` bytes (a Flower `Parameters` tensor, or `Array.data`).
    shape, dtype:
        The expected shape and numpy dtype name.
    name:
        Name of the array, for error messages.

    Raises
    ------
    VectorSpecError
        If the header declares another shape or dtype.
    ValueError
        If the header is invalid, or the payload size does not match it.
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise ValueError(f"'{name}': array payload must be bytes, not {type(data).__qualname__}.")
    stream = io.BytesIO(data)
    try:
        version = np.lib.format.read_magic(stream)
        if version == (1, 0):
            header = np.lib.format.read_array_header_1_0(stream)
        elif version == (2, 0):
            header = np.lib.format.read_array_header_2_0(stream)
        else:
            raise ValueError(f"unsupported .npy version {version}")
    except (ValueError, SyntaxError, TypeError, OverflowError) as exc:
        raise ValueError(f"'{name}': invalid .npy array header: {exc}") from exc
    got_shape, fortran, got_dtype = header
    if got_dtype.name != dtype or tuple(got_shape) != tuple(shape) or got_dtype.hasobject:
        raise VectorSpecError(
            f"'{name}': expected {dtype}{list(shape)}, received {got_dtype.name}{list(got_shape)}"
        )
    offset = stream.tell()
    expected = math.prod(got_shape) * got_dtype.itemsize
    if len(data) - offset != expected:
        raise ValueError(
            f"'{name}': {dtype}{list(shape)} needs {expected} bytes, "
            f"but {len(data) - offset} were received"
        )
    array = np.frombuffer(data, dtype=got_dtype, offset=offset, count=math.prod(got_shape))
    return array.reshape(got_shape, order="F" if fortran else "C")

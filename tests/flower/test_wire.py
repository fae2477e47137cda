"""The wire format round-trips structured payloads and rejects anything malformed, clearly."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from flwr_declearn.flower import wire
from flwr_declearn.model.numpy import NumpyVector
from tests._strategies import nested

torch = pytest.importorskip("torch")
from flwr_declearn.model.torch import TorchVector  # noqa: E402

ALLOWED = sorted(wire.ALLOWED_DTYPES)
Value = wire._SCHEMA["Value"]
Payload = wire._SCHEMA["Payload"]

# -- hypothesis strategies ------------------------------------------------------------------------

dtypes = st.sampled_from(ALLOWED).map(np.dtype)
byte_orders = st.sampled_from(["<", ">"])


@st.composite
def arrays(draw: st.DrawFn, max_dims: int = 3) -> np.ndarray:
    dtype = draw(dtypes)
    array = draw(hnp.arrays(dtype, hnp.array_shapes(min_dims=0, max_dims=max_dims, min_side=0)))
    if dtype.itemsize > 1 and draw(st.booleans()):
        array = array.astype(dtype.newbyteorder(draw(byte_orders)))
    return array


@st.composite
def vectors(draw: st.DrawFn) -> NumpyVector:
    names = draw(st.lists(st.text(min_size=1, max_size=6), min_size=1, max_size=3, unique=True))
    return NumpyVector({name: draw(arrays()) for name in names})


leaves = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=8)
    | st.binary(max_size=16)
    | arrays()
    | arrays(max_dims=0).map(lambda a: a[()])  # numpy scalars
    | vectors()
)
trees = nested(leaves, max_leaves=12)


def assert_same(got: Any, exp: Any) -> None:
    """Exact equality: same types, dtypes (by name), shapes, values (NaN == NaN)."""
    if isinstance(exp, NumpyVector):
        assert isinstance(got, NumpyVector)
        assert list(got.coefs) == list(exp.coefs)
        for key in exp.coefs:
            assert_same(got.coefs[key], exp.coefs[key])
        return
    if isinstance(exp, np.ndarray | np.generic):
        assert type(got) is type(exp)
        assert got.dtype.name == exp.dtype.name and got.shape == exp.shape
        assert np.array_equal(got, exp, equal_nan=exp.dtype.kind == "f")
        return
    assert type(got) is type(exp)
    if isinstance(exp, dict):
        assert list(got) == list(exp)
        for key in exp:
            assert_same(got[key], exp[key])
    elif isinstance(exp, list | tuple):
        assert len(got) == len(exp)
        for g, e in zip(got, exp, strict=True):
            assert_same(g, e)
    elif isinstance(exp, float) and math.isnan(exp):
        assert math.isnan(got)
    else:
        assert got == exp


# -- round trips ----------------------------------------------------------------------------------


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tree=trees)
def test_nested_payloads_round_trip_exactly(tree: Any) -> None:
    assert_same(wire.decode(wire.encode(tree)), tree)


def test_decoded_payload_keeps_python_and_numpy_scalar_types_apart() -> None:
    payload = {"f": 1.5, "np_f": np.float64(1.5), "i": 3, "np_i": np.int32(3), "b": True}
    out = wire.decode(wire.encode(payload))
    assert type(out["f"]) is float and type(out["np_f"]) is np.float64
    assert type(out["i"]) is int and type(out["np_i"]) is np.int32
    assert out["b"] is True


def test_lists_and_tuples_stay_distinct() -> None:
    assert wire.decode(wire.encode([1, (2, [3])])) == [1, (2, [3])]


def test_vectors_decode_into_the_receivers_vector_type() -> None:
    vec = NumpyVector({"w": np.arange(6, dtype=np.float32).reshape(2, 3), "b": np.ones(3)})
    out = wire.decode(wire.encode({"aux": {"delta": vec}}), TorchVector)
    got = out["aux"]["delta"]
    assert isinstance(got, TorchVector)
    assert got.dtypes() == {"w": "float32", "b": "float64"}
    assert np.array_equal(got.pack()["w"], vec.coefs["w"])


def test_torch_vectors_encode_and_decode_into_numpy_on_the_server() -> None:
    vec = TorchVector({"w": torch.randn(4, 2), "n": torch.tensor([3], dtype=torch.int64)})
    out = wire.decode(wire.encode(vec))
    assert isinstance(out, NumpyVector)
    assert np.array_equal(out.coefs["w"], vec.coefs["w"].numpy())
    assert out.dtypes() == {"w": "float32", "n": "int64"}


def test_float16_and_big_endian_arrays_round_trip_to_native_little_endian() -> None:
    half = np.array([1.0, -2.5, 65504.0], dtype=np.float16)
    big = np.arange(4, dtype=">i4")
    out = wire.decode(wire.encode([half, big]))
    assert out[0].dtype == np.float16 and np.array_equal(out[0], half)
    assert out[1].dtype.byteorder in "<=|" and np.array_equal(out[1], big)


def test_encoded_arrays_cost_their_raw_bytes_plus_a_small_header() -> None:
    array = np.zeros(10_000, dtype=np.float32)
    assert len(wire.encode(array)) - array.nbytes < 32


# -- encode errors --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"a": {1: 2}}, "root['a']: dict key 1 is not a str"),
        ({"a": [object()]}, "root['a'][0]: unsupported type object"),
        ({"s": {1, 2}}, "unsupported type set"),
        (1 + 2j, "unsupported type complex"),
        (2**63, "out of the 64-bit range"),
        (np.array(["x"]), "dtype '<U1' is not allowed"),
        (np.array([None], dtype=object), "dtype 'object' is not allowed"),
        (np.array([1j]), "dtype 'complex128' is not allowed"),
        (np.datetime64("2020-01-01"), "is not allowed"),
    ],
)
def test_encoding_unsupported_values_names_the_value_and_its_path(value: Any, message: str) -> None:
    with pytest.raises(
        (TypeError, ValueError), match=message.replace("[", r"\[").replace("(", r"\(")
    ):
        wire.encode(value)


def test_encoding_refuses_nesting_deeper_than_the_limit() -> None:
    value: Any = 0
    for _ in range(wire.MAX_DEPTH + 1):
        value = [value]
    with pytest.raises(ValueError, match="nesting deeper than"):
        wire.encode(value)


# -- decode validation ----------------------------------------------------------------------------


def _payload(root: Any, version: int = wire.WIRE_VERSION) -> bytes:
    msg = Payload(version=version)
    msg.root.CopyFrom(root)
    return bytes(msg.SerializeToString())


def _array_value(dtype: str, shape: list[int], data: bytes, field: str = "array") -> Any:
    value = Value()
    arr = getattr(value, field)
    arr.dtype = dtype
    arr.shape.extend(shape)
    arr.data = data
    return value


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (_array_value("object", [1], b"\0" * 8), "dtype 'object', which is not allowed"),
        (_array_value("<U2", [1], b"\0" * 8), "dtype '<U2', which is not allowed"),
        (_array_value("complex64", [1], b"\0" * 8), "dtype 'complex64'"),
        (_array_value("V8", [1], b"\0" * 8), "dtype 'V8'"),
        (_array_value("float32", [2, 3], b"\0" * 20), r"shape \[2, 3\].*needs 24 bytes, but 20"),
        (_array_value("float64", [], b"\0" * 4), "needs 8 bytes, but 4"),
        (_array_value("int8", [1] * 40, b"\0"), "40 dimensions"),
        (_array_value("int8", [0, 2**63, 2**63], b""), "array root"),
        (_array_value("float32", [2], b"\0" * 8, "np_scalar"), "non-empty shape"),
        (Value(), "holds no value"),
    ],
)
def test_decoding_invalid_values_raises_a_value_error_saying_what_is_wrong(
    value: Any, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        wire.decode(_payload(value))


def test_decoding_rejects_unknown_and_missing_versions() -> None:
    good = Value(int=1)
    with pytest.raises(ValueError, match="Unsupported wire payload version: 2"):
        wire.decode(_payload(good, version=2))
    msg = Payload()
    msg.root.CopyFrom(good)
    with pytest.raises(ValueError, match="version: missing"):
        wire.decode(msg.SerializeToString())


def test_decoding_rejects_a_payload_without_root() -> None:
    with pytest.raises(ValueError, match="no root value"):
        wire.decode(Payload(version=1).SerializeToString())


def test_decoding_rejects_malformed_dicts() -> None:
    value = Value()
    value.dict.keys.extend(["a", "a"])
    value.dict.values.add(int=1)
    value.dict.values.add(int=2)
    with pytest.raises(ValueError, match="repeats key 'a'"):
        wire.decode(_payload(value))
    value = Value()
    value.dict.keys.extend(["a", "b"])
    value.dict.values.add(int=1)
    with pytest.raises(ValueError, match="2 keys but 1 values"):
        wire.decode(_payload(value))


def test_decoding_rejects_malformed_vectors() -> None:
    value = Value()
    for name in ("w", "w"):
        entry = value.vector.arrays.add(name=name, dtype="float32", data=b"\0" * 4)
        entry.shape.append(1)
    with pytest.raises(ValueError, match="repeats array 'w'"):
        wire.decode(_payload(value))
    value = Value()
    value.vector.arrays.add(name="", dtype="float32", data=b"")
    with pytest.raises(ValueError, match="unnamed array"):
        wire.decode(_payload(value))


def test_decoding_rejects_nesting_deeper_than_the_limit() -> None:
    value = Value(int=0)
    for _ in range(wire.MAX_DEPTH + 1):
        outer = Value()
        outer.list.items.append(value)
        value = outer
    with pytest.raises(ValueError, match="nested deeper than"):
        wire.decode(_payload(value))


def test_decoding_rejects_non_bytes_input() -> None:
    with pytest.raises(ValueError, match="must be bytes, not str"):
        wire.decode("hello")  # type: ignore[arg-type]


def test_decoded_arrays_are_read_only_views() -> None:
    out = wire.decode(wire.encode(np.arange(3.0)))
    assert not out.flags.writeable


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=256))
def test_random_bytes_either_decode_to_a_valid_payload_or_raise_value_error(data: bytes) -> None:
    try:
        out = wire.decode(data)
    except ValueError:
        return
    wire.encode(out)  # whatever decoded is a well-formed value


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tree=trees, data=st.data())
def test_corrupted_payloads_either_decode_or_raise_value_error(
    tree: Any, data: st.DataObject
) -> None:
    blob = bytearray(wire.encode(tree))
    mode = data.draw(st.sampled_from(["flip", "truncate", "insert"]))
    pos = data.draw(st.integers(0, len(blob) - 1))
    if mode == "flip":
        blob[pos] ^= data.draw(st.integers(1, 255))
    elif mode == "truncate":
        del blob[pos:]
    else:
        blob[pos:pos] = data.draw(st.binary(min_size=1, max_size=8))
    try:
        out = wire.decode(bytes(blob))
    except ValueError:
        return
    wire.encode(out)


# -- model weights as NDArrays --------------------------------------------------------------------


def test_weights_travel_in_sorted_name_order() -> None:
    vec = NumpyVector({"z": np.zeros(1), "a": np.ones(2), "m": np.full(3, 2.0)})
    assert wire.weight_names(vec) == ["a", "m", "z"]
    shapes = [arr.shape for arr in wire.vector_to_ndarrays(vec)]
    assert shapes == [(2,), (3,), (1,)]


def test_torch_cpu_weights_convert_to_ndarrays_without_copies() -> None:
    vec = TorchVector({"w": torch.randn(3, 4), "b": torch.randn(4)})
    arrays = wire.vector_to_ndarrays(vec)
    assert np.shares_memory(arrays[0], vec.coefs["b"].numpy())
    assert np.shares_memory(arrays[1], vec.coefs["w"].numpy())


def test_writeable_ndarrays_become_torch_weights_without_copies() -> None:
    arrays = [np.ones(4, dtype=np.float32), np.zeros((3, 4), dtype=np.float32)]
    specs = {"b": ((4,), "float32"), "w": ((3, 4), "float32")}
    vec = wire.ndarrays_to_vector(arrays, specs, TorchVector)
    assert isinstance(vec, TorchVector)
    assert np.shares_memory(vec.coefs["b"].numpy(), arrays[0])
    assert np.shares_memory(vec.coefs["w"].numpy(), arrays[1])


def test_ndarrays_not_matching_the_specs_are_rejected_naming_each_weight() -> None:
    specs = {"b": ((4,), "float32"), "w": ((3, 4), "float32")}
    with pytest.raises(ValueError, match="Expected 2 weight arrays, received 1"):
        wire.ndarrays_to_vector([np.zeros(4, np.float32)], specs)
    bad = [np.zeros(4, np.float64), np.zeros((4, 3), np.float32)]
    with pytest.raises(
        ValueError, match=r"'b': expected float32\[4\], received float64\[4\]"
    ) as err:
        wire.ndarrays_to_vector(bad, specs)
    assert r"'w': expected float32[3, 4], received float32[4, 3]" in str(err.value)

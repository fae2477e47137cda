"""Vector algebra gives numpy's results on every backend; pack/unpack is bit-exact."""

from __future__ import annotations

import operator
import pickle
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from flwr_declearn.model.api import Vector, VectorNamesError, VectorSpecError, check_names
from flwr_declearn.model.api._vector import as_numpy
from flwr_declearn.model.numpy import NumpyVector
from flwr_declearn.utils import json_dumps, json_loads

from .vector_backends import FRAMEWORK_VECTORS, VECTOR_TYPES

SETTINGS = settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
RTOL = 1e-6

names = st.lists(
    st.text(alphabet="abcdefghij:/._", min_size=1, max_size=6), min_size=1, max_size=3, unique=True
)
shapes = hnp.array_shapes(min_dims=0, max_dims=3, min_side=1, max_side=4)
float_dtypes = st.sampled_from(["float32", "float64"])


@st.composite
def spec(draw: Any) -> dict[str, tuple[tuple[int, ...], str]]:
    keys = draw(names)
    return {k: (draw(shapes), draw(float_dtypes)) for k in keys}


def arrays_for(
    draw: Any, specs: dict[str, tuple[tuple[int, ...], str]], low: float, high: float
) -> dict[str, np.ndarray]:
    out = {}
    for key, (shape, dtype) in specs.items():
        # No subnormals: TensorFlow flushes them to zero in arithmetic (FTZ/DAZ on CPU).
        elems = st.floats(
            low, high, width=32, allow_nan=False, allow_infinity=False, allow_subnormal=False
        )
        out[key] = draw(hnp.arrays(dtype, shape, elements=elems))
    return out


@st.composite
def vector_pair(draw: Any, positive: bool = False) -> tuple[dict, dict]:
    specs = draw(spec())
    lo, hi = (0.5, 3.0) if positive else (-10.0, 10.0)
    return arrays_for(draw, specs, lo, hi), arrays_for(draw, specs, 0.5, 3.0)


scalars = st.floats(0.5, 4.0, allow_nan=False) | st.integers(1, 4)


def assert_matches(result: Vector, expected: dict[str, np.ndarray], vtype: type[Vector]) -> None:
    assert type(result) is vtype
    got = result.pack()
    assert got.keys() == expected.keys()
    for key, exp in expected.items():
        exp = np.asarray(exp)
        assert got[key].shape == exp.shape, key
        np.testing.assert_allclose(got[key], exp, rtol=RTOL, atol=1e-12, err_msg=key)


BINARY_OPS: list[Callable[[Any, Any], Any]] = [
    operator.add,
    operator.sub,
    operator.mul,
    operator.truediv,
    operator.pow,
]


@pytest.mark.parametrize("vtype", VECTOR_TYPES, ids=lambda t: t.__name__)
@pytest.mark.parametrize("op", BINARY_OPS, ids=lambda o: o.__name__)
@SETTINGS
@given(data=vector_pair(positive=True), scalar=scalars)
def test_binary_operations_match_numpy(
    vtype: type[Vector], op: Callable[[Any, Any], Any], data: tuple[dict, dict], scalar: float
) -> None:
    left, right = data
    vec_l, vec_r = vtype.unpack(left), vtype.unpack(right)
    assert_matches(op(vec_l, vec_r), {k: op(v, right[k]) for k, v in left.items()}, vtype)
    assert_matches(op(vec_l, scalar), {k: op(v, scalar) for k, v in left.items()}, vtype)
    assert_matches(op(scalar, vec_l), {k: op(scalar, v) for k, v in left.items()}, vtype)


@pytest.mark.parametrize("vtype", FRAMEWORK_VECTORS, ids=lambda t: t.__name__)
@pytest.mark.parametrize("op", BINARY_OPS, ids=lambda o: o.__name__)
@SETTINGS
@given(data=vector_pair(positive=True))
def test_numpy_vectors_combine_with_framework_vectors_into_the_framework_type(
    vtype: type[Vector], op: Callable[[Any, Any], Any], data: tuple[dict, dict]
) -> None:
    left, right = data
    fw, np_vec = vtype.unpack(left), NumpyVector(right)
    assert_matches(op(fw, np_vec), {k: op(v, right[k]) for k, v in left.items()}, vtype)
    assert_matches(op(np_vec, fw), {k: op(right[k], v) for k, v in left.items()}, vtype)


@pytest.mark.parametrize("vtype", VECTOR_TYPES, ids=lambda t: t.__name__)
@SETTINGS
@given(data=vector_pair(), scalar=scalars)
def test_elementwise_operations_match_numpy(
    vtype: type[Vector], data: tuple[dict, dict], scalar: float
) -> None:
    arrays, other = data
    vec, oth = vtype.unpack(arrays), vtype.unpack(other)
    assert_matches(-vec, {k: -v for k, v in arrays.items()}, vtype)
    assert_matches(vec.sign(), {k: np.sign(v) for k, v in arrays.items()}, vtype)
    assert_matches(oth.sqrt(), {k: np.sqrt(v) for k, v in other.items()}, vtype)
    assert_matches(vec.minimum(oth), {k: np.minimum(v, other[k]) for k, v in arrays.items()}, vtype)
    assert_matches(vec.maximum(oth), {k: np.maximum(v, other[k]) for k, v in arrays.items()}, vtype)
    assert_matches(
        vec.minimum(scalar), {k: np.minimum(v, scalar) for k, v in arrays.items()}, vtype
    )
    assert_matches(
        vec.maximum(scalar), {k: np.maximum(v, scalar) for k, v in arrays.items()}, vtype
    )
    assert_matches(
        vec.apply_func(lambda x: x * 2 + 1), {k: v * 2 + 1 for k, v in arrays.items()}, vtype
    )
    assert vec.shapes() == {k: v.shape for k, v in arrays.items()}
    assert vec.dtypes() == {k: v.dtype.name for k, v in arrays.items()}


def close_sum(got: float, terms: np.ndarray) -> bool:
    """Whether `got` equals the sum of `terms` up to RTOL times the sum of their magnitudes."""
    terms = np.asarray(terms, dtype="float64")
    return bool(abs(got - terms.sum()) <= RTOL * np.abs(terms).sum() + 1e-12)


@pytest.mark.parametrize("vtype", VECTOR_TYPES, ids=lambda t: t.__name__)
@SETTINGS
@given(data=vector_pair())
def test_reductions_match_numpy(vtype: type[Vector], data: tuple[dict, dict]) -> None:
    arrays = {k: v.astype("float64") for k, v in data[0].items()}
    other = {k: v.astype("float64") for k, v in data[1].items()}
    vec, oth = vtype.unpack(arrays), vtype.unpack(other)
    sums = vec.sum()
    assert type(sums) is vtype
    for key, val in sums.pack().items():
        assert val.shape == ()
        assert close_sum(float(val), arrays[key].ravel()), key
    products = np.concatenate([(v * other[k]).ravel() for k, v in arrays.items()])
    assert close_sum(vec.dot(oth), products)
    squares = np.concatenate([(v**2).ravel() for v in arrays.values()])
    assert close_sum(vec.norm() ** 2, squares)
    assert vec.norm() == pytest.approx(np.sqrt(squares.sum()), rel=RTOL)


@pytest.mark.parametrize("vtype", VECTOR_TYPES, ids=lambda t: t.__name__)
@SETTINGS
@given(data=vector_pair())
def test_equality_compares_names_dtypes_and_values(vtype: type[Vector], data: tuple) -> None:
    arrays, _ = data
    vec = vtype.unpack(arrays)
    assert vec == vtype.unpack({k: v.copy() for k, v in arrays.items()})
    assert vec == NumpyVector(arrays)
    assert vec != vec + 1
    key = next(iter(arrays))
    assert vec != vtype.unpack({**arrays, key: arrays[key].astype("float16")})
    assert vec != vtype.unpack({f"{k}-renamed": v for k, v in arrays.items()})


PACK_DTYPES = ["float16", "float32", "float64", "int8", "int16", "int32", "int64", "uint8"]


@pytest.mark.parametrize("vtype", VECTOR_TYPES, ids=lambda t: t.__name__)
@pytest.mark.parametrize("dtype", PACK_DTYPES)
@SETTINGS
@given(data=st.data())
def test_pack_unpack_round_trips_bit_exactly(vtype: type[Vector], dtype: str, data: Any) -> None:
    keys = data.draw(names)
    arrays = {
        k: data.draw(
            hnp.arrays(
                dtype,
                shapes,
                elements=hnp.from_dtype(np.dtype(dtype), allow_nan=False),
            )
        )
        for k in keys
    }
    packed = vtype.unpack(arrays).pack()
    assert packed.keys() == arrays.keys()
    for key, arr in arrays.items():
        assert packed[key].dtype == arr.dtype
        assert packed[key].shape == arr.shape
        assert packed[key].tobytes() == arr.tobytes()
    restored = json_loads(json_dumps(vtype.unpack(arrays)))
    assert type(restored) is vtype
    assert restored.pack().keys() == arrays.keys()
    assert all(restored.pack()[k].tobytes() == a.tobytes() for k, a in arrays.items())


@pytest.mark.parametrize("vtype", VECTOR_TYPES, ids=lambda t: t.__name__)
def test_spec_mismatch_error_names_the_differing_entries(vtype: type[Vector]) -> None:
    base = {"w": np.ones((2, 3)), "b": np.zeros(3)}
    vec = vtype.unpack(base)
    with pytest.raises(VectorSpecError, match=r"missing.*\['b'\].*unexpected.*\['c'\]"):
        vec + vtype.unpack({"w": np.ones((2, 3)), "c": np.zeros(3)})
    with pytest.raises(VectorSpecError, match=r"'w': float64\[2, 3\] vs float64\[3, 2\]"):
        vec * vtype.unpack({"w": np.ones((3, 2)), "b": np.zeros(3)})
    with pytest.raises(VectorSpecError, match=r"'b': float64\[3\] vs float32\[3\]"):
        vec - vtype.unpack({"w": np.ones((2, 3)), "b": np.zeros(3, "float32")})
    with pytest.raises(VectorSpecError, match="'w'"):
        vec.dot(vtype.unpack({"w": np.ones((1,)), "b": np.zeros(3)}))


@pytest.mark.parametrize("vtype", VECTOR_TYPES, ids=lambda t: t.__name__)
def test_check_specs_may_ignore_dtypes_and_names_what_it_checks(vtype: type[Vector]) -> None:
    vec = vtype.unpack({"w": np.ones((2, 3)), "b": np.zeros(3)})
    cast = vtype.unpack({"w": np.ones((2, 3), "float32"), "b": np.zeros(3, "float32")})
    vec.check_specs(cast, dtypes=False)
    with pytest.raises(VectorSpecError, match=r"'b': float64\[3\] vs float32\[3\]"):
        vec.check_specs(cast)
    wrong = vtype.unpack({"w": np.ones((3, 2), "float32"), "b": np.zeros(3, "float32")})
    with pytest.raises(VectorSpecError, match=r"'w'.*\(expected vs the updates\)"):
        vec.check_specs(wrong, dtypes=False, other_name="the updates")
    with pytest.raises(VectorNamesError, match="missing from the updates") as info:
        vec.check_specs(
            vtype.unpack({"w": np.ones((2, 3)), "c": np.zeros(1)}), other_name="the updates"
        )
    assert (info.value.missing, info.value.unexpected) == (["b"], ["c"])


def test_names_error_lists_the_names_and_survives_pickling() -> None:
    with pytest.raises(VectorNamesError) as info:
        check_names(["a", "b"], ["b", "c", "d"])
    assert isinstance(info.value, KeyError)
    clone = pickle.loads(pickle.dumps(info.value))
    assert (clone.missing, clone.unexpected, str(clone)) == (["a"], ["c", "d"], str(info.value))
    check_names(["a", "b"], {"b": 0, "a": 1})


def test_torch_pack_shares_memory_with_cpu_tensors() -> None:
    torch = pytest.importorskip("torch")
    from flwr_declearn.model.torch import TorchVector

    tensor = torch.arange(4, dtype=torch.float32)
    packed = TorchVector({"t": tensor}).pack()["t"]
    packed[0] = 42.0
    assert float(tensor[0]) == 42.0
    source = np.arange(3.0)
    unpacked = TorchVector.unpack({"s": source}).coefs["s"]
    assert unpacked.data_ptr() == source.ctypes.data


def test_jax_pack_does_not_copy_cpu_arrays() -> None:
    jnp = pytest.importorskip("jax.numpy")
    from flwr_declearn.model.haiku import JaxNumpyVector

    array = jnp.arange(6.0)
    packed = JaxNumpyVector({"a": array}).pack()["a"]
    assert packed.ctypes.data == array.unsafe_buffer_pointer()


def test_build_picks_the_vector_type_of_the_arrays() -> None:
    assert type(Vector.build({"a": np.ones(2)})) is NumpyVector
    for vtype in FRAMEWORK_VECTORS:
        framework_arrays = vtype.unpack({"a": np.ones(2)}).coefs
        assert type(Vector.build(framework_arrays)) is vtype
    with pytest.raises(TypeError, match="No Vector type"):
        Vector.build({"a": [1.0, 2.0]})


def test_operations_with_unsupported_operands_raise_type_error() -> None:
    vec = NumpyVector({"a": np.ones(2)})
    with pytest.raises(TypeError):
        vec + "text"  # type: ignore[operator]
    with pytest.raises(TypeError):
        vec * [1, 2]  # type: ignore[operator]


@pytest.mark.parametrize("vtype", VECTOR_TYPES, ids=lambda t: t.__name__)
def test_as_numpy_converts_arrays_of_every_framework(vtype: type[Vector]) -> None:
    array = np.arange(6, dtype="float32").reshape(2, 3)
    value = vtype.unpack({"a": array}).coefs["a"]
    out = as_numpy(value)
    assert isinstance(out, np.ndarray) and out.dtype == array.dtype
    np.testing.assert_array_equal(out, array)
    np.testing.assert_array_equal(as_numpy([[1, 2], [3, 4]]), np.array([[1, 2], [3, 4]]))


def test_the_vector_base_class_can_be_autospecced_by_mock() -> None:
    """declearn's tests build `mock.create_autospec(Vector, instance=True)`: introspection
    of the base class (private names) must raise AttributeError, not NotImplementedError."""
    from unittest import mock

    from flwr_declearn.model.api import Vector

    vector = mock.create_autospec(Vector, instance=True)
    assert isinstance(vector, Vector)

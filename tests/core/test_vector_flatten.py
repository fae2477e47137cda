"""Vector.flatten / unflatten / build_from_specs round trips; declearn-style Vector subclasses."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from flwr_declearn.model.api import (
    Vector,
    VectorNamesError,
    VectorSpec,
    VectorSpecError,
    register_vector_type,
)
from flwr_declearn.model.numpy import NumpyVector

from .vector_backends import VECTOR_TYPES

SETTINGS = settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def named_arrays(draw: Any) -> dict[str, np.ndarray]:
    keys = draw(st.lists(st.text("abcxyz/:.", min_size=1, max_size=5), max_size=3, unique=True))
    out = {}
    for key in keys:
        dtype = draw(st.sampled_from(["float32", "float64", "int32", "int64"]))
        shape = draw(hnp.array_shapes(min_dims=0, max_dims=3, min_side=1, max_side=4))
        elements = (
            st.integers(-1000, 1000)
            if dtype.startswith("int")
            else st.floats(-1e6, 1e6, width=32, allow_subnormal=False)
        )
        out[key] = draw(hnp.arrays(dtype, shape, elements=elements))
    return out


@pytest.mark.parametrize("vtype", VECTOR_TYPES, ids=lambda t: t.__name__)
@SETTINGS
@given(arrays=named_arrays())
def test_flatten_then_build_from_specs_gives_back_the_vector(
    vtype: type[Vector], arrays: dict[str, np.ndarray]
) -> None:
    vector = vtype.unpack(arrays)
    values, specs = vector.flatten()
    assert all(type(v) is float for v in values)
    assert len(values) == sum(a.size for a in arrays.values())
    assert specs.names == list(arrays)
    assert specs.shapes == {k: a.shape for k, a in arrays.items()}
    assert specs.dtypes == {k: a.dtype.name for k, a in arrays.items()}
    assert specs.v_type == (vtype.__name__, "Vector")
    rebuilt = Vector.build_from_specs(values, specs)
    assert type(rebuilt) is vtype
    assert rebuilt == vector
    assert vtype.unflatten(values, specs) == vector


def test_unflatten_rejects_values_that_do_not_fit_the_specs() -> None:
    values, specs = NumpyVector({"w": np.ones((2, 3))}).flatten()
    with pytest.raises(ValueError, match="Expected 6 values"):
        NumpyVector.unflatten(values[:-1], specs)
    bad = VectorSpec(names=["w"], shapes={}, dtypes={"w": "float64"})
    with pytest.raises(KeyError, match="shape or dtype"):
        NumpyVector.unflatten(values, bad)


def test_build_from_specs_needs_a_registered_vector_type() -> None:
    specs = VectorSpec(names=["a"], shapes={"a": (1,)}, dtypes={"a": "float64"})
    with pytest.raises(TypeError, match="VectorSpec"):
        Vector.build_from_specs([0.0], {"names": ["a"]})  # type: ignore[arg-type]
    with pytest.raises(KeyError, match="v_type is None"):
        Vector.build_from_specs([0.0], specs)
    specs.v_type = ("NoSuchVector", "Vector")
    with pytest.raises(KeyError, match="NoSuchVector"):
        Vector.build_from_specs([0.0], specs)
    specs.v_type = ("adam", "OptiModule")
    import flwr_declearn.optimizer  # noqa: F401  (registers "adam")

    with pytest.raises(TypeError, match="not a Vector"):
        Vector.build_from_specs([0.0], specs)


def test_different_names_raise_an_error_that_is_also_a_key_error() -> None:
    with pytest.raises(VectorNamesError) as info:
        NumpyVector({"a": np.zeros(2)}) + NumpyVector({"b": np.zeros(2)})
    assert isinstance(info.value, KeyError) and isinstance(info.value, VectorSpecError)
    assert str(info.value).startswith("Vector names differ")  # not KeyError's quoted repr
    with pytest.raises(VectorSpecError) as shape_info:
        NumpyVector({"a": np.zeros(2)}) + NumpyVector({"a": np.zeros(3)})
    assert not isinstance(shape_info.value, KeyError)


class Box(float):
    """A float type of our own, so that registering it has no side effect."""


@register_vector_type(Box, name="BoxVector-test")
class BoxVector(Vector):
    """A Vector written the declearn way: public methods overridden, no array primitives."""

    def __eq__(self, other: object) -> bool:
        return isinstance(other, BoxVector) and self.coefs == other.coefs

    def sign(self) -> BoxVector:
        return BoxVector({k: Box((v > 0) - (v < 0)) for k, v in self.coefs.items()})

    def minimum(self, other: Any) -> BoxVector:
        return self._apply_operation(other, min)  # type: ignore[no-any-return]


def test_a_vector_subclass_without_array_primitives_works_where_it_defines_operations() -> None:
    left = BoxVector({"a": Box(1.0), "b": Box(-2.0)})
    right = BoxVector({"a": Box(3.0), "b": Box(1)})
    assert left + right == BoxVector({"a": 4.0, "b": -1.0})
    assert left * 2 == BoxVector({"a": 2.0, "b": -4.0})
    assert left.minimum(right) == BoxVector({"a": 1.0, "b": -2.0})
    assert left.sign() == BoxVector({"a": 1.0, "b": -1.0})
    assert type(Vector.build({"x": Box(1.0)})) is BoxVector
    assert "BoxVector" in repr(left)
    with pytest.raises(NotImplementedError):
        left.shapes()
    with pytest.raises(NotImplementedError):
        left.sqrt()
    with pytest.raises(KeyError):
        left + BoxVector({"c": Box(0.0)})
    with pytest.raises(TypeError):
        left + [1.0]  # type: ignore[operator]  # noqa: RUF005
    with pytest.raises(TypeError, match="abstract"):
        Vector({"a": 1.0})


def test_tensorflow_vectors_densify_sparse_gradients_even_when_set_later() -> None:
    tf = pytest.importorskip("tensorflow")
    from flwr_declearn.model.tensorflow import TensorflowVector

    dense = tf.reshape(tf.range(6, dtype=tf.float32), (3, 2))
    slices = tf.IndexedSlices(dense, tf.range(3), tf.constant([3, 2]))
    vector = TensorflowVector({"w": tf.zeros((3, 2))})
    vector.coefs["w"] = slices
    vector.coefs.update(b=slices)
    assert all(not isinstance(v, tf.IndexedSlices) for v in vector.coefs.values())
    assert vector * 2 == TensorflowVector({"w": dense * 2, "b": dense * 2})

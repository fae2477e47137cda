"""The JSON codec round-trips states holding arrays and Vectors, without pickle."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from flwr_declearn.model.numpy import NumpyVector
from flwr_declearn.utils import json_dumps, json_loads
from tests._strategies import nested

leaves = (
    st.none()
    | st.booleans()
    | st.integers(-(2**53), 2**53)
    | st.floats(allow_nan=False)
    | st.text(max_size=8)
    | hnp.arrays(
        hnp.scalar_dtypes().filter(lambda d: d.kind in "biuf"), hnp.array_shapes(min_dims=0)
    )
)
trees = nested(leaves, max_leaves=10)


def assert_same(got: object, exp: object) -> None:
    assert type(got) is type(exp)
    if isinstance(exp, np.ndarray):
        assert got.dtype == exp.dtype and got.shape == exp.shape  # type: ignore[union-attr]
        assert got.tobytes() == exp.tobytes()  # type: ignore[union-attr]
    elif isinstance(exp, dict):
        assert got.keys() == exp.keys()  # type: ignore[attr-defined]
        for key in exp:
            assert_same(got[key], exp[key])  # type: ignore[index]
    elif isinstance(exp, list | tuple):
        assert len(got) == len(exp)  # type: ignore[arg-type]
        for g, e in zip(got, exp, strict=True):  # type: ignore[call-overload]
            assert_same(g, e)
    else:
        assert got == exp


@settings(max_examples=60, deadline=None)
@given(tree=trees)
def test_nested_structures_round_trip_through_json(tree: object) -> None:
    assert_same(json_loads(json_dumps(tree)), tree)


def test_vectors_and_numpy_scalars_round_trip() -> None:
    state = {"vec": NumpyVector({"w": np.arange(6.0).reshape(2, 3)}), "step": np.int64(3)}
    out = json_loads(json_dumps(state))
    assert out["vec"] == state["vec"]
    assert out["step"] == 3 and isinstance(out["step"], np.int64)
    assert out["vec"].coefs["w"].flags.writeable


def test_unserializable_objects_and_keys_are_refused() -> None:
    with pytest.raises(TypeError, match="Cannot serialize object of type set"):
        json_dumps({"a": {1, 2}})
    with pytest.raises(TypeError, match="Only str keys"):
        json_dumps({1: "a"})
    with pytest.raises(TypeError, match="Object arrays"):
        json_dumps(np.array([object()]))


def test_unknown_vector_type_in_json_is_refused() -> None:
    payload = json.dumps({"__vector__": "EvilVector", "coefs": {}})
    with pytest.raises(KeyError, match="Unknown Vector type 'EvilVector'"):
        json_loads(payload)

"""InMemoryDataset batching and data_info aggregation."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flwr_declearn.data import (
    DataInfoField,
    DataSpecs,
    InMemoryDataset,
    aggregate_data_info,
    get_data_info_fields_documentation,
    register_data_info_field,
)


def make_dataset(n: int = 10, seed: int | None = 0) -> InMemoryDataset:
    data = np.arange(n * 2, dtype="float32").reshape(n, 2)
    return InMemoryDataset(data, target=np.arange(n) % 3, s_wght=np.ones(n), seed=seed)


def test_batches_cover_the_data_in_order_without_shuffle() -> None:
    batches = list(make_dataset().generate_batches(4, drop_remainder=False))
    assert [len(b[0]) for b in batches] == [4, 4, 2]
    np.testing.assert_array_equal(np.concatenate([b[1] for b in batches]), np.arange(10) % 3)


def test_drop_remainder_drops_the_short_last_batch() -> None:
    assert [len(b[0]) for b in make_dataset().generate_batches(4)] == [4, 4]


def test_shuffled_batches_are_a_seeded_permutation_keeping_rows_aligned() -> None:
    first = list(make_dataset(seed=1).generate_batches(5, shuffle=True))
    again = list(make_dataset(seed=1).generate_batches(5, shuffle=True))
    inputs = np.concatenate([b[0] for b in first])
    assert sorted(inputs[:, 0].tolist()) == list(range(0, 20, 2))
    np.testing.assert_array_equal(inputs, np.concatenate([b[0] for b in again]))
    np.testing.assert_array_equal(np.concatenate([b[1] for b in first]), (inputs[:, 0] // 2) % 3)


def test_poisson_sampling_includes_each_sample_at_the_expected_rate() -> None:
    dataset = InMemoryDataset(np.zeros((1000, 1)), seed=0)
    sizes = [len(b[0]) for _ in range(20) for b in dataset.generate_batches(100, poisson=True)]
    assert len(sizes) == 200
    assert 95 < np.mean(sizes) < 105
    assert np.std(sizes) > 3  # sizes vary: these are not fixed-size batches


def test_sampling_with_replacement_yields_full_batches() -> None:
    batches = list(make_dataset().generate_batches(4, replacement=True))
    assert len(batches) == 2 and all(len(b[0]) == 4 for b in batches)


def test_invalid_inputs_are_rejected_with_a_clear_error() -> None:
    with pytest.raises(ValueError, match="'target' has 3 samples while 'data' has 4"):
        InMemoryDataset(np.zeros((4, 2)), target=np.zeros(3))
    with pytest.raises(ValueError, match="positive int"):
        next(make_dataset().generate_batches(0))


def test_data_specs_describe_the_dataset() -> None:
    specs = make_dataset().get_data_specs()
    assert specs == DataSpecs(
        n_samples=10, features_shape=(2,), classes=[0, 1, 2], data_type="float32"
    )
    assert specs.to_data_info() == {
        "n_samples": 10,
        "features_shape": [2],
        "classes": [0, 1, 2],
        "data_type": "float32",
    }


def test_aggregate_data_info_sums_counts_unites_classes_and_checks_shapes() -> None:
    infos = [
        {"n_samples": 10, "classes": [0, 1], "features_shape": [2], "data_type": "float32"},
        {
            "n_samples": 5,
            "classes": np.array([1, 2]),
            "features_shape": (2,),
            "data_type": "float32",
        },
    ]
    assert aggregate_data_info(infos) == {
        "n_samples": 15,
        "classes": {0, 1, 2},
        "features_shape": (2,),
        "data_type": "float32",
    }
    assert aggregate_data_info(infos, {"features_shape"}) == {"features_shape": (2,)}
    assert aggregate_data_info(infos, required_fields={"n_samples"}) == {"n_samples": 15}


def test_aggregate_data_info_raises_on_missing_or_inconsistent_fields() -> None:
    with pytest.raises(KeyError, match="'classes' \\(in dict #1\\)"):
        aggregate_data_info([{"classes": [0]}, {}], {"classes"})
    with pytest.raises(ValueError, match="'features_shape' differs"):
        aggregate_data_info([{"features_shape": [2]}, {"features_shape": [3]}])
    with pytest.raises(ValueError, match="'n_samples' got invalid values \\[-1\\]"):
        aggregate_data_info([{"n_samples": -1}])
    with pytest.raises(ValueError, match="'data_type' got invalid values \\['not-a-dtype'\\]"):
        aggregate_data_info([{"data_type": "not-a-dtype"}])
    with pytest.raises(ValueError, match="'classes' got invalid values"):
        aggregate_data_info([{"classes": np.zeros((2, 2))}])


def test_unknown_fields_are_kept_as_lists_with_a_warning() -> None:
    with pytest.warns(UserWarning, match=r"Unknown data_info fields \['site'\]"):
        merged = aggregate_data_info([{"n_samples": 1, "site": "a"}, {"n_samples": 2, "site": "b"}])
    assert merged == {"n_samples": 3, "site": ["a", "b"]}


def test_custom_fields_register_once_and_document_themselves() -> None:
    class Site(DataInfoField):
        field = "test_site"
        types = (str,)
        doc = "Name of the hospital."

        @classmethod
        def combine(cls, *values: Any) -> Any:
            cls._check(values)
            return sorted(values)

    register_data_info_field(Site)
    assert get_data_info_fields_documentation()["test_site"] == "Name of the hospital."
    assert aggregate_data_info([{"test_site": "b"}, {"test_site": "a"}]) == {
        "test_site": ["a", "b"]
    }
    with pytest.raises(KeyError, match="already registered"):
        register_data_info_field(Site)
    with pytest.raises(TypeError, match="not a DataInfoField"):
        register_data_info_field(int)  # type: ignore[arg-type]


junk = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 5),
    st.floats(allow_nan=True),
    st.text(max_size=4),
    st.lists(st.one_of(st.integers(-2, 3), st.none(), st.text(max_size=2)), max_size=3),
)


@settings(max_examples=200, deadline=None)
@given(
    infos=st.lists(
        st.dictionaries(
            st.sampled_from(["n_samples", "classes", "features_shape", "data_type"]), junk
        ),
        min_size=1,
        max_size=3,
    )
)
def test_aggregate_data_info_rejects_any_malformed_input_with_a_value_error(
    infos: list[dict[str, Any]],
) -> None:
    try:
        merged = aggregate_data_info(infos)
    except ValueError:
        return
    if "n_samples" in merged:
        assert merged["n_samples"] == sum(i["n_samples"] for i in infos if "n_samples" in i)
    if "features_shape" in merged:
        assert all(d is None or d >= 0 for d in merged["features_shape"])

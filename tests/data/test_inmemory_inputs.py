"""InMemoryDataset takes what declearn's does: DataFrames and columns, sparse data, files, JSON."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flwr_declearn.data import InMemoryDataset, load_data_array, partition_dataset, save_data_array

pd = pytest.importorskip("pandas")
sparse = pytest.importorskip("scipy.sparse")


@pytest.fixture(name="frame")
def frame_fixture() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame(
        {
            "a": np.arange(12, dtype="float32"),
            "b": rng.normal(size=12).astype("float32"),
            "y": np.arange(12) % 3,
            "w": np.full(12, 0.5),
        }
    )


def test_dataframe_columns_name_target_weights_and_features(frame: pd.DataFrame) -> None:
    data = InMemoryDataset(frame, target="y", s_wght="w")
    np.testing.assert_array_equal(data.feats, frame[["a", "b"]])
    assert data.target is not None and data.target.name == "y"
    assert data.get_data_specs().features_shape == (2,)
    inputs, y_true, s_wght = next(data.generate_batches(5))
    assert isinstance(inputs, np.ndarray) and inputs.shape == (5, 2)
    np.testing.assert_array_equal(y_true, [0, 1, 2, 0, 1])
    np.testing.assert_array_equal(s_wght, np.full(5, 0.5))
    by_position = InMemoryDataset(frame, target="y", f_cols=[1])
    np.testing.assert_array_equal(by_position.feats, frame[["b"]])
    with pytest.raises(TypeError, match="all column names or all column positions"):
        InMemoryDataset(frame, f_cols=["a", 1])  # type: ignore[list-item]


def test_classes_and_dtype_are_exposed_as_asked(frame: pd.DataFrame) -> None:
    auto = InMemoryDataset(frame[["a", "b"]], target=frame["y"])
    assert auto.classes == {0, 1, 2} and auto.data_type == "float32"
    hidden = InMemoryDataset(frame[["a"]], target=frame["y"], expose_classes=False)
    assert hidden.classes is None and hidden.get_data_specs().classes is None
    regression = InMemoryDataset(frame[["a"]], target=frame["b"])
    assert regression.classes is None  # float targets: not labels unless asked
    assert InMemoryDataset(frame[["a"]], frame["b"], expose_classes=True).classes is not None
    mixed = InMemoryDataset(frame)
    assert mixed.data_type is None  # mixed dtypes: not exposed by default...
    with pytest.raises(ValueError, match="mix dtypes"):
        _ = InMemoryDataset(frame, expose_data_type=True).data_type  # ...an error if asked
    assert InMemoryDataset(frame[["a"]], expose_data_type=False).data_type is None


def test_sparse_inputs_stay_sparse_and_batch_as_csr(frame: pd.DataFrame) -> None:
    feats = sparse.coo_matrix(frame[["a", "b"]].to_numpy())
    labels = sparse.coo_matrix(frame[["y"]].to_numpy() + 1)
    data = InMemoryDataset(feats, target=labels, expose_classes=True)
    assert data.feats is feats and len(data) == 12
    assert data.classes == {1, 2, 3}
    batch = next(data.generate_batches(4, shuffle=True))
    assert sparse.issparse(batch[0]) and batch[0].shape == (4, 2)
    assert data.get_data_specs().data_type == "float32"


def test_files_and_json_configs_round_trip(frame: pd.DataFrame, tmp_path: Path) -> None:
    x_path = save_data_array(tmp_path / "x", sparse.csr_matrix(frame[["a", "b"]].to_numpy()))
    y_path = save_data_array(tmp_path / "y", frame["y"])
    w_path = save_data_array(tmp_path / "w", frame["w"].to_numpy())
    assert [Path(p).suffix for p in (x_path, y_path, w_path)] == [".npz", ".csv", ".npy"]
    from_files = InMemoryDataset(x_path, y_path, w_path, seed=3)
    assert sparse.issparse(from_files.feats) and isinstance(from_files.target, pd.Series)
    np.testing.assert_array_equal(load_data_array(w_path), frame["w"])
    in_memory = InMemoryDataset(frame, target="y", s_wght="w", expose_classes=True, seed=5)
    for dataset in (from_files, in_memory):
        config = tmp_path / f"{id(dataset)}.json"
        dataset.save_to_json(config)
        again = InMemoryDataset.load_from_json(config)
        specs, again_specs = dataset.get_data_specs(), again.get_data_specs()
        assert again_specs.n_samples == specs.n_samples
        assert again_specs.features_shape == specs.features_shape
        assert again_specs.classes == specs.classes  # (csv re-infers dtypes: float32 -> float64)
        assert again.expose_classes == dataset.expose_classes and again.seed == dataset.seed
        for first, second in zip(
            dataset.generate_batches(5), again.generate_batches(5), strict=True
        ):
            for left, right in zip(first, second, strict=True):
                left = left.toarray() if sparse.issparse(left) else left
                right = right.toarray() if sparse.issparse(right) else right
                np.testing.assert_allclose(left, right)
    (tmp_path / "bad.json").write_text(json.dumps({"config": {"data": "x.npy"}}))
    with pytest.raises(KeyError, match="lacks"):
        InMemoryDataset.load_from_json(tmp_path / "bad.json")
    with pytest.raises(ValueError, match=r"Unsupported data file format '\.pkl'"):
        InMemoryDataset(str(tmp_path / "data.pkl"))
    with pytest.raises(TypeError, match="Object arrays"):
        save_data_array(tmp_path / "obj", np.array([object()]))


def test_svmlight_files_load_as_csr_features(frame: pd.DataFrame, tmp_path: Path) -> None:
    datasets = pytest.importorskip("sklearn.datasets")
    path = tmp_path / "data.svmlight"
    datasets.dump_svmlight_file(frame[["a", "b"]].to_numpy(), frame["y"].to_numpy(), str(path))
    data = InMemoryDataset.from_svmlight(str(path), seed=1)
    assert isinstance(data.feats, sparse.csr_matrix) and data.weights is None
    np.testing.assert_allclose(data.feats.toarray(), frame[["a", "b"]].to_numpy(), rtol=1e-6)


def test_partitioning_a_dataframe_dataset_keeps_rows_aligned(frame: pd.DataFrame) -> None:
    shards = partition_dataset(InMemoryDataset(frame, target="y"), 3, "iid", seed=0)
    assert sum(len(s) for s in shards) == 12
    for shard in shards:
        x, y, _ = shard.take(np.arange(len(shard)))
        np.testing.assert_array_equal(y, x[:, 0].astype(int) % 3)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 3) | st.text(max_size=6),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner),
    max_leaves=6,
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    dump=st.dictionaries(
        st.sampled_from(["config", "other"]),
        st.dictionaries(
            st.sampled_from(
                ["data", "target", "s_wght", "f_cols", "expose_classes", "expose_data_type", "seed"]
            ),
            json_values,
        )
        | json_values,
    )
)
def test_malformed_json_configs_fail_with_a_clear_error(dump: Any, tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(dump))
    try:
        InMemoryDataset.load_from_json(path)
    except (KeyError, ValueError, TypeError, OSError):
        pass

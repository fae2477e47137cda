"""DeclearnClient trains from any accepted data type exactly as from the same InMemoryDataset."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flwr_declearn.data import InMemoryDataset, as_dataset, from_hf_dataset, from_tf_dataset

torch = pytest.importorskip("torch")

RNG = np.random.default_rng(0)
X = RNG.normal(size=(30, 4)).astype(np.float32)
Y = RNG.integers(0, 3, size=30).astype(np.int64)
W = RNG.uniform(0.5, 1.0, size=30).astype(np.float32)


def _torch_dataset(weights: bool) -> Any:
    tensors = [torch.from_numpy(X), torch.from_numpy(Y)]
    if weights:
        tensors.append(torch.from_numpy(W))
    return torch.utils.data.TensorDataset(*tensors)


def _tf() -> Any:
    return pytest.importorskip("tensorflow")


def _hf() -> Any:
    return pytest.importorskip("datasets")


class _DictDataset(torch.utils.data.Dataset):  # type: ignore[misc]
    """Items as dicts, the way Hugging Face datasets in torch format give them."""

    def __len__(self) -> int:
        return len(X)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return {"img": torch.from_numpy(X[index]), "label": int(Y[index])}


def _hf_torch() -> Any:
    return _hf().Dataset.from_dict({"img": X, "label": Y}).with_format("torch")


def _hf_transformed() -> Any:
    """flwr new's PyTorch template: `with_transform` making tensors, in a DataLoader."""

    def to_tensors(batch: dict[str, list[Any]]) -> dict[str, list[Any]]:
        batch["img"] = [torch.tensor(img) for img in batch["img"]]
        return batch

    table = _hf().Dataset.from_dict({"img": X, "label": Y}).with_transform(to_tensors)
    return torch.utils.data.DataLoader(table, batch_size=7)


SOURCES: dict[str, tuple[Callable[[], Any], bool]] = {
    "numpy (x, y)": (lambda: (X, Y), False),
    "numpy (x, y, w)": (lambda: (X, Y, W), True),
    "torch Dataset": (lambda: _torch_dataset(False), False),
    "torch Dataset with weights": (lambda: _torch_dataset(True), True),
    "torch DataLoader": (
        lambda: torch.utils.data.DataLoader(_torch_dataset(False), batch_size=7, shuffle=False),
        False,
    ),
    "tf.data.Dataset of samples": (
        lambda: _tf().data.Dataset.from_tensor_slices((X, Y)),
        False,
    ),
    "batched tf.data.Dataset": (
        lambda: _tf().data.Dataset.from_tensor_slices((X, Y, W)).batch(7).prefetch(2),
        True,
    ),
    "Hugging Face datasets.Dataset": (
        lambda: _hf().Dataset.from_dict({"features": X, "label": Y}),
        False,
    ),
    "Hugging Face datasets.Dataset, transformed": (
        lambda: (
            _hf()
            .Dataset.from_dict({"img": X, "label": Y})
            .with_transform(lambda batch: {key: np.asarray(val) for key, val in batch.items()})
        ),
        False,
    ),
    "torch Dataset of dicts": (_DictDataset, False),
    "torch DataLoader of dict batches": (
        lambda: torch.utils.data.DataLoader(_DictDataset(), batch_size=7),
        False,
    ),
    "Hugging Face dataset in torch format": (_hf_torch, False),
    "DataLoader of a Hugging Face dataset in torch format": (
        lambda: torch.utils.data.DataLoader(_hf_torch(), batch_size=7),
        False,
    ),
    "DataLoader of a transformed Hugging Face dataset (flwr new template)": (
        _hf_transformed,
        False,
    ),
    "tf.data.Dataset of dicts": (
        lambda: _tf().data.Dataset.from_tensor_slices({"x": X, "y": Y}).batch(7),
        False,
    ),
}


def _train(train_data: Any) -> list[np.ndarray]:
    from flwr.app import Context, RecordDict

    from flwr_declearn.flower import DeclearnClient, wire
    from flwr_declearn.model.torch import TorchModel

    torch.manual_seed(0)
    model = TorchModel(torch.nn.Linear(4, 3), loss=torch.nn.CrossEntropyLoss(reduction="none"))
    context = Context(run_id=1, node_id=1, node_config={}, state=RecordDict(), run_config={})
    client = DeclearnClient(model, train_data, context, seed=7)
    config = {
        wire.KEY_OPTIMIZER: wire.encode({"lrate": 0.1, "modules": [["momentum", {}]]}),
        wire.KEY_TRAIN_CONFIG: wire.encode({"batch_size": 8, "n_steps": 6, "shuffle": True}),
    }
    weights, n_examples, _ = client.fit(client.get_parameters({}), config)
    assert n_examples == 30
    return weights


@pytest.mark.parametrize("source", sorted(SOURCES))
def test_training_from_any_accepted_type_equals_training_from_an_inmemorydataset(
    source: str,
) -> None:
    make, weighted = SOURCES[source]
    data = make()
    converted = as_dataset(data)
    np.testing.assert_array_equal(converted.data, X)
    np.testing.assert_array_equal(converted.target, Y)
    assert (converted.s_wght is not None) == weighted
    expected = _train(InMemoryDataset(X, Y, W if weighted else None))
    for got, exp in zip(_train(make()), expected, strict=True):
        np.testing.assert_array_equal(got, exp)


def test_the_client_seed_sets_the_batch_order() -> None:
    first, again = _train((X, Y)), _train(InMemoryDataset(X, Y, seed=123))
    for got, exp in zip(again, first, strict=True):
        np.testing.assert_array_equal(got, exp)  # the client's seed overrides the dataset's
    unshuffled = InMemoryDataset(X, Y, seed=123)
    assert as_dataset(unshuffled) is unshuffled
    assert as_dataset(unshuffled, seed=7).seed == 7 and unshuffled.seed == 123


def test_dict_keys_can_be_named_and_missing_keys_are_named_in_the_error() -> None:
    items = [{"pixels": X[i], "digit": Y[i], "w": W[i]} for i in range(len(X))]
    loader = torch.utils.data.DataLoader(items, batch_size=4)
    data = as_dataset(loader, features="pixels", target="digit", s_wght="w")
    np.testing.assert_allclose(data.data, X)
    np.testing.assert_array_equal(data.target, Y)
    np.testing.assert_allclose(data.s_wght, W)
    unlabelled = as_dataset(loader, features="pixels")  # no "label"-like key: no target
    assert unlabelled.target is None
    with pytest.raises(ValueError, match=r"keys \['image'\] of a DataLoader with keys"):
        as_dataset(loader, features="image")


def test_hf_columns_can_be_chosen_and_tabular_columns_are_stacked() -> None:
    datasets = _hf()
    table = datasets.Dataset.from_dict(
        {"a": X[:, 0], "b": X[:, 1], "y": Y, "weight": W, "id": np.arange(30)}
    )
    data = from_hf_dataset(table, features=["a", "b"], s_wght="weight")
    np.testing.assert_array_equal(data.data, X[:, :2])
    np.testing.assert_array_equal(data.target, Y)  # "y" found as the target column
    np.testing.assert_array_equal(data.s_wght, W)
    with pytest.raises(ValueError, match=r"keys \['nope'\]"):
        from_hf_dataset(table, features="nope")


def test_tf_batching_can_be_stated_when_it_cannot_be_guessed() -> None:
    tf = _tf()
    fixed = tf.data.Dataset.from_tensor_slices((X, Y)).batch(10, drop_remainder=True)
    np.testing.assert_array_equal(from_tf_dataset(fixed, batched=True).data, X)


def test_unsupported_data_is_rejected_with_the_accepted_types() -> None:
    with pytest.raises(TypeError, match=r"tf.data.Dataset or a Hugging Face.*not builtins.dict"):
        as_dataset({"x": X})
    with pytest.raises(ValueError, match="varying lengths"):
        as_dataset(torch.utils.data.DataLoader([(X[0], Y[0]), (X[1],)], batch_size=None))


@settings(max_examples=200, deadline=None)
@given(
    lengths=st.lists(st.integers(0, 4), min_size=1, max_size=4),
    feature_shape=st.lists(st.integers(1, 3), max_size=2),
)
def test_numpy_tuples_are_taken_when_aligned_and_rejected_otherwise(
    lengths: list[int], feature_shape: list[int]
) -> None:
    arrays = [np.zeros((n, *feature_shape)) for n in lengths]
    if len(arrays) > 3:
        with pytest.raises(TypeError, match="Training data must be"):
            as_dataset(tuple(arrays))
        return
    if len(set(lengths)) > 1:
        with pytest.raises(ValueError, match="samples while 'data' has"):
            as_dataset(tuple(arrays))
        return
    data = as_dataset(tuple(arrays))
    assert len(data) == lengths[0]
    assert (data.target is None) == (len(arrays) < 2)
    assert (data.s_wght is None) == (len(arrays) < 3)


def test_a_misspelt_column_option_is_rejected_not_ignored() -> None:
    with pytest.raises(TypeError, match=r"Unknown column option\(s\) \['label'\]"):
        as_dataset((X, Y), label="y")  # type: ignore[call-arg]

"""Each Model trains an MLP on scikit-learn's digits through the Model API and our Optimizer."""

from __future__ import annotations

import numpy as np
import pytest

from flwr_declearn.data import InMemoryDataset
from flwr_declearn.model.api import Model

from .cases import ModelCase

sklearn_datasets = pytest.importorskip("sklearn.datasets")


@pytest.fixture(scope="module")
def digits() -> tuple[InMemoryDataset, np.ndarray, np.ndarray]:
    """Digits (8x8 images, 10 classes) scaled to [0, 1], split 75/25 with a fixed seed."""
    data = sklearn_datasets.load_digits()
    x = (data.data / 16.0).astype("float32")
    y = data.target.astype("int64")
    order = np.random.default_rng(0).permutation(len(x))
    x, y = x[order], y[order]
    n_train = int(0.75 * len(x))
    train = InMemoryDataset(x[:n_train], y[:n_train], seed=0)
    return train, x[n_train:], y[n_train:]


def accuracy(model: Model, x: np.ndarray, y: np.ndarray) -> float:
    _, y_pred, _ = model.compute_batch_predictions((x, y, None))
    return float(np.mean(np.argmax(y_pred, axis=1) == y))


@pytest.mark.parametrize(
    ("optim_kwargs", "epochs"),
    [({"lrate": 0.2}, 12), ({"lrate": 0.005, "modules": ["adam"]}, 6)],
    ids=["sgd", "adam"],
)
def test_optimizer_trains_mlp_on_digits_to_90_percent(
    case: ModelCase,
    digits: tuple[InMemoryDataset, np.ndarray, np.ndarray],
    optim_kwargs: dict,
    epochs: int,
) -> None:
    from flwr_declearn.optimizer import Optimizer

    train, x_test, y_test = digits
    model = case.make(n_features=64, n_hidden=32, n_classes=10, seed=0)
    model.initialize(train.get_data_specs().to_data_info())
    optim = Optimizer(**optim_kwargs)
    initial = accuracy(model, x_test, y_test)
    for _ in range(epochs):
        for batch in train.generate_batches(32, shuffle=True):
            optim.run_train_step(model, batch)
    losses = model.collect_training_losses()
    assert np.mean(losses[-20:]) < 0.5 * np.mean(losses[:20])
    final = accuracy(model, x_test, y_test)
    assert final >= 0.90, f"held-out accuracy {final:.3f} (from {initial:.3f})"

"""Every built-in Keras loss name gives TensorflowModel the gradients plain Keras computes.

Regression test: loss names resolved to functions used to skip Keras' rank
alignment, so labels shaped `(n,)` against `(n, 1)` outputs raised (binary
cross-entropy) or broadcast to `(n, n)` (hinge family, poisson).
The oracle is Keras itself: `model.compile(loss=name)` and one SGD step of
`train_on_batch` with a unit learning rate, whose weight change is minus the
batch-averaged gradients.
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("tensorflow")

import keras
from keras.src.losses import ALL_OBJECTS_DICT

from flwr_declearn.model.tensorflow import TensorflowModel, build_keras_loss

N = 8

# Loss names (snake_case functions, aliases and Loss classes) by the kind of task they need.
BINARY = (
    "binary_crossentropy bce BCE BinaryCrossentropy binary_focal_crossentropy "
    "BinaryFocalCrossentropy hinge Hinge squared_hinge SquaredHinge poisson Poisson "
    "mean_squared_error mse MSE MeanSquaredError mean_absolute_error mae MAE MeanAbsoluteError "
    "mean_absolute_percentage_error mape MAPE MeanAbsolutePercentageError "
    "mean_squared_logarithmic_error msle MSLE MeanSquaredLogarithmicError log_cosh LogCosh "
    "huber Huber kl_divergence kld KLD KLDivergence cosine_similarity CosineSimilarity"
).split()
CATEGORICAL = (
    "categorical_crossentropy CategoricalCrossentropy categorical_hinge CategoricalHinge "
    "categorical_focal_crossentropy CategoricalFocalCrossentropy"
).split()
SPARSE = ["sparse_categorical_crossentropy", "SparseCategoricalCrossentropy"]
EMBEDDING = ["circle", "Circle"]
SEQUENCE = ["ctc", "CTC"]
BATCH_LEVEL = ["dice", "Dice", "tversky", "Tversky"]  # reduce over the batch: no sample-wise loss
NOT_LOSSES = ["Loss", "LossFunctionWrapper"]  # base classes


def build_net(task: str) -> tuple[keras.Model, np.ndarray, np.ndarray]:
    """A small network and a batch `(x, y)` suited to the kind of loss."""
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    if task == "sequence":
        x = rng.normal(size=(N, 6, 4)).astype("float32")
        y = rng.integers(1, 4, size=(N, 3)).astype("int32")
        net = keras.Sequential([keras.Input((6, 4)), keras.layers.Dense(5, activation="softmax")])
        return net, x, y
    x = rng.normal(size=(N, 5)).astype("float32")
    hidden = keras.layers.Dense(7, activation="tanh")
    if task == "binary":
        y = rng.integers(0, 2, size=N).astype("float32")  # (n,) labels against (n, 1) outputs
        head = keras.layers.Dense(1, activation="sigmoid")
    elif task == "categorical":
        y = np.eye(3, dtype="float32")[rng.integers(0, 3, size=N)]
        head = keras.layers.Dense(3, activation="softmax")
    elif task == "sparse":
        y = rng.integers(0, 3, size=N)
        head = keras.layers.Dense(3, activation="softmax")
    else:  # embedding
        y = rng.integers(0, 3, size=N).astype("int32")
        head = keras.layers.Dense(4)
    return keras.Sequential([keras.Input((5,)), hidden, head]), x, y


TASKS = {
    **dict.fromkeys(BINARY, "binary"),
    **dict.fromkeys(CATEGORICAL, "categorical"),
    **dict.fromkeys(SPARSE, "sparse"),
    **dict.fromkeys(EMBEDDING, "embedding"),
    **dict.fromkeys(SEQUENCE, "sequence"),
}


def test_every_builtin_keras_loss_name_is_covered() -> None:
    """Fails when Keras adds a loss name: add it to its task list above."""
    known = {*TASKS, *BATCH_LEVEL, *NOT_LOSSES}
    assert set(ALL_OBJECTS_DICT) == known


@pytest.mark.parametrize("name", sorted(TASKS))
def test_gradients_of_a_keras_loss_name_match_keras(name: str) -> None:
    net, x, y = build_net(TASKS[name])
    model = TensorflowModel(net, name)
    grads = model.compute_batch_gradients((x, y, None)).pack()

    oracle, _, _ = build_net(TASKS[name])
    oracle.compile(loss=name, optimizer=keras.optimizers.SGD(learning_rate=1.0))
    before = [v.numpy().copy() for v in oracle.weights]
    oracle.train_on_batch(x, y)
    for (key, grad), old, var in zip(grads.items(), before, oracle.weights, strict=True):
        expected = old - var.numpy()
        scale = max(1.0, float(np.max(np.abs(expected))))
        np.testing.assert_allclose(grad, expected, rtol=1e-4, atol=1e-5 * scale, err_msg=key)


@pytest.mark.parametrize("name", BATCH_LEVEL)
def test_batch_level_keras_losses_are_refused_with_the_fix(name: str) -> None:
    net, x, y = build_net("binary")
    model = TensorflowModel(net, name)
    with pytest.raises(ValueError, match="Dice\\(axis=-1\\)"):
        model.compute_batch_gradients((x, y, None))


def test_binary_labels_of_rank_one_give_sample_wise_losses() -> None:
    net, x, y = build_net("binary")
    for name in ("binary_crossentropy", "hinge", "squared_hinge", "poisson"):
        model = TensorflowModel(net, name)
        y_true, y_pred, _ = model.compute_batch_predictions((x, y, None))
        assert model.loss_function(y_true, y_pred).shape == (N,), name


def test_build_keras_loss_prefers_the_loss_class_of_a_function_name() -> None:
    loss = build_keras_loss("binary_crossentropy", "sum")
    assert isinstance(loss, keras.losses.BinaryCrossentropy)
    assert loss.reduction == "sum"
    wrapped = build_keras_loss(keras.losses.mean_squared_error)
    assert wrapped.loss_fn is keras.losses.mean_squared_error and wrapped.reduction == "none"
    user = keras.losses.Hinge()
    assert build_keras_loss(user) is not user and user.reduction == "sum_over_batch_size"

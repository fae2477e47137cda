"""TorchModel specifics: buffers, loss handling, inputs, autograd agreement, zero-copy."""

from __future__ import annotations

import json
from collections.abc import Iterator

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from flwr_declearn.model.torch import TorchModel, TorchVector  # noqa: E402


@pytest.fixture(autouse=True)
def single_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def data(n: int = 16, dtype: str = "float32") -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.normal(size=(n, 5)).astype(dtype), rng.integers(0, 3, size=n)


def mlp(batch_norm: bool = False) -> torch.nn.Module:
    torch.manual_seed(0)
    layers = [torch.nn.Linear(5, 8)]
    if batch_norm:
        layers.append(torch.nn.BatchNorm1d(8))
    layers += [torch.nn.Tanh(), torch.nn.Linear(8, 3)]
    return torch.nn.Sequential(*layers)


def test_buffers_are_non_trainable_weights_updated_by_training() -> None:
    model = TorchModel(mlp(batch_norm=True), torch.nn.CrossEntropyLoss())
    weights = model.get_weights()
    trainable = model.get_weights(trainable=True)
    buffers = {"1.running_mean", "1.running_var", "1.num_batches_tracked"}
    assert buffers <= set(weights.coefs)
    assert not buffers & set(trainable.coefs)
    assert {"1.weight", "1.bias"} <= set(trainable.coefs)
    x, y = data()
    grads = model.compute_batch_gradients((x, y, None))
    assert set(grads.coefs) == set(trainable.coefs)
    after = model.get_weights()
    assert not torch.equal(after.coefs["1.running_mean"], weights.coefs["1.running_mean"])
    assert int(after.coefs["1.num_batches_tracked"]) == 1
    model.set_weights(weights)  # restores buffers too
    assert torch.equal(model.get_weights().coefs["1.running_mean"], weights.coefs["1.running_mean"])


def test_predictions_use_eval_mode_and_restore_training_mode() -> None:
    net = mlp(batch_norm=True)
    model = TorchModel(net, torch.nn.CrossEntropyLoss())
    x, y = data()
    before = model.get_weights().coefs["1.running_mean"].clone()
    _, y_pred, _ = model.compute_batch_predictions((x, y, None))
    assert torch.equal(model.get_weights().coefs["1.running_mean"], before)  # eval: no update
    assert net.training
    net.eval()
    with torch.no_grad():
        expected = net(torch.from_numpy(x)).numpy()
    net.train()
    np.testing.assert_allclose(y_pred, expected, rtol=1e-6)


def test_loss_module_is_copied_with_reduction_none() -> None:
    loss = torch.nn.CrossEntropyLoss()
    model = TorchModel(mlp(), loss)
    assert loss.reduction == "mean"  # the user's object is untouched
    x, y = data(n=6)
    _, y_pred, _ = model.compute_batch_predictions((x, y, None))
    assert model.loss_function(y, y_pred).shape == (6,)


def test_loss_function_may_be_a_plain_callable() -> None:
    def xent(y_pred: torch.Tensor, y_true: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.cross_entropy(y_pred, y_true, reduction="none")

    ref = TorchModel(mlp(), torch.nn.CrossEntropyLoss())
    model = TorchModel(mlp(), xent)
    x, y = data()
    for key, val in ref.compute_batch_gradients((x, y, None)).coefs.items():
        torch.testing.assert_close(model.compute_batch_gradients((x, y, None)).coefs[key], val)


def test_scalar_loss_is_rejected() -> None:
    model = TorchModel(mlp(), lambda y_pred, y_true: ((y_pred - 0.0) ** 2).mean())
    x, y = data()
    with pytest.raises(ValueError, match="sample-wise"):
        model.compute_batch_gradients((x, y, None))


def test_multi_dimensional_losses_are_averaged_per_sample() -> None:
    net = torch.nn.Linear(5, 4)
    model = TorchModel(net, torch.nn.MSELoss())
    x = np.ones((3, 5), dtype="float32")
    y = np.zeros((3, 4), dtype="float32")
    y_true, y_pred, _ = model.compute_batch_predictions((x, y, None))
    np.testing.assert_allclose(model.loss_function(y_true, y_pred), (y_pred**2).mean(axis=1))


def test_gradients_equal_plain_autograd_and_are_handed_over_without_copies() -> None:
    net = mlp()
    model = TorchModel(net, torch.nn.CrossEntropyLoss())
    x, y = data()
    grads = model.compute_batch_gradients((x, y, None))
    assert all(param.grad is None for param in net.parameters())  # handed over, not kept
    reference = mlp()
    loss = torch.nn.functional.cross_entropy(reference(torch.from_numpy(x)), torch.from_numpy(y))
    loss.backward()
    for name, param in reference.named_parameters():
        torch.testing.assert_close(grads.coefs[name], param.grad)


def test_apply_updates_keeps_parameter_objects() -> None:
    net = mlp()
    params = list(net.parameters())
    model = TorchModel(net, torch.nn.CrossEntropyLoss())
    x, y = data()
    grads = model.compute_batch_gradients((x, y, None))
    model.apply_updates(grads * -0.1)
    model.set_weights(model.get_weights())
    assert all(a is b for a, b in zip(params, net.parameters(), strict=True))


def test_float64_inputs_are_cast_to_the_model_dtype() -> None:
    model = TorchModel(mlp(), torch.nn.CrossEntropyLoss())
    x, y = data(dtype="float64")
    grads = model.compute_batch_gradients((x, y, np.ones(len(x))))
    assert set(grads.dtypes().values()) == {"float32"}
    assert model.compute_batch_predictions((x, y, None))[1].dtype == np.float32


def test_tensor_batches_and_several_inputs_are_accepted() -> None:
    class TwoInputs(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a = torch.nn.Linear(5, 3)
            self.b = torch.nn.Linear(2, 3)

        def forward(self, x_a: torch.Tensor, x_b: torch.Tensor) -> torch.Tensor:
            return self.a(x_a) + self.b(x_b)

    model = TorchModel(TwoInputs(), torch.nn.CrossEntropyLoss())
    x, y = data(n=4)
    x_b = torch.ones(4, 2)
    grads = model.compute_batch_gradients(([torch.from_numpy(x), x_b], torch.from_numpy(y), None))
    assert set(grads.coefs) == {"a.weight", "a.bias", "b.weight", "b.bias"}
    clipped = model.compute_batch_gradients(([x, x_b.numpy()], y, None), max_norm=0.1)
    assert clipped.norm() <= 0.1 + 1e-6


def test_per_sample_clipping_supports_dropout() -> None:
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(5, 16), torch.nn.Dropout(0.5), torch.nn.Linear(16, 3))
    model = TorchModel(net, torch.nn.CrossEntropyLoss())
    x, y = data()
    grads = model.compute_batch_gradients((x, y, None), max_norm=0.05)
    assert grads.norm() <= 0.05 + 1e-6


def test_get_config_refuses_unpicklable_losses() -> None:
    model = TorchModel(mlp(), lambda y_pred, y_true: (y_pred - y_true) ** 2)
    with pytest.raises(TypeError, match="module level"):
        model.get_config()


def test_config_round_trip_keeps_frozen_parameters() -> None:
    net = mlp()
    net[0].requires_grad_(False)
    model = TorchModel(net, torch.nn.CrossEntropyLoss())
    config = json.loads(json.dumps(model.get_config()))
    assert config["serialization"] == "pickle"
    rebuilt = TorchModel.from_config(config, allow_pickle=True)
    assert set(rebuilt.get_weights(trainable=True).coefs) == {"2.weight", "2.bias"}
    assert rebuilt.get_weights() == model.get_weights()


def test_rejects_non_module_models_and_wrong_update_types() -> None:
    with pytest.raises(TypeError, match=r"torch\.nn\.Module"):
        TorchModel(lambda x: x, torch.nn.CrossEntropyLoss())  # type: ignore[arg-type]
    model = TorchModel(mlp(), torch.nn.CrossEntropyLoss())
    with pytest.raises(TypeError, match="TorchVector"):
        model.apply_updates({"0.weight": torch.zeros(8, 5)})  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="inputs, y_true, s_wght"):
        model.compute_batch_gradients(data())  # type: ignore[arg-type]
    assert isinstance(model.compute_batch_gradients((*data(), None)), TorchVector)


def test_per_sample_clipping_explains_batch_norm_failures() -> None:
    model = TorchModel(mlp(batch_norm=True), torch.nn.CrossEntropyLoss())
    x, y = data()
    with pytest.raises(ValueError, match="batch normalization"):
        model.compute_batch_gradients((x, y, None), max_norm=1.0)

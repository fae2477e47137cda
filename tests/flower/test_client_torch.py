"""The Flower layer with the real TorchModel and the real optimizer modules."""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import pytest
from flwr.client import NumPyClient
from flwr.common import NDArrays, Scalar, ndarrays_to_parameters, parameters_to_ndarrays
from flwr.server import SimpleClientManager
from flwr.server.strategy import FedAvg
from sklearn.datasets import load_digits

from flwr_declearn.data import InMemoryDataset
from flwr_declearn.flower import DeclearnClient, DeclearnStrategy, ModelEvaluator, wire
from flwr_declearn.model.numpy import NumpyVector
from flwr_declearn.optimizer import Optimizer

from .conftest import LocalClientProxy, make_context, run_legacy

torch = pytest.importorskip("torch")
from flwr_declearn.model.torch import TorchModel, TorchVector  # noqa: E402

N_CLIENTS = 3
BATCH, STEPS, LRATE = 16, 6, 0.1


@pytest.fixture(scope="module")
def digits() -> list[tuple[np.ndarray, np.ndarray]]:
    inputs, labels = load_digits(return_X_y=True)
    inputs = (inputs / 16.0).astype(np.float32)
    order = np.argsort(labels, kind="stable")  # label-sorted: non-IID shards
    shards = np.array_split(order[:360], N_CLIENTS)
    return [(inputs[idx], labels[idx].astype(np.int64)) for idx in shards]


@pytest.fixture(scope="module")
def template() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.ReLU(), torch.nn.Linear(32, 10))


def torch_model(template: torch.nn.Module) -> TorchModel:
    return TorchModel(copy.deepcopy(template), torch.nn.CrossEntropyLoss())


def declearn_proxies(
    template: torch.nn.Module, digits: list[tuple[np.ndarray, np.ndarray]]
) -> list[LocalClientProxy]:
    def client_fn_for(index: int) -> Any:
        def client_fn(context: Any) -> DeclearnClient:
            inputs, labels = digits[index]
            data = InMemoryDataset(inputs, labels, seed=index)
            return DeclearnClient(torch_model(template), data, context)

        return client_fn

    return [
        LocalClientProxy(str(i + 1), client_fn_for(i), make_context(i + 1, i))
        for i in range(N_CLIENTS)
    ]


def make_strategy(template: torch.nn.Module, **kwargs: Any) -> DeclearnStrategy:
    options = {
        "model": torch_model(template),
        "client_optimizer": Optimizer(LRATE),
        "train_config": {"batch_size": BATCH, "n_steps": STEPS, "shuffle": False},
        "min_fit_clients": N_CLIENTS,
        "min_evaluate_clients": N_CLIENTS,
        "min_available_clients": N_CLIENTS,
        "fraction_evaluate": 0.0,
        **kwargs,
    }
    return DeclearnStrategy(**options)


class TorchSGDClient(NumPyClient):
    """A plain Flower client with torch.optim.SGD (state_dict order), optionally FedProx."""

    def __init__(
        self, template: torch.nn.Module, data: tuple[np.ndarray, np.ndarray], mu: float = 0.0
    ) -> None:
        self.net = copy.deepcopy(template)
        self.data = data
        self.mu = mu

    def fit(self, parameters: NDArrays, config: dict[str, Scalar]) -> Any:
        state = self.net.state_dict()
        self.net.load_state_dict(
            {k: torch.from_numpy(np.array(v)) for k, v in zip(state, parameters, strict=True)}
        )
        start = [p.detach().clone() for p in self.net.parameters()]
        optim = torch.optim.SGD(self.net.parameters(), lr=LRATE)
        inputs, labels = self.data
        batches = [
            (inputs[i : i + BATCH], labels[i : i + BATCH]) for i in range(0, len(inputs), BATCH)
        ]
        for step in range(STEPS):
            x, y = batches[step % len(batches)]
            optim.zero_grad()
            loss = torch.nn.functional.cross_entropy(
                self.net(torch.from_numpy(x)), torch.from_numpy(y)
            )
            if self.mu:
                prox = sum(
                    ((p - s) ** 2).sum() for p, s in zip(self.net.parameters(), start, strict=True)
                )
                loss = loss + self.mu / 2 * prox
            loss.backward()
            optim.step()
        return [v.detach().numpy() for v in self.net.state_dict().values()], len(inputs), {}


def test_fedavg_with_torch_clients_matches_flowers_fedavg_with_torch_optim(
    template: torch.nn.Module, digits: list[tuple[np.ndarray, np.ndarray]]
) -> None:
    ours = make_strategy(template)
    run_legacy(ours, declearn_proxies(template, digits), num_rounds=3)

    baseline = FedAvg(min_fit_clients=N_CLIENTS, min_available_clients=N_CLIENTS)
    manager = SimpleClientManager()
    for i in range(N_CLIENTS):
        manager.register(
            LocalClientProxy(
                str(i + 1),
                lambda ctx, i=i: TorchSGDClient(template, digits[i]),
                make_context(i + 1),
            )
        )
    names = list(template.state_dict())
    params = ndarrays_to_parameters([v.numpy() for v in template.state_dict().values()])
    for rnd in range(1, 4):
        instructions = baseline.configure_fit(rnd, params, manager)
        results = [(proxy, proxy.fit(ins, None, None)) for proxy, ins in instructions]
        params = baseline.aggregate_fit(rnd, results, [])[0]
    for name, exp in zip(names, parameters_to_ndarrays(params), strict=True):
        np.testing.assert_allclose(ours.global_weights[name], exp, rtol=0, atol=1e-6)
    moved = ours.global_weights["2.bias"] - template.state_dict()["2.bias"].numpy()
    assert np.abs(moved).max() > 1e-3


def test_fedprox_client_matches_a_proximal_torch_loss(
    template: torch.nn.Module, digits: list[tuple[np.ndarray, np.ndarray]]
) -> None:
    mu = 0.5
    optim = Optimizer(LRATE, regularizers=[("fedprox", {"alpha": mu})])
    client = DeclearnClient(torch_model(template), InMemoryDataset(*digits[0]), make_context(1))
    start = wire.vector_to_ndarrays(client.model.get_weights())
    config = {
        wire.KEY_OPTIMIZER: wire.encode(optim.get_config()),
        wire.KEY_TRAIN_CONFIG: wire.encode(
            {"batch_size": BATCH, "n_steps": STEPS, "shuffle": False}
        ),
    }
    start = [a + np.float32(0.01) for a in start]  # a global model that is not the template
    ours, _, _ = client.fit(start, config)
    names = wire.weight_names(client.model.get_weights())
    plain = TorchSGDClient(template, digits[0], mu=mu)
    by_name = dict(zip(names, start, strict=True))
    theirs, _, _ = plain.fit([by_name[k] for k in template.state_dict()], {})
    expected = dict(zip(template.state_dict(), theirs, strict=True))
    for name, got in zip(names, ours, strict=True):
        np.testing.assert_allclose(got, expected[name], rtol=0, atol=1e-6)
    without_prox, _, _ = DeclearnClient(
        torch_model(template), InMemoryDataset(*digits[0]), make_context(2)
    ).fit(start, {**config, wire.KEY_OPTIMIZER: wire.encode(Optimizer(LRATE).get_config())})
    assert not np.allclose(without_prox[0], ours[0], atol=1e-6)


def test_scaffold_with_server_adam_on_torch_models_learns_and_keeps_client_state(
    template: torch.nn.Module, digits: list[tuple[np.ndarray, np.ndarray]]
) -> None:
    inputs = np.concatenate([x for x, _ in digits])
    labels = np.concatenate([y for _, y in digits])
    evaluator = ModelEvaluator(torch_model(template), InMemoryDataset(inputs, labels))
    strategy = make_strategy(
        template,
        client_optimizer=Optimizer(LRATE, modules=["scaffold-client"]),
        server_optimizer=Optimizer(0.05, modules=["scaffold-server", ("adam", {"beta_2": 0.99})]),
        train_config={"batch_size": BATCH, "n_epochs": 2},
        evaluate_fn=evaluator,
    )
    proxies = declearn_proxies(template, digits)
    history = run_legacy(strategy, proxies, num_rounds=4)
    accuracy = [acc for _, acc in history.metrics_centralized["accuracy"]]
    assert accuracy[-1] > 0.8 and accuracy[-1] > accuracy[0] + 0.5
    server = strategy.core.server_optimizer.modules[0]
    assert isinstance(server.s_state, NumpyVector)  # the server works on numpy
    for proxy in proxies:
        record = proxy.context.state["declearn.client"]
        state = wire.decode(record["optimizer_state"], TorchVector)
        c_i = state["modules"][0][1]["state"]
        assert isinstance(c_i, TorchVector)  # a torch client decodes into torch tensors
        assert sorted(c_i.coefs) == sorted(n for n, _ in template.named_parameters())


@pytest.mark.gpu
def test_a_gpu_client_trains_on_gpu_and_keeps_its_scaffold_state_there(
    template: torch.nn.Module, digits: list[tuple[np.ndarray, np.ndarray]]
) -> None:
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    from flwr_declearn.utils import get_device_policy, set_device_policy

    previous = get_device_policy()
    set_device_policy(gpu=True)
    try:
        context = make_context(1)
        client = DeclearnClient(torch_model(template), InMemoryDataset(*digits[0]), context)
        assert client.model.device_policy.gpu
        state = NumpyVector({n: np.full(s, 0.01, d) for n, (s, d) in client.specs.items()})
        config = {
            wire.KEY_OPTIMIZER: wire.encode(
                Optimizer(LRATE, modules=["scaffold-client"]).get_config()
            ),
            wire.KEY_TRAIN_CONFIG: wire.encode({"batch_size": BATCH, "n_steps": STEPS}),
            wire.KEY_AUX_VAR: wire.encode({"scaffold": {"state": state}}),
        }
        start = wire.vector_to_ndarrays(client.model.get_weights())
        new, _, metrics = client.fit(start, config)
        assert all(isinstance(arr, np.ndarray) for arr in new)
        delta = wire.decode(metrics[wire.KEY_AUX_VAR])["scaffold"]["delta"]
        assert isinstance(delta, NumpyVector)  # what the server sees
        saved = wire.decode(context.state["declearn.client"]["optimizer_state"], TorchVector)
        c_i = saved["modules"][0][1]["state"]
        assert all(t.device.type == "cuda" for t in c_i.coefs.values())
    finally:
        set_device_policy(gpu=previous.gpu, idx=previous.idx)

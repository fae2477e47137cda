"""torch, Keras, haiku and plain-JAX clients of one MLP train together (Ray simulation).

Four SuperNodes on Flower's Ray simulation engine, digits with a non-IID
split (the quickstart example's data), SCAFFOLD clients and a server Adam
after the SCAFFOLD server module. Two experiments run in ONE simulation
(starting Ray is the costly part), one after the other on the same nodes:
every node a torch client, then node i a torch / Keras / haiku / JAX client.
All models use canonical weight names, so they exchange identically named and
shaped weights and SCAFFOLD states. A Flower mod gives each experiment its own
namespace of the node's `context.state` (SCAFFOLD's client state).
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("tensorflow")
pytest.importorskip("haiku")
pytest.importorskip("optax")
pytest.importorskip("sklearn")
pytest.importorskip("ray")

from flwr.app import ConfigRecord, Context, Message, RecordDict
from flwr.clientapp.typing import ClientAppCallable
from flwr.serverapp import Grid, ServerApp

from flwr_declearn.flower import (
    DeclearnClient,
    DeclearnMessageStrategy,
    ModelEvaluator,
    make_client_app,
)
from flwr_declearn.model.api import Model
from flwr_declearn.optimizer import Optimizer
from tests._quickstart import SEED, load_splits, node_dataset, simulate

pytestmark = pytest.mark.slow

N_CLIENTS = 4
ROUNDS = 6
HIDDEN = 32
EXPERIMENT_KEY = "mixed.experiment"
FRAMEWORKS = ("torch", "keras", "haiku", "jax")  # node partition i runs FRAMEWORKS[i]
_current = {"experiment": "", "framework": ""}  # shared by the mod and client_fn (one process)
FRAMEWORK_KEY = "mixed.framework"


# -- one MLP (64-32-10, ReLU) in four frameworks, canonically named ------------------------------


def torch_model() -> Model:
    import torch

    from flwr_declearn.model.torch import TorchModel

    torch.set_num_threads(1)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(SEED)
        net = torch.nn.Sequential(
            torch.nn.Linear(64, HIDDEN), torch.nn.ReLU(), torch.nn.Linear(HIDDEN, 10)
        )
    return TorchModel(net, torch.nn.CrossEntropyLoss(), canonical_names=True)


def keras_model() -> Model:
    import keras

    from flwr_declearn.model.tensorflow import TensorflowModel

    net = keras.Sequential(
        [
            keras.Input((64,)),
            keras.layers.Dense(HIDDEN, activation="relu"),
            keras.layers.Dense(10),
        ]
    )
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    return TensorflowModel(net, loss, canonical_names=True)


def xent(y_pred: Any, y_true: Any) -> Any:
    import optax

    return optax.softmax_cross_entropy_with_integer_labels(y_pred, y_true)


def haiku_mlp(inputs: Any) -> Any:
    import haiku as hk
    import jax

    return hk.nets.MLP([HIDDEN, 10], activation=jax.nn.relu)(inputs)


def haiku_model() -> Model:
    from flwr_declearn.model.haiku import HaikuModel

    model = HaikuModel(haiku_mlp, xent, seed=SEED, canonical_names=True)
    model.initialize({"features_shape": [64], "data_type": "float32"})
    return model


def jax_mlp(params: Any, inputs: Any) -> Any:
    import jax

    hidden = jax.nn.relu(inputs @ params["hidden"]["w"] + params["hidden"]["b"])
    return hidden @ params["out"]["w"] + params["out"]["b"]


def jax_model() -> Model:
    from flwr_declearn.model.jax import JaxModel

    zeros = {
        "hidden": {"w": np.zeros((64, HIDDEN), "float32"), "b": np.zeros(HIDDEN, "float32")},
        "out": {"w": np.zeros((HIDDEN, 10), "float32"), "b": np.zeros(10, "float32")},
    }  # the server's initial weights replace these in round 1
    return JaxModel(jax_mlp, zeros, xent, canonical_names=True)


BUILDERS = {"torch": torch_model, "keras": keras_model, "haiku": haiku_model, "jax": jax_model}


# -- client side ---------------------------------------------------------------------------------


def client_fn(context: Context) -> DeclearnClient:
    """This node's client: torch in the "torch" experiment, FRAMEWORKS[partition] otherwise."""
    partition_id = int(context.node_config["partition-id"])
    framework = "torch" if _current["experiment"] == "torch" else FRAMEWORKS[partition_id]
    _current["framework"] = framework
    return DeclearnClient(BUILDERS[framework](), node_dataset(context), context)


def experiment_namespace(
    message: Message, context: Context, call_next: ClientAppCallable
) -> Message:
    """Flower mod: run the message in its experiment's namespace of the node state."""
    name = ""
    for record in message.content.config_records.values():
        name = str(record.get(EXPERIMENT_KEY, name))
    prefix = f"{name}:"
    state = RecordDict(
        {k[len(prefix) :]: v for k, v in context.state.items() if k.startswith(prefix)}
    )
    sub = Context(context.run_id, context.node_id, context.node_config, state, context.run_config)
    _current["experiment"] = name
    reply = call_next(message, sub)
    for key, value in sub.state.items():
        context.state[f"{prefix}{key}"] = value
    if not reply.has_error():
        reply.content[FRAMEWORK_KEY] = ConfigRecord({"name": _current["framework"]})
    return reply


# -- server side ---------------------------------------------------------------------------------


@dataclasses.dataclass
class Record:
    accuracy: dict[str, dict[int, float]] = dataclasses.field(default_factory=dict)
    errors: list[str] = dataclasses.field(default_factory=list)
    frameworks: dict[str, set[str]] = dataclasses.field(default_factory=dict)


class RecordingStrategy(DeclearnMessageStrategy):
    def __init__(self, record: Record, name: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.record, self.name = record, name

    def aggregate_train(self, server_round: int, replies: Any) -> Any:
        replies = list(replies)
        self.record.errors += [
            f"{self.name} round {server_round}: {msg.error.reason}"
            for msg in replies
            if msg.has_error()
        ]
        used = self.record.frameworks.setdefault(self.name, set())
        for msg in replies:
            if not msg.has_error():
                used.add(str(msg.content.config_records[FRAMEWORK_KEY]["name"]))
                del msg.content[FRAMEWORK_KEY]
        return super().aggregate_train(server_round, replies)


def make_strategy(record: Record, name: str) -> RecordingStrategy:
    evaluator = ModelEvaluator(torch_model(), load_splits(SEED)[1])
    accuracy = record.accuracy.setdefault(name, {})

    def evaluate(server_round: int, weights: dict[str, np.ndarray]) -> Any:
        loss, metrics = evaluator(server_round, weights)
        accuracy[server_round] = float(metrics["accuracy"])
        return loss, metrics

    return RecordingStrategy(
        record,
        name,
        model=torch_model(),
        client_optimizer={"lrate": 0.2, "modules": [["scaffold-client", {}]]},
        server_optimizer=Optimizer(lrate=0.05, modules=["scaffold-server", "adam"]),
        train_config={"batch_size": 32, "n_steps": 20},
        fraction_evaluate=0.0,
        min_train_nodes=N_CLIENTS,
        min_available_nodes=N_CLIENTS,
        evaluate_fn=evaluate,
    )


@pytest.fixture(scope="module")
def record() -> Record:
    out = Record()
    server_app = ServerApp()

    @server_app.main()
    def main(grid: Grid, context: Context) -> None:
        for name in ("torch", "mixed"):
            make_strategy(out, name).start(
                grid, num_rounds=ROUNDS, train_config=ConfigRecord({EXPERIMENT_KEY: name})
            )

    start = time.perf_counter()
    simulate(server_app, make_client_app(client_fn, mods=[experiment_namespace]), N_CLIENTS)
    curves = {k: [round(v[r], 3) for r in sorted(v)] for k, v in out.accuracy.items()}
    print(f"\nsimulation: {time.perf_counter() - start:.1f}s, accuracy by round {curves}")
    return out


def test_mixed_framework_clients_train_without_errors(record: Record) -> None:
    assert record.errors == []
    assert record.frameworks == {"torch": {"torch"}, "mixed": set(FRAMEWORKS)}
    assert sorted(record.accuracy["mixed"]) == list(range(ROUNDS + 1))


def test_mixed_federation_reaches_the_all_torch_accuracy(record: Record) -> None:
    torch_acc = record.accuracy["torch"][ROUNDS]
    mixed_acc = record.accuracy["mixed"][ROUNDS]
    assert torch_acc >= 0.8, record.accuracy
    assert abs(mixed_acc - torch_acc) <= 0.02, record.accuracy

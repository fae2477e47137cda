"""The ClientApp / ServerApp factories run the same algorithm on Flower's Message API."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pytest
from flwr.app import ArrayRecord, ConfigRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp
from flwr.serverapp.strategy import FedAvg

from flwr_declearn.flower import (
    DeclearnClient,
    DeclearnMessageStrategy,
    DeclearnStrategy,
    ModelEvaluator,
    make_client_app,
    make_server_app,
    wire,
)
from flwr_declearn.flower._records import arrays_to_record, record_to_arrays
from flwr_declearn.optimizer import Optimizer

from .conftest import LinearModel, LocalGrid, make_context, regression_data, server_context

N_NODES = 3
TRAIN = {"batch_size": 8, "n_steps": 5, "shuffle": False}


def client_fn(context: Context) -> DeclearnClient:
    index = int(context.node_config["partition-id"])
    if context.run_config.get("broken-node") == context.node_id:
        raise RuntimeError(f"node {context.node_id} has no data")
    data = regression_data(20 + 10 * index, seed=index, shift=float(index))
    return DeclearnClient(
        LinearModel(3), data, context, optimizer=Optimizer(0.05), train_config=TRAIN
    )


def make_grid(**run_config: Any) -> LocalGrid:
    contexts = {node: make_context(node, node - 1, **run_config) for node in range(1, N_NODES + 1)}
    return LocalGrid(make_client_app(client_fn), contexts)


def scaffold_kwargs() -> dict[str, Any]:
    return {
        "model": LinearModel(3),
        "client_optimizer": Optimizer(0.05, modules=["scaffold-client"]),
        "server_optimizer": Optimizer(1.0, modules=["scaffold-server"]),
        "train_config": TRAIN,
    }


def message_strategy(**kwargs: Any) -> DeclearnMessageStrategy:
    options = {
        "min_train_nodes": N_NODES,
        "min_evaluate_nodes": N_NODES,
        "min_available_nodes": N_NODES,
        **scaffold_kwargs(),
        **kwargs,
    }
    return DeclearnMessageStrategy(**options)


def legacy_strategy(**kwargs: Any) -> DeclearnStrategy:
    options = {
        "min_fit_clients": N_NODES,
        "min_evaluate_clients": N_NODES,
        "min_available_clients": N_NODES,
        **scaffold_kwargs(),
        **kwargs,
    }
    return DeclearnStrategy(**options)


def run_server_app(strategy: Any, grid: LocalGrid, rounds: int = 3) -> Any:
    app = make_server_app(lambda _: strategy)
    app(grid, server_context(**{"num-server-rounds": rounds}))
    return strategy


def test_message_and_legacy_strategies_train_the_same_model_through_apps() -> None:
    message_grid, legacy_grid = make_grid(), make_grid()
    via_messages = run_server_app(message_strategy(), message_grid)
    via_legacy = run_server_app(legacy_strategy(), legacy_grid)
    assert "fitins.parameters" in legacy_grid.sent[0].content  # Flower's compatibility layer
    assert "arrays" in message_grid.sent[0].content
    assert via_messages.core.server_round == via_legacy.core.server_round == 3
    for name, value in via_legacy.global_weights.items():
        np.testing.assert_allclose(via_messages.global_weights[name], value, atol=1e-12)
    assert np.abs(value).max() > 0.1  # the weights did move
    scaffold = via_messages.core.server_optimizer.modules[0]
    assert scaffold.clients == {"1", "2", "3"}  # client ids are str(node_id)


def test_train_messages_carry_named_arrays_and_per_node_configs() -> None:
    grid = make_grid()
    run_server_app(message_strategy(), grid, rounds=2)
    train = [msg for msg in grid.sent if msg.metadata.message_type == "train"]
    assert len(train) == 2 * N_NODES
    configs = [msg.content["config"] for msg in train]
    assert all(isinstance(cfg, ConfigRecord) for cfg in configs)
    assert sorted(train[0].content["arrays"].keys()) == ["bias", "kernel"]
    assert [cfg[wire.KEY_ROUND] for cfg in configs] == [1] * N_NODES + [2] * N_NODES
    second_round_aux = [wire.decode(cfg[wire.KEY_AUX_VAR]) for cfg in configs[N_NODES:]]
    assert all(set(aux) == {"scaffold"} for aux in second_round_aux)


def test_client_state_persists_in_each_nodes_context() -> None:
    grid = make_grid()
    run_server_app(message_strategy(), grid, rounds=2)
    for context in grid.contexts.values():
        state = wire.decode(context.state["declearn.client"]["optimizer_state"])
        assert state["modules"][0][0] == "scaffold-client"
        assert state["modules"][0][1]["state"] is not None


def test_failed_nodes_are_skipped_and_training_goes_on(caplog: pytest.LogCaptureFixture) -> None:
    grid = make_grid(**{"broken-node": 2})
    strategy = message_strategy(min_train_nodes=2, min_evaluate_nodes=2)
    with caplog.at_level(logging.WARNING, logger="flwr"):
        run_server_app(strategy, grid, rounds=2)
    assert strategy.core.server_round == 2
    assert "node 2 failed" in caplog.text and "node 2 has no data" in caplog.text
    assert strategy.core.server_optimizer.modules[0].clients == {"1", "3"}


def test_malformed_replies_are_skipped(caplog: pytest.LogCaptureFixture) -> None:
    strategy = message_strategy()
    good = Message(RecordDict(), dst_node_id=1, message_type="train")
    replies = []
    for node, content in {
        1: RecordDict({"metrics": MetricRecord({"num-examples": 3})}),
        2: RecordDict(
            {
                "arrays": arrays_to_record({"w": np.zeros(2)}),
                "metrics": MetricRecord({"num-examples": 3}),
            }
        ),
        3: RecordDict(
            {"arrays": arrays_to_record(strategy.global_weights), "metrics": ConfigRecord()}
        ),
    }.items():
        msg = Message(content, reply_to=good)
        msg.metadata.__dict__["_src_node_id"] = node
        replies.append(msg)
    with caplog.at_level(logging.WARNING, logger="flwr"):
        arrays, metrics = strategy.aggregate_train(1, replies)
    assert arrays is None and metrics is None
    assert "holds no 'arrays' record" in caplog.text
    assert "Weight names do not match the model" in caplog.text
    assert "must be a MetricRecord, not ConfigRecord" in caplog.text


def test_the_client_app_also_serves_flowers_own_fedavg() -> None:
    ours = run_server_app(
        message_strategy(
            model=LinearModel(3), client_optimizer=Optimizer(0.05), server_optimizer=None
        ),
        make_grid(),
    )
    grid = make_grid()
    fedavg = FedAvg(
        min_train_nodes=N_NODES, min_evaluate_nodes=N_NODES, min_available_nodes=N_NODES
    )
    start = arrays_to_record(LinearModel(3).get_weights().pack())
    result = fedavg.start(grid, start, num_rounds=3)
    final = result.arrays.to_numpy_ndarrays()
    names = list(result.arrays.keys())
    for name, value in zip(names, final, strict=True):
        np.testing.assert_allclose(ours.global_weights[name], value, atol=1e-12)


def test_server_side_evaluation_with_a_model_evaluator() -> None:
    evaluator = ModelEvaluator(LinearModel(3), regression_data(30, seed=9))
    strategy = message_strategy(evaluate_fn=evaluator)
    result = strategy.start(make_grid(), num_rounds=2)
    losses = [result.evaluate_metrics_serverapp[rnd]["loss"] for rnd in (0, 1, 2)]
    assert losses[2] < losses[0]
    client_eval = result.evaluate_metrics_clientapp[2]
    assert set(client_eval) == {"loss"}
    assert result.train_metrics_clientapp[2]["n_steps"] == pytest.approx(5.0)


def test_message_strategy_checkpoints_and_resumes(tmp_path: Any) -> None:
    straight = message_strategy()
    grid = make_grid()
    straight.start(grid, num_rounds=3)
    path = tmp_path / "server.npz"
    first = message_strategy(checkpoint_path=path)
    grid2 = make_grid()
    first.start(grid2, num_rounds=2)
    second = message_strategy()
    second.load_checkpoint(path)
    second.start(grid2, num_rounds=1)
    assert second.core.server_round == 3
    for name, value in straight.global_weights.items():
        np.testing.assert_allclose(second.global_weights[name], value, atol=1e-12)


def test_server_app_needs_a_declearn_strategy() -> None:
    app = make_server_app(lambda _: FedAvg())  # type: ignore[arg-type,return-value]
    with pytest.raises(
        TypeError, match="must return a DeclearnMessageStrategy or a DeclearnStrategy"
    ):
        app(make_grid(), server_context())


def test_weights_sent_as_arrays_keep_names_shapes_and_dtypes() -> None:
    record = arrays_to_record({"a": np.arange(3, dtype=np.int64), "b": np.ones((2, 2), np.float16)})
    assert isinstance(record, ArrayRecord)
    back = record_to_arrays(record)
    assert back["a"].dtype == np.int64 and back["b"].shape == (2, 2)


def test_initial_arrays_may_be_flowers_positional_record_in_model_order() -> None:
    start = {"kernel": np.array([[0.5], [-1.0], [2.0]]), "bias": np.array([0.25])}
    by_name = message_strategy()
    by_name.start(make_grid(), initial_arrays=arrays_to_record(start), num_rounds=2)
    positional = message_strategy()
    record = ArrayRecord([start["kernel"], start["bias"]])  # keys "0", "1": model order
    assert list(record.keys()) == ["0", "1"]
    positional.start(make_grid(), initial_arrays=record, num_rounds=2)
    for name, value in by_name.global_weights.items():
        np.testing.assert_array_equal(positional.global_weights[name], value)


def test_a_torch_templates_positional_record_maps_onto_the_state_dict() -> None:
    torch = pytest.importorskip("torch")
    from flwr_declearn.model.torch import TorchModel

    net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
    strategy = message_strategy(model=TorchModel(net, loss=torch.nn.CrossEntropyLoss()))
    record = ArrayRecord([value.numpy() for value in net.state_dict().values()])
    named = strategy._named(record)
    assert list(named.keys()) == list(net.state_dict())
    for name, value in net.state_dict().items():
        np.testing.assert_array_equal(named[name].numpy(), value.numpy())
    assert strategy._named(ArrayRecord(net.state_dict())).keys() == net.state_dict().keys()


@pytest.mark.parametrize(
    ("arrays", "fault"),
    [
        ({"w": np.zeros(3)}, r"got keys \['w'\]"),
        ([np.zeros((3, 1))], "got 1 positional arrays"),
        ([np.zeros((1, 3)), np.zeros(1)], r'shapes differ: "0" \(1, 3\) for kernel \(3, 1\)'),
    ],
)
def test_initial_arrays_that_fit_neither_form_say_what_to_pass(arrays: Any, fault: str) -> None:
    record = arrays_to_record(arrays) if isinstance(arrays, dict) else ArrayRecord(arrays)
    strategy = message_strategy()
    with pytest.raises(ValueError, match=fault) as caught:
        strategy.start(make_grid(), initial_arrays=record, num_rounds=1)
    message = str(caught.value)
    assert "keyed by the model's weight names ['kernel', 'bias']" in message
    assert 'keys "0", "1", ... (ArrayRecord(list_of_ndarrays))' in message
    assert strategy.core.server_round == 0


# -- plain Flower clients (their own training, FedAvg's reply) ---------------------------------

plain_app = ClientApp()


@plain_app.train()
def plain_train(message: Message, context: Context) -> Message:
    """A Flower template's @app.train(): its own local SGD, the weights and "num-examples" back."""
    index = int(context.node_config["partition-id"])
    data = regression_data(20 + 10 * index, seed=index, shift=float(index))
    weights = {name: array.numpy() for name, array in message.content["arrays"].items()}
    lr = float(message.content["config"]["lr"])  # the user's own train_config still arrives
    for inputs, targets, _ in data.generate_batches(8):
        error = inputs @ weights["kernel"] + weights["bias"] - np.reshape(targets, (-1, 1))
        weights["kernel"] = weights["kernel"] - lr * inputs.T @ error / len(error)
        weights["bias"] = weights["bias"] - lr * error.mean(0)
    metrics = MetricRecord({"train_loss": float((error**2).mean()), "num-examples": len(data)})
    return Message(
        RecordDict({"arrays": arrays_to_record(weights), "metrics": metrics}), reply_to=message
    )


def plain_grid() -> LocalGrid:
    contexts = {node: make_context(node, node - 1) for node in range(1, N_NODES + 1)}
    return LocalGrid(plain_app, contexts)


def test_plain_flower_clients_train_under_server_side_modules() -> None:
    start = arrays_to_record(LinearModel(3).get_weights().pack())
    fedavg = FedAvg(min_train_nodes=N_NODES, min_available_nodes=N_NODES, fraction_evaluate=0.0)
    expected = fedavg.start(
        plain_grid(), start, num_rounds=3, train_config=ConfigRecord({"lr": 0.05})
    )
    as_fedavg = message_strategy(
        server_optimizer=None, client_optimizer=Optimizer(0.05), fraction_evaluate=0
    )
    as_fedavg.start(plain_grid(), num_rounds=3, train_config=ConfigRecord({"lr": 0.05}))
    for name, value in record_to_arrays(expected.arrays).items():
        np.testing.assert_allclose(as_fedavg.global_weights[name], value, atol=1e-12)
    adam = message_strategy(
        server_optimizer=Optimizer(0.1, modules=["adam"]),
        client_optimizer=Optimizer(0.05),
        aggregator="median",
        fraction_evaluate=0,
    )
    result = adam.start(plain_grid(), num_rounds=3, train_config=ConfigRecord({"lr": 0.05}))
    assert adam.core.server_round == 3
    assert result.train_metrics_clientapp[3]["train_loss"] > 0
    assert np.abs(adam.global_weights["kernel"]).max() > 0.1


def test_plain_flower_clients_are_refused_by_modules_that_need_client_aux_vars(
    caplog: pytest.LogCaptureFixture,
) -> None:
    strategy = message_strategy(fraction_evaluate=0)  # SCAFFOLD
    with caplog.at_level(logging.WARNING, logger="flwr"):
        strategy.start(plain_grid(), num_rounds=1, train_config=ConfigRecord({"lr": 0.05}))
    assert strategy.core.server_round == 0
    for node in range(1, N_NODES + 1):
        assert f"client {node}: no aux-vars for ['scaffold']" in caplog.text
    assert "flwr_declearn.flower.handle_train" in caplog.text

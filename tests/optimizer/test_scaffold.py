"""SCAFFOLD reaches the global optimum where FedAvg is biased, and matches declearn 2.9.1."""

from __future__ import annotations

import json
import warnings
from typing import Any

import numpy as np
import pytest

from flwr_declearn.model.api import Vector
from flwr_declearn.model.numpy import NumpyVector
from flwr_declearn.optimizer import Optimizer
from flwr_declearn.optimizer.modules import ScaffoldClientModule, ScaffoldServerModule
from flwr_declearn.utils import json_dumps, json_loads

from ._helpers import assert_close, declearn_vector, gradient_sequence, ours, vector_types
from ._models import NumpyLinearModel


def _client_data(seed: int, scale: np.ndarray, optimum: np.ndarray) -> tuple[Any, Any, None]:
    """Least-squares data whose loss is a quadratic with curvature set by `scale`."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(40, 2)) * scale
    return x, x @ optimum[:, None], None


CLIENTS = {
    "client-0": _client_data(0, np.array([3.0, 0.3]), np.array([1.0, -2.0])),
    "client-1": _client_data(1, np.array([0.3, 3.0]), np.array([-3.0, 4.0])),
}


def _global_optimum() -> dict[str, np.ndarray]:
    """Minimizer of the sum of clients' mean squared errors (with a bias term)."""
    rows, targets = [], []
    for x, y, _ in CLIENTS.values():
        design = np.hstack([x, np.ones((len(x), 1))]) / np.sqrt(len(x))
        rows.append(design)
        targets.append(y / np.sqrt(len(x)))
    sol, *_ = np.linalg.lstsq(np.vstack(rows), np.vstack(targets), rcond=None)
    return {"kernel": sol[:2], "bias": sol[2]}


def _federated_training(scaffold: bool, rounds: int, local_steps: int = 10) -> NumpyVector:
    """Run rounds exactly as the Flower layer does, with clients rebuilt every round.

    Server: collect -> split_server_aux_var -> (wire) -> client: set_state, start_round,
    process_aux_var, local steps, collect, get_state -> (wire) -> server:
    process_aux_var(merge_client_aux_var) -> step on the averaged pseudo-gradient.
    """
    server_model = NumpyLinearModel(2, 1, seed=0)
    server_opt = Optimizer(lrate=1.0, modules=["scaffold-server"] if scaffold else [])
    client_config = {"lrate": 0.02, "modules": ["scaffold-client"] if scaffold else []}
    client_states: dict[str, str] = {}
    for _ in range(rounds):
        payloads = Optimizer.split_server_aux_var(server_opt.collect_aux_var(), list(CLIENTS))
        global_weights = server_model.get_weights()
        replies: dict[str, Any] = {}
        updates = []
        for cid, batch in CLIENTS.items():
            model = NumpyLinearModel(2, 1)
            model.set_weights(json_loads(json_dumps(global_weights)))
            optim = Optimizer.from_config(json.loads(json.dumps(client_config)))
            if cid in client_states:
                optim.set_state(json_loads(client_states[cid]))
            optim.start_round()
            optim.process_aux_var(json_loads(json_dumps(payloads[cid])))
            for _ in range(local_steps):
                optim.run_train_step(model, batch)
            replies[cid] = json_loads(json_dumps(optim.collect_aux_var()))
            client_states[cid] = json_dumps(optim.get_state())
            updates.append(model.get_weights() - global_weights)
        server_opt.process_aux_var(Optimizer.merge_client_aux_var(replies))
        pseudo_gradient = -(updates[0] + updates[1]) / 2
        server_opt.apply_gradients(server_model, pseudo_gradient)
    return server_model.weights_vector()


def _distance(weights: NumpyVector, target: dict[str, np.ndarray] | NumpyVector) -> float:
    ref = target.coefs if isinstance(target, NumpyVector) else target
    return max(float(np.max(np.abs(weights.coefs[k] - v))) for k, v in ref.items())


def test_scaffold_reaches_the_global_optimum_where_fedavg_is_biased() -> None:
    optimum = _global_optimum()
    fedavg = _federated_training(scaffold=False, rounds=120)
    scaffold = _federated_training(scaffold=True, rounds=120)
    assert _distance(fedavg, optimum) > 1e-2  # FedAvg settles at a biased point...
    settled = _federated_training(scaffold=False, rounds=80)
    assert _distance(fedavg, settled) < 1e-6  # ... where it stays
    assert _distance(scaffold, optimum) < 1e-6


def _declearn_pair() -> tuple[Any, Any]:
    from declearn.optimizer.modules import ScaffoldClientModule as C
    from declearn.optimizer.modules import ScaffoldServerModule as S

    return C, S


@vector_types
def test_scaffold_exchanges_match_declearn_with_partial_participation(
    vtype: type[Vector],
) -> None:
    declearn_client, declearn_server = _declearn_pair()
    shapes = {"w": (3, 2), "b": (2,)}
    rounds = [["a", "b"], ["b", "c"], ["a"], ["a", "b", "c"], ["c"]]
    server, oracle_server = ScaffoldServerModule(), declearn_server()
    clients = {cid: ScaffoldClientModule() for cid in "abc"}
    oracles = {cid: declearn_client() for cid in "abc"}
    seed = 0
    for participants in rounds:
        state = server.collect_aux_var()
        oracle_state = oracle_server.collect_aux_var()
        replies, oracle_replies = {}, []
        for cid in participants:
            clients[cid].process_aux_var(json_loads(json_dumps(state)))
            oracles[cid].process_aux_var(oracle_state)
            for arrays in gradient_sequence(shapes, steps=4, seed=(seed := seed + 1)):
                out = clients[cid].run(ours(vtype, arrays))
                assert_close(out, oracles[cid].run(declearn_vector(arrays)))
            reply = clients[cid].collect_aux_var()
            assert reply is not None
            replies[cid] = reply
            oracle_replies.append(oracles[cid].collect_aux_var())
            assert_close(reply["delta"], oracle_replies[-1].delta)
        server.process_aux_var(json_loads(json_dumps(replies)))
        oracle_server.process_aux_var(sum(oracle_replies[1:], oracle_replies[0]))
        assert len(server.clients) == len(oracle_server.clients)
    assert_close(server.collect_aux_var()["state"], oracle_server.collect_aux_var().state)


def test_client_state_survives_a_rebuild_through_json() -> None:
    grads = gradient_sequence({"w": (4,)}, steps=6, seed=3)
    server_state = {"state": NumpyVector({"w": np.full(4, 0.5)})}
    kept = ScaffoldClientModule()
    kept.process_aux_var(server_state)
    for arrays in grads[:3]:
        kept.run(NumpyVector(arrays))
    kept.collect_aux_var()
    rebuilt = ScaffoldClientModule()
    rebuilt.set_state(json_loads(json_dumps(kept.get_state())))
    for module in (kept, rebuilt):
        module.process_aux_var(server_state)
    for arrays in grads[3:]:
        assert_close(rebuilt.run(NumpyVector(arrays)), kept.run(NumpyVector(arrays)), rtol=0.0)
    reply, expected = rebuilt.collect_aux_var(), kept.collect_aux_var()
    assert reply is not None and expected is not None
    assert_close(reply["delta"], expected["delta"], rtol=0.0)


def test_client_correction_is_converted_to_the_gradients_type() -> None:
    torch = pytest.importorskip("torch")
    from flwr_declearn.model.torch import TorchVector

    client = ScaffoldClientModule()
    client.process_aux_var({"state": NumpyVector({"w": np.ones(3)})})
    out = client.run(TorchVector({"w": torch.zeros(3, dtype=torch.float64)}))
    assert isinstance(out, TorchVector)
    assert isinstance(client.delta, TorchVector)
    assert torch.equal(out.coefs["w"], torch.ones(3, dtype=torch.float64))


def test_client_without_steps_sends_nothing_and_warns() -> None:
    client = ScaffoldClientModule()
    client.process_aux_var({"state": 0.0})
    with pytest.warns(RuntimeWarning, match="no training step"):
        assert client.collect_aux_var() is None


def test_scaffold_aux_errors_are_clear() -> None:
    client, server = ScaffoldClientModule(), ScaffoldServerModule()
    with pytest.raises(KeyError, match="state"):
        client.process_aux_var({"delta": 0.0})
    with pytest.raises(TypeError, match="Vector"):
        client.process_aux_var({"state": "zero"})
    with pytest.raises(TypeError, match="client_id"):
        server.process_aux_var([{"delta": 0.0}])  # type: ignore[arg-type]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        server.process_aux_var({"a": {"delta": 0.0}})
    assert server.clients == {"a"}


def test_client_restore_order_does_not_matter() -> None:
    grads = gradient_sequence({"w": (4,)}, steps=4, seed=6)
    old_state = {"state": NumpyVector({"w": np.full(4, 0.5)})}
    new_state = {"state": NumpyVector({"w": np.full(4, -1.5)})}
    previous = ScaffoldClientModule()
    previous.process_aux_var(old_state)
    for arrays in grads[:2]:
        previous.run(NumpyVector(arrays))
    previous.collect_aux_var()
    saved = json_loads(json_dumps(previous.get_state()))
    state_first, aux_first = ScaffoldClientModule(), ScaffoldClientModule()
    state_first.set_state(saved)
    state_first.process_aux_var(new_state)
    aux_first.process_aux_var(new_state)
    aux_first.set_state(saved)  # must not bring back the old global state
    for arrays in grads[2:]:
        assert_close(
            aux_first.run(NumpyVector(arrays)), state_first.run(NumpyVector(arrays)), rtol=0.0
        )
    stale = ScaffoldClientModule()
    stale.set_state(saved)  # no fresh global state: the saved one is used
    assert_close(stale.delta, saved["state"] - old_state["state"], rtol=0.0)

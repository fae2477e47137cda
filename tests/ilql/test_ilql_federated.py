"""Federated ILQL over 5 non-IID clients reaches a centralised run's score (same step count).

Clients hold disjoint contexts and different behaviour mixes (the example
app's split). Each round, every `DeclearnClient` trains `LOCAL` steps from the
global weights and the server aggregates with the strategies' own
`FederatedCore` (FedAvg: averaged local SGD with momentum; SCAFFOLD: the same,
SCAFFOLD-corrected). Target Q heads travel as non-trainable weights and are averaged.
The centralised run trains the same model on the pooled episodes for as many
gradient steps as each client took. The Flower runtime path (Ray simulation
under `flwr run`) is covered by `test_ilql_example.py`.
"""

from __future__ import annotations

import functools
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("flwr")

from flwr_declearn.data import InMemoryDataset  # noqa: E402
from flwr_declearn.flower import DeclearnClient, wire  # noqa: E402
from flwr_declearn.flower._core import ClientUpdate, build_core  # noqa: E402
from flwr_declearn.flower.aggregation import weighted_average  # noqa: E402
from flwr_declearn.ilql import ILQLModel  # noqa: E402
from tests.ilql._helpers import BATCH, CONFIG, DECODE_BETA, TASK, train  # noqa: E402

EXAMPLE_DIR = Path(__file__).resolve().parents[2] / "examples" / "ilql"
if str(EXAMPLE_DIR) not in sys.path:
    sys.path.insert(0, str(EXAMPLE_DIR))

from ilql_app.task import optimizers  # noqa: E402

pytestmark = pytest.mark.slow

N_CLIENTS = 5
EPISODES = 200  # per client
ROUNDS = 400
LOCAL = 2  # steps per round: 800 gradient steps per client, as centralised
SEED = 0
LRATE = 0.1


def _client_data() -> list[InMemoryDataset]:
    return [
        TASK.dataset(TASK.client_episodes(c, N_CLIENTS, EPISODES, seed=SEED), seed=c)
        for c in range(N_CLIENTS)
    ]


def _model() -> ILQLModel:
    return ILQLModel(TASK.net_config(), CONFIG, seed=SEED)


def run_federated(algorithm: str, record: list[Any] | None = None) -> ILQLModel:
    client_optim, server_optim = optimizers({"client-lrate": LRATE, "algorithm": algorithm})
    core = build_core(
        model=_model(),
        initial_weights=None,
        trainable=None,
        client_optimizer=client_optim,
        server_optimizer=server_optim,
        train_config={"batch_size": BATCH, "n_steps": LOCAL},
        eval_config=None,
    )
    clients = [DeclearnClient(_model(), data) for data in _client_data()]
    ids = [str(c) for c in range(N_CLIENTS)]
    torch.manual_seed(SEED)
    for rnd in range(1, ROUNDS + 1):
        configs = core.fit_configs(rnd, ids)
        updates = []
        for cid, client in zip(ids, clients, strict=True):
            weights = client.weights_from_named(core.get_weights())
            out = client.train(weights, configs[cid])
            updates.append(
                ClientUpdate(
                    client_id=cid,
                    weights={k: v.numpy() for k, v in out.weights.coefs.items()},
                    num_examples=out.num_examples,
                    aux_var=out.metrics.get(wire.KEY_AUX_VAR),  # type: ignore[arg-type]
                    metrics={},
                )
            )
        if record is not None:
            record.append(updates)
        assert core.aggregate(rnd, updates) is not None  # None: the round changed nothing
        core.note_responses(ids)
    model = _model()
    model.set_weights(model.get_weights().unpack(core.get_weights()))
    return model


@functools.cache
def centralised_score() -> float:
    pooled = np.concatenate([data.data for data in _client_data()])
    client_optim, _ = optimizers({"client-lrate": LRATE, "algorithm": "fedavg"})
    model = train(InMemoryDataset(pooled, seed=SEED), ROUNDS * LOCAL, SEED, optimizer=client_optim)
    return TASK.evaluate(model.network, beta=DECODE_BETA)["expected_reward"]


@pytest.mark.parametrize("algorithm", ["fedavg", "scaffold"])
def test_federated_ilql_is_within_5_percent_of_the_centralised_run(algorithm: str) -> None:
    updates: list[Any] = []
    model = run_federated(algorithm, updates)
    fed = TASK.evaluate(model.network, beta=DECODE_BETA)
    bc = TASK.evaluate(model.network, beta=0.0)["expected_reward"]
    central = centralised_score()
    print(
        f"{algorithm}: federated {fed['expected_reward']:.3f}, centralised {central:.3f}, "
        f"federated BC {bc:.3f}"
    )
    assert fed["expected_reward"] >= 0.95 * central
    assert bc <= 0.5
    # The global target heads are the clients' targets averaged by example count.
    last = updates[-1]
    counts = [upd.num_examples for upd in last]
    targets = [name for name in last[0].weights if name.startswith("target_q")]
    averaged = weighted_average([upd.weights for upd in last], counts, targets)
    weights = model.get_weights().coefs
    for name in targets:
        np.testing.assert_allclose(weights[name].numpy(), averaged[name], rtol=1e-6, atol=1e-7)

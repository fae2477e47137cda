"""The quickstart example's digits task, and Flower's Ray simulation engine, for the tests.

The data, model and non-IID split are the quickstart example's
(`examples/quickstart/quickstart/task.py`); importing this module puts the
example on `sys.path`, where Ray workers find it too (they inherit the
driver's `sys.path`).
"""

from __future__ import annotations

import sys
from pathlib import Path

from flwr.app import Context
from flwr.clientapp import ClientApp
from flwr.serverapp import ServerApp
from flwr.simulation import run_simulation

from flwr_declearn.data import InMemoryDataset

EXAMPLE_DIR = Path(__file__).resolve().parents[1] / "examples" / "quickstart"
if str(EXAMPLE_DIR) not in sys.path:
    sys.path.insert(0, str(EXAMPLE_DIR))

from quickstart.task import build_model, load_partition, load_splits  # noqa: E402

__all__ = ["SEED", "build_model", "load_splits", "node_dataset", "simulate"]

SEED = 0  # of the split, and of the models the tests build
ALPHA = 0.5  # Dirichlet label skew of the split


def node_dataset(context: Context) -> InMemoryDataset:
    """This node's shard of the digits training set, with a fresh batching seed per call.

    The shard is the quickstart's non-IID split among the node config's
    `num-partitions`. A fresh dataset (hence random generator) per message
    makes every arm of a comparison draw the same batches, whatever ran before
    in the process.
    """
    partition_id = int(context.node_config["partition-id"])
    shard = load_partition(
        partition_id, int(context.node_config["num-partitions"]), alpha=ALPHA, seed=SEED
    )
    return InMemoryDataset(shard.data, shard.target, seed=1000 + partition_id)


def simulate(server_app: ServerApp, client_app: ClientApp, num_supernodes: int) -> None:
    """Run the apps on Flower's Ray simulation engine: one CPU per client, 2 for Ray, quiet."""
    run_simulation(
        server_app=server_app,
        client_app=client_app,
        num_supernodes=num_supernodes,
        backend_config={
            "client_resources": {"num_cpus": 1, "num_gpus": 0.0},
            "init_args": {"num_cpus": 2, "logging_level": "ERROR", "log_to_driver": False},
        },
    )

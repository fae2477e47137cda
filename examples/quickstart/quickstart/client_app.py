"""ClientApp: a DeclearnClient on this node's partition of the digits training set."""

from __future__ import annotations

from flwr.app import Context
from flwr.client import Client, ClientApp

from flwr_declearn.flower import DeclearnClient
from quickstart.task import build_model, load_partition


def client_fn(context: Context) -> Client:
    """Build this node's client; its Optimizer state persists in `context.state`."""
    partition = load_partition(
        int(context.node_config["partition-id"]),
        int(context.node_config["num-partitions"]),
        alpha=float(context.run_config["dirichlet-alpha"]),
        seed=int(context.run_config["seed"]),
    )
    model = build_model(seed=int(context.run_config["seed"]))
    return DeclearnClient(model, partition, context).to_client()


app = ClientApp(client_fn=client_fn)

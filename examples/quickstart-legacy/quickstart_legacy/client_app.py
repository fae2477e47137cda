"""ClientApp (legacy API): a `client_fn` returning a DeclearnClient (a NumPyClient)."""

from __future__ import annotations

from flwr.app import Context
from flwr.client import Client, ClientApp

from flwr_declearn.data.examples import digits_partition
from flwr_declearn.flower import DeclearnClient
from quickstart_legacy.task import build_model


def client_fn(context: Context) -> Client:
    """Build this node's client; its Optimizer state (SCAFFOLD's c_i) lives in `context.state`."""
    cfg = context.run_config
    partition = digits_partition(
        int(context.node_config["partition-id"]),
        int(context.node_config["num-partitions"]),
        partitioning=str(cfg["partitioning"]),
        alpha=float(cfg["dirichlet-alpha"]),
        seed=int(cfg["seed"]),
    )
    model = build_model(seed=int(cfg["seed"]))
    return DeclearnClient(model, partition, context).to_client()


app = ClientApp(client_fn=client_fn)

"""ClientApp: each node trains the MLP in its own framework (by partition id)."""

from __future__ import annotations

from flwr.app import Context

from flwr_declearn.data.examples import digits_partition
from flwr_declearn.flower import DeclearnClient, make_client_app
from mixed_frameworks.task import build_model


def framework_of(partition_id: int, frameworks: str) -> str:
    """The framework of node `partition_id`: the run config's list, taken in turn."""
    names = [name.strip() for name in frameworks.split(",") if name.strip()]
    return names[partition_id % len(names)]


def client_fn(context: Context) -> DeclearnClient:
    """Build this node's client: the MLP in this node's framework, on its partition."""
    cfg = context.run_config
    partition_id = int(context.node_config["partition-id"])
    partition = digits_partition(
        partition_id,
        int(context.node_config["num-partitions"]),
        partitioning=str(cfg["partitioning"]),
        alpha=float(cfg["dirichlet-alpha"]),
        seed=int(cfg["seed"]),
    )
    model = build_model(framework_of(partition_id, str(cfg["frameworks"])), seed=int(cfg["seed"]))
    return DeclearnClient(model, partition, context)


app = make_client_app(client_fn)

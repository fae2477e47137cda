"""ClientApp: a DeclearnClient fine-tuning the MLP's head on this node's digits."""

from __future__ import annotations

from flwr.app import Context

from flwr_declearn.data.examples import digits_partition
from flwr_declearn.flower import DeclearnClient, make_client_app
from haiku_finetune.task import build_model


def client_fn(context: Context) -> DeclearnClient:
    """Build this node's client: the MLP with its hidden layers frozen, on its partition."""
    cfg = context.run_config
    partition = digits_partition(
        int(context.node_config["partition-id"]),
        int(context.node_config["num-partitions"]),
        partitioning=str(cfg["partitioning"]),
        alpha=float(cfg["dirichlet-alpha"]),
        seed=int(cfg["seed"]),
    )
    model = build_model(seed=int(cfg["seed"]), frozen_body=True)
    return DeclearnClient(model, partition, context)


app = make_client_app(client_fn)

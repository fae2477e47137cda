"""ClientApp: a DeclearnClient on this node's partition of the digits training set."""

from __future__ import annotations

from flwr.app import Context

from flwr_declearn.data.examples import digits_partition
from flwr_declearn.flower import DeclearnClient, make_client_app
from keras_digits.task import build_model


def client_fn(context: Context) -> DeclearnClient:
    """Build this node's client: the Keras MLP on its partition of the digits."""
    cfg = context.run_config
    partition = digits_partition(
        int(context.node_config["partition-id"]),
        int(context.node_config["num-partitions"]),
        partitioning=str(cfg["partitioning"]),
        alpha=float(cfg["dirichlet-alpha"]),
        seed=int(cfg["seed"]),
    )
    model = build_model(seed=int(cfg["seed"]))
    return DeclearnClient(model, partition, context)


# The Optimizer and training configs come from the server's DeclearnMessageStrategy.
app = make_client_app(client_fn)

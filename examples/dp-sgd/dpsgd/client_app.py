"""ClientApp: DP-SGD on this node's partition; its privacy accountant lives in `context.state`."""

from __future__ import annotations

from flwr.app import Context

from dpsgd.task import build_model
from flwr_declearn.data.examples import digits_partition
from flwr_declearn.flower import DeclearnClient, make_client_app


def client_fn(context: Context) -> DeclearnClient:
    """Build this node's client from its Hugging Face partition (no conversion needed)."""
    partition = digits_partition(
        int(context.node_config["partition-id"]),
        int(context.node_config["num-partitions"]),
        partitioning="iid",
        seed=int(context.run_config["seed"]),
    )
    return DeclearnClient(
        build_model(seed=int(context.run_config["seed"])),
        partition,
        context,
        dp_delta=float(context.run_config["delta"]),
    )


app = make_client_app(client_fn)

"""ClientApp: a DeclearnClient training the ILQL agent on this node's offline episodes."""

from __future__ import annotations

from flwr.app import Context

from flwr_declearn.flower import DeclearnClient, make_client_app
from ilql_app.task import build_model, load_partition


def client_fn(context: Context) -> DeclearnClient:
    """Build this node's client; its Optimizer state persists in `context.state`."""
    dataset = load_partition(
        int(context.node_config["partition-id"]),
        int(context.node_config["num-partitions"]),
        context.run_config,
    )
    return DeclearnClient(build_model(context.run_config), dataset, context)


app = make_client_app(client_fn)

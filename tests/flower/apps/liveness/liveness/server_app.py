"""ServerApp: `DeclearnMessageStrategy` with a per-round timeout, waiting for every node."""

from __future__ import annotations

import time
from logging import INFO

import numpy as np
from flwr.app import Context
from flwr.common import log
from flwr.serverapp import Grid, ServerApp

from flwr_declearn.flower import DeclearnMessageStrategy

app = ServerApp()


@app.main()
def main(grid: Grid, context: Context) -> None:
    """Run the rounds; `start` passes `round_timeout` to the Grid."""
    nodes = int(context.run_config["min-nodes"])  # type: ignore[arg-type]
    strategy = DeclearnMessageStrategy(
        initial_weights={"w": np.zeros(4, np.float32)},
        client_optimizer={"lrate": 0.1},
        min_available_nodes=nodes,
        min_train_nodes=nodes,
        fraction_evaluate=0.0,
        round_timeout=float(context.run_config["round-timeout"]),  # type: ignore[arg-type]
    )
    start = time.monotonic()
    strategy.start(grid, num_rounds=int(context.run_config["num-server-rounds"]))  # type: ignore[arg-type]
    log(
        INFO,
        "liveness: finished %d round(s) in %.1f s, last aggregated round %d",
        context.run_config["num-server-rounds"],
        time.monotonic() - start,
        strategy.core.server_round,
    )

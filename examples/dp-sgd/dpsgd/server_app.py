"""ServerApp: FedAvg of DP-SGD clients; logs accuracy and the clients' epsilon every round."""

from __future__ import annotations

from collections.abc import Iterable
from logging import INFO
from typing import Any

from flwr.app import ArrayRecord, Context, Message, MetricRecord
from flwr.common import log
from flwr.serverapp import Grid, ServerApp

from dpsgd.task import build_model
from flwr_declearn.data.examples import digits_test_data
from flwr_declearn.flower import DeclearnMessageStrategy, ModelEvaluator
from flwr_declearn.flower.report import RunReport


class DpStrategy(DeclearnMessageStrategy):
    """The strategy, logging each round's (epsilon, delta) spent by the clients (worst one)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.spent: dict[int, tuple[float, float]] = {}

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        replies = list(replies)
        spent = [
            (float(record["dp_epsilon"]), float(record["dp_delta"]))  # type: ignore[arg-type]
            for record in (msg.content.get("metrics") for msg in replies if msg.has_content())
            if isinstance(record, MetricRecord) and "dp_epsilon" in record
        ]
        arrays, metrics = super().aggregate_train(server_round, replies)
        if spent:
            self.spent[server_round] = max(spent)
            log(
                INFO,
                "round %d: DP-SGD (epsilon, delta) = (%.3f, %g), worst of %d client(s)",
                server_round,
                *self.spent[server_round],
                len(spent),
            )
        return arrays, metrics


app = ServerApp()


@app.main()
def main(grid: Grid, context: Context) -> None:
    """Run DP-SGD clients under FedAvg: Poisson sampling, clipping and Gaussian noise."""
    cfg = context.run_config
    seed, batch_size, max_norm = int(cfg["seed"]), int(cfg["batch-size"]), float(cfg["max-norm"])
    report = RunReport("dp-sgd", str(cfg["result-file"]), dict(cfg))
    evaluate = report.recording(ModelEvaluator(build_model(seed=seed), digits_test_data(seed)))

    # Noise std on the mean of `batch_size` (expected) clipped gradients, for multiplier z.
    std = float(cfg["noise-multiplier"]) * max_norm / batch_size
    strategy = DpStrategy(
        model=build_model(seed=seed),
        client_optimizer={
            "lrate": float(cfg["client-lrate"]),
            "modules": [["gaussian-noise", {"std": std}]],
        },
        server_optimizer={"lrate": float(cfg["server-lrate"])},
        train_config={
            "batch_size": batch_size,
            "n_epochs": int(cfg["local-epochs"]),
            "poisson": True,
            "sclip": max_norm,
        },
        fraction_evaluate=0.0,
        min_train_nodes=int(cfg["min-clients"]),
        min_available_nodes=int(cfg["min-clients"]),
        evaluate_fn=evaluate,
    )
    result = strategy.start(grid, num_rounds=int(cfg["num-server-rounds"]))
    for entry in report.rounds:  # the worst client's privacy spent so far, by round
        if int(entry["round"]) in strategy.spent:
            entry["epsilon"], entry["delta"] = strategy.spent[int(entry["round"])]
    report.finish(train_metrics=result.train_metrics_clientapp)

"""ServerApp: FedAvg of DP-SGD clients; logs accuracy and the clients' epsilon every round."""

from __future__ import annotations

import json
from collections.abc import Iterable
from logging import INFO
from pathlib import Path
from typing import Any

from flwr.app import ArrayRecord, Context, Message, MetricRecord
from flwr.common import log

from dpsgd.task import build_model, load_splits
from flwr_declearn.flower import DeclearnMessageStrategy, ModelEvaluator, make_server_app


class DpReport(DeclearnMessageStrategy):
    """The strategy, logging each round's (epsilon, delta) spent by the clients (worst one)."""

    def __init__(self, result_file: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.result_file = Path(result_file) if result_file else None
        self.history: list[dict[str, float]] = []

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
            epsilon, delta = max(spent)
            log(
                INFO,
                "round %d: DP-SGD (epsilon, delta) = (%.3f, %g), worst of %d client(s)",
                server_round,
                epsilon,
                delta,
                len(spent),
            )
            self.history.append({"round": server_round, "epsilon": epsilon, "delta": delta})
        return arrays, metrics

    def evaluate_and_record(self, server_round: int, weights: dict) -> tuple[float, dict]:
        loss, metrics = self.evaluator(server_round, weights)
        log(INFO, "round %d: test accuracy %.4f", server_round, metrics["accuracy"])
        rows = [row for row in self.history if row["round"] == server_round]
        if rows:
            rows[0]["accuracy"] = float(metrics["accuracy"])
        if self.result_file is not None:
            self.result_file.write_text(json.dumps({"rounds": self.history}, indent=1))
        return loss, metrics


def strategy_fn(context: Context) -> DpReport:
    """Build the strategy from the run config: Poisson sampling, clipping and Gaussian noise."""
    cfg = context.run_config
    seed, batch_size, max_norm = int(cfg["seed"]), int(cfg["batch-size"]), float(cfg["max-norm"])
    # Noise std on the mean of `batch_size` (expected) clipped gradients, for multiplier z.
    std = float(cfg["noise-multiplier"]) * max_norm / batch_size
    strategy = DpReport(
        str(cfg["result-file"]),
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
    )
    strategy.evaluator = ModelEvaluator(build_model(seed=seed), load_splits(seed)[1])
    strategy.evaluate_fn = strategy.evaluate_and_record
    return strategy


app = make_server_app(strategy_fn)

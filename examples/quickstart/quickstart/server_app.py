"""ServerApp: SCAFFOLD with server-side Adam, evaluated on the held-out test set each round."""

from __future__ import annotations

import json
from logging import INFO
from pathlib import Path

from flwr.app import Context
from flwr.common import Scalar, log
from flwr.server import ServerApp, ServerAppComponents, ServerConfig

from flwr_declearn.flower import DeclearnStrategy, ModelEvaluator
from flwr_declearn.optimizer import Optimizer
from quickstart.task import build_model, load_splits


class AccuracyReport:
    """Server-side evaluation that logs (and optionally saves) the accuracy of every round."""

    def __init__(self, evaluator: ModelEvaluator, result_file: str) -> None:
        self.evaluator = evaluator
        self.result_file = Path(result_file) if result_file else None
        self.history: list[dict[str, float]] = []

    def __call__(self, server_round: int, weights: dict) -> tuple[float, dict[str, Scalar]]:
        loss, metrics = self.evaluator(server_round, weights)
        accuracy = float(metrics["accuracy"])
        log(INFO, "round %d: test accuracy %.4f, test loss %.4f", server_round, accuracy, loss)
        self.history.append({"round": server_round, "accuracy": accuracy, "loss": float(loss)})
        if self.result_file is not None:
            self.result_file.write_text(json.dumps({"rounds": self.history}, indent=1))
        return loss, {"accuracy": accuracy}


def server_fn(context: Context) -> ServerAppComponents:
    """Build the DeclearnStrategy from the run config."""
    cfg = context.run_config
    seed = int(cfg["seed"])
    _, test_data = load_splits(seed)
    strategy = DeclearnStrategy(
        model=build_model(seed=seed),
        client_optimizer={
            "lrate": float(cfg["client-lrate"]),
            "modules": [["scaffold-client", {}]],
        },
        server_optimizer=Optimizer(
            lrate=float(cfg["server-lrate"]), modules=["adam", "scaffold-server"]
        ),
        train_config={"batch_size": int(cfg["batch-size"]), "n_steps": int(cfg["local-steps"])},
        fraction_fit=float(cfg["fraction-fit"]),
        fraction_evaluate=0.0,
        min_fit_clients=int(cfg["min-clients"]),
        min_available_clients=int(cfg["min-clients"]),
        evaluate_fn=AccuracyReport(
            ModelEvaluator(build_model(seed=seed), test_data), str(cfg["result-file"])
        ),
    )
    return ServerAppComponents(
        strategy=strategy, config=ServerConfig(num_rounds=int(cfg["num-server-rounds"]))
    )


app = ServerApp(server_fn=server_fn)

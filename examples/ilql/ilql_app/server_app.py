"""ServerApp: FedAvg or SCAFFOLD over ILQL agents; logs the decoded policy's scores per round."""

from __future__ import annotations

import json
from logging import INFO
from pathlib import Path
from typing import Any

import numpy as np
from flwr.app import Context
from flwr.common import Scalar, log

from flwr_declearn.flower import DeclearnMessageStrategy, make_server_app
from flwr_declearn.ilql import ILQLModel
from flwr_declearn.model.torch import TorchVector
from ilql_app.task import build_model, optimizers, task_from


class PolicyReport:
    """Server-side evaluation: decode a code per context with the global agent, every round.

    Logs (and optionally saves) the expected reward of the decoded codes, the
    safe-code rate, mean Q and V after the context, and the same reward for
    behaviour cloning (beta = 0) for comparison.
    """

    def __init__(self, model: ILQLModel, run_config: Any) -> None:
        self.model = model
        self.task = task_from(run_config)
        self.beta = float(run_config["decode-beta"])
        path = str(run_config["result-file"])
        self.result_file = Path(path) if path else None
        self.history: list[dict[str, float]] = []

    def __call__(
        self, server_round: int, weights: dict[str, np.ndarray]
    ) -> tuple[float, dict[str, Scalar]]:
        self.model.set_weights(TorchVector.unpack(weights))
        scores = self.task.evaluate(self.model.network, beta=self.beta)
        bc = self.task.evaluate(self.model.network, beta=0.0)["expected_reward"]
        metrics: dict[str, Scalar] = {
            "expected_reward": scores["expected_reward"],
            "safe_rate": scores["safe_rate"],
            "q_mean": 0.5 * (scores["q_safe_first"] + scores["q_gamble_first"]),
            "v_mean": scores["v_mean"],
            "bc_expected_reward": bc,
        }
        log(
            INFO,
            "round %d: ILQL expected reward %.3f, safe-code rate %.2f, mean Q %.3f, mean V %.3f "
            "(behaviour cloning: %.3f)",
            server_round,
            metrics["expected_reward"],
            metrics["safe_rate"],
            metrics["q_mean"],
            metrics["v_mean"],
            bc,
        )
        self.history.append({"round": server_round, **{k: float(v) for k, v in metrics.items()}})
        if self.result_file is not None:
            self.result_file.write_text(json.dumps({"rounds": self.history}, indent=1))
        return -float(scores["expected_reward"]), metrics


def strategy_fn(context: Context) -> DeclearnMessageStrategy:
    cfg = context.run_config
    client_optim, server_optim = optimizers(cfg)
    n_clients = int(cfg["min-clients"])
    return DeclearnMessageStrategy(
        model=build_model(cfg),
        client_optimizer=client_optim,
        server_optimizer=server_optim,
        train_config={"batch_size": int(cfg["batch-size"]), "n_steps": int(cfg["local-steps"])},
        fraction_evaluate=0.0,
        min_train_nodes=n_clients,
        min_available_nodes=n_clients,
        evaluate_fn=PolicyReport(build_model(cfg), cfg),
    )


app = make_server_app(strategy_fn)

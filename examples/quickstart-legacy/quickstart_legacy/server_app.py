"""ServerApp (legacy API): a `server_fn` returning a DeclearnStrategy and the number of rounds."""

from __future__ import annotations

from flwr.app import Context
from flwr.common import Scalar
from flwr.server import ServerApp, ServerAppComponents, ServerConfig

from flwr_declearn.data.examples import digits_test_data
from flwr_declearn.flower import DeclearnStrategy, ModelEvaluator
from flwr_declearn.flower.report import RunReport
from flwr_declearn.optimizer import Optimizer
from quickstart_legacy.task import build_model


def server_fn(context: Context) -> ServerAppComponents:
    """Build the DeclearnStrategy from the run config (`pyproject.toml`)."""
    cfg = context.run_config
    seed, num_rounds = int(cfg["seed"]), int(cfg["num-server-rounds"])
    report = RunReport("quickstart-legacy", str(cfg["result-file"]), dict(cfg))
    evaluator = ModelEvaluator(build_model(seed=seed), digits_test_data(seed))

    def evaluate(server_round: int, weights: dict) -> tuple[float, dict[str, Scalar]]:
        loss, metrics = evaluator(server_round, weights)
        report.record(server_round, loss, metrics["accuracy"])
        if server_round == num_rounds:
            report.finish()
        return loss, {"accuracy": metrics["accuracy"]}

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
        fraction_evaluate=0.0,  # the server tests the global model itself
        min_fit_clients=int(cfg["min-clients"]),
        min_available_clients=int(cfg["min-clients"]),
        evaluate_fn=evaluate,
    )
    return ServerAppComponents(strategy=strategy, config=ServerConfig(num_rounds=num_rounds))


app = ServerApp(server_fn=server_fn)

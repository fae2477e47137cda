"""ServerApp: FedYogi (server-side Yogi on the averaged update) over Keras clients."""

from __future__ import annotations

from flwr.app import Context
from flwr.serverapp import Grid, ServerApp

from flwr_declearn.data.examples import digits_test_data
from flwr_declearn.flower import DeclearnMessageStrategy, ModelEvaluator
from flwr_declearn.flower.report import RunReport
from flwr_declearn.optimizer import Optimizer
from keras_digits.task import build_model

app = ServerApp()


@app.main()
def main(grid: Grid, context: Context) -> None:
    """Run the federated training configured by the run config (`pyproject.toml`)."""
    cfg = context.run_config
    seed = int(cfg["seed"])
    report = RunReport("keras", str(cfg["result-file"]), dict(cfg))
    evaluate = report.recording(ModelEvaluator(build_model(seed=seed), digits_test_data(seed)))

    strategy = DeclearnMessageStrategy(
        model=build_model(seed=seed),
        # Clients: plain SGD steps.
        client_optimizer={"lrate": float(cfg["client-lrate"])},
        # Server: Yogi on the averaged update (FedYogi).
        server_optimizer=Optimizer(lrate=float(cfg["server-lrate"]), modules=["yogi"]),
        train_config={"batch_size": int(cfg["batch-size"]), "n_steps": int(cfg["local-steps"])},
        fraction_train=float(cfg["fraction-train"]),
        fraction_evaluate=0.0,  # the server tests the global model itself
        min_train_nodes=int(cfg["min-clients"]),
        min_available_nodes=int(cfg["min-clients"]),
        evaluate_fn=evaluate,
    )
    result = strategy.start(grid, num_rounds=int(cfg["num-server-rounds"]))
    report.finish(train_metrics=result.train_metrics_clientapp)

"""ServerApp: SCAFFOLD with server-side Adam, the global model tested after every round."""

from __future__ import annotations

from flwr.app import Context
from flwr.serverapp import Grid, ServerApp

from flwr_declearn.data.examples import digits_test_data
from flwr_declearn.flower import DeclearnMessageStrategy, ModelEvaluator
from flwr_declearn.flower.report import RunReport
from flwr_declearn.optimizer import Optimizer
from quickstart.task import build_model

app = ServerApp()


@app.main()
def main(grid: Grid, context: Context) -> None:
    """Run the federated training configured by the run config (`pyproject.toml`)."""
    cfg = context.run_config
    seed = int(cfg["seed"])
    report = RunReport("quickstart", str(cfg["result-file"]), dict(cfg))
    evaluate = report.recording(ModelEvaluator(build_model(seed=seed), digits_test_data(seed)))

    strategy = DeclearnMessageStrategy(
        model=build_model(seed=seed),
        # Clients: SGD corrected by SCAFFOLD's control variates.
        client_optimizer={
            "lrate": float(cfg["client-lrate"]),
            "modules": [["scaffold-client", {}]],
        },
        # Server: Adam on the averaged update (and SCAFFOLD's global control variate).
        server_optimizer=Optimizer(
            lrate=float(cfg["server-lrate"]), modules=["adam", "scaffold-server"]
        ),
        train_config={"batch_size": int(cfg["batch-size"]), "n_steps": int(cfg["local-steps"])},
        fraction_train=float(cfg["fraction-train"]),
        fraction_evaluate=0.0,  # the server tests the global model itself
        min_train_nodes=int(cfg["min-clients"]),
        min_available_nodes=int(cfg["min-clients"]),
        evaluate_fn=evaluate,
    )
    result = strategy.start(grid, num_rounds=int(cfg["num-server-rounds"]))
    report.finish(train_metrics=result.train_metrics_clientapp)

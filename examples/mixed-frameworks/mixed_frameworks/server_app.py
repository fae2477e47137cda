"""ServerApp: SCAFFOLD with server-side Adam over clients of four frameworks."""

from __future__ import annotations

from logging import INFO

from flwr.app import Context
from flwr.common import log
from flwr.serverapp import Grid, ServerApp

from flwr_declearn.data.examples import digits_test_data
from flwr_declearn.flower import DeclearnMessageStrategy, ModelEvaluator
from flwr_declearn.flower.report import RunReport
from flwr_declearn.optimizer import Optimizer
from mixed_frameworks.task import build_model

app = ServerApp()


@app.main()
def main(grid: Grid, context: Context) -> None:
    """Run the federated training configured by the run config (`pyproject.toml`)."""
    cfg = context.run_config
    seed = int(cfg["seed"])
    frameworks = str(cfg["frameworks"])
    report = RunReport("mixed-frameworks", str(cfg["result-file"]), dict(cfg))
    server_framework = str(cfg["server-framework"])
    model = build_model(server_framework, seed=seed)
    log(
        INFO,
        "clients: partition p trains in %s[p %% %d]",
        frameworks.split(","),
        len(frameworks.split(",")),
    )
    evaluate = report.recording(
        ModelEvaluator(build_model(server_framework, seed=seed), digits_test_data(seed))
    )

    strategy = DeclearnMessageStrategy(
        model=model,
        client_optimizer={
            "lrate": float(cfg["client-lrate"]),
            "modules": [["scaffold-client", {}]],
        },
        server_optimizer=Optimizer(
            lrate=float(cfg["server-lrate"]), modules=["adam", "scaffold-server"]
        ),
        train_config={"batch_size": int(cfg["batch-size"]), "n_steps": int(cfg["local-steps"])},
        fraction_train=float(cfg["fraction-train"]),
        fraction_evaluate=0.0,
        min_train_nodes=int(cfg["min-clients"]),
        min_available_nodes=int(cfg["min-clients"]),
        evaluate_fn=evaluate,
    )
    log(INFO, "global model: %s, weights %s", server_framework, sorted(strategy.global_weights))
    result = strategy.start(grid, num_rounds=int(cfg["num-server-rounds"]))
    report.finish(train_metrics=result.train_metrics_clientapp)

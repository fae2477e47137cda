"""ServerApp: pretrain the MLP on public data, then fine-tune its head with FedProx clients."""

from __future__ import annotations

from logging import INFO

import numpy as np
from flwr.app import Context
from flwr.common import log
from flwr.serverapp import Grid, ServerApp

from flwr_declearn.data.examples import digits_test_data
from flwr_declearn.flower import DeclearnMessageStrategy, ModelEvaluator, evaluate_model
from flwr_declearn.flower.report import RunReport
from haiku_finetune.task import HEAD, build_model, load_public_data, pretrain

app = ServerApp()


@app.main()
def main(grid: Grid, context: Context) -> None:
    """Pretrain, freeze the hidden layers, run the federated fine-tuning of the head."""
    cfg = context.run_config
    seed = int(cfg["seed"])
    report = RunReport("haiku-finetune", str(cfg["result-file"]), dict(cfg))
    test_data = digits_test_data(seed)

    model = build_model(seed=seed)
    pretrain(model, load_public_data(seed), int(cfg["pretrain-epochs"]), lrate=0.1)
    pretrained = model.get_weights().pack()
    accuracy = evaluate_model(model, test_data)["accuracy"]
    log(INFO, "pretrained on digits 0-4: test accuracy %.4f (all ten digits)", accuracy)
    log(INFO, "trainable weights: %s (frozen: the others)", model.get_weight_names(trainable=True))

    evaluate = report.recording(ModelEvaluator(build_model(seed=seed), test_data))

    strategy = DeclearnMessageStrategy(
        model=model,  # its trainable weights (HEAD) are the ones the server updates
        client_optimizer={
            "lrate": float(cfg["client-lrate"]),
            "regularizers": [["fedprox", {"alpha": float(cfg["fedprox-alpha"])}]],
        },
        server_optimizer={"lrate": 1.0},  # FedAvg of the clients' heads
        train_config={"batch_size": int(cfg["batch-size"]), "n_steps": int(cfg["local-steps"])},
        fraction_train=float(cfg["fraction-train"]),
        fraction_evaluate=0.0,
        min_train_nodes=int(cfg["min-clients"]),
        min_available_nodes=int(cfg["min-clients"]),
        evaluate_fn=evaluate,
    )
    result = strategy.start(grid, num_rounds=int(cfg["num-server-rounds"]))
    final = strategy.global_weights
    frozen = [name for name in final if name not in HEAD]
    unchanged = all(np.array_equal(final[name], pretrained[name]) for name in frozen)
    log(INFO, "frozen weights %s unchanged by the federation: %s", frozen, unchanged)
    report.extra.update({"pretrained_accuracy": accuracy, "frozen_weights_unchanged": unchanged})
    report.finish(train_metrics=result.train_metrics_clientapp)

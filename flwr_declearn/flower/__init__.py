"""Flower integration: clients, strategies and apps for declearn-style federated optimization.

This is the only subpackage of flwr_declearn that imports `flwr`.

- `DeclearnClient`: a NumPyClient training any Model with the Optimizer
  config sent by the server; its Optimizer state lives in `context.state`.
- `DeclearnStrategy`: a Flower Strategy (legacy API) running the server
  Optimizer on the FedOpt pseudo-gradient, with aux-var exchange.
- `DeclearnMessageStrategy`: the same on Flower's Message API.
- `make_client_app` / `make_server_app`: ClientApp and ServerApp factories;
  `handle_train` / `handle_evaluate`: the client handlers, for your own ClientApp.
- `ModelEvaluator`: a server-side `evaluate_fn` for both strategies.
- `TrainingConfig`, `EvaluationConfig`: what the server asks clients to do.
- `wire`: the wire format of every structured payload; `protocol`: every key.
- `aggregators`: robust aggregation rules, selected by name ("mean", "median",
  "trimmed-mean", "clipped-mean"); `ClientLimits`: bounds on client results.
- `checkpoint`: server checkpoint files (`CheckpointError`).
- `ServerDP`: client-level differential privacy on the server.
"""

from flwr_declearn.flower import aggregation, aggregators, checkpoint, protocol, wire
from flwr_declearn.flower._core import AggregationError
from flwr_declearn.flower._evaluation import ModelEvaluator, evaluate_model
from flwr_declearn.flower._validation import ClientLimits, SpecMismatchError
from flwr_declearn.flower.apps import (
    handle_evaluate,
    handle_train,
    make_client_app,
    make_server_app,
)
from flwr_declearn.flower.checkpoint import CheckpointError
from flwr_declearn.flower.client import STATE_KEY, DeclearnClient, FitOutput, RejectedMessage
from flwr_declearn.flower.config import EvaluationConfig, TrainingConfig
from flwr_declearn.flower.message_strategy import DeclearnMessageStrategy
from flwr_declearn.flower.server_dp import ServerDP
from flwr_declearn.flower.strategy import DeclearnStrategy, ServerEvaluateFn

__all__ = [
    "STATE_KEY",
    "AggregationError",
    "CheckpointError",
    "ClientLimits",
    "DeclearnClient",
    "DeclearnMessageStrategy",
    "DeclearnStrategy",
    "EvaluationConfig",
    "FitOutput",
    "ModelEvaluator",
    "RejectedMessage",
    "ServerDP",
    "ServerEvaluateFn",
    "SpecMismatchError",
    "TrainingConfig",
    "aggregation",
    "aggregators",
    "checkpoint",
    "evaluate_model",
    "handle_evaluate",
    "handle_train",
    "make_client_app",
    "make_server_app",
    "protocol",
    "wire",
]

"""`DeclearnClient`: a Flower NumPyClient training any Model with any Optimizer config."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from logging import WARNING
from typing import Any

import numpy as np
from flwr.app import ConfigRecord, Context, RecordDict
from flwr.client import NumPyClient
from flwr.common import NDArrays, Scalar, log

from flwr_declearn.data import InMemoryDataset
from flwr_declearn.flower import wire
from flwr_declearn.flower._evaluation import MetricSpec, evaluate_model
from flwr_declearn.flower.config import EvaluationConfig, TrainingConfig
from flwr_declearn.model.api import Model, Vector
from flwr_declearn.optimizer import Optimizer

__all__ = ["STATE_KEY", "DeclearnClient", "FitOutput"]

STATE_KEY = "declearn.client"
"""Key of the ConfigRecord in `context.state` holding the client's persistent state."""
_STATE_CONFIG = "optimizer_config"
_STATE_OPTIM = "optimizer_state"


@dataclasses.dataclass
class FitOutput:
    """Result of a local training round (see `DeclearnClient.train`).

    Attributes
    ----------
    weights:
        The model's weights after training (all of them).
    num_examples:
        Aggregation weight: the number of training samples.
    metrics:
        Scalar metrics ("train_loss", "n_steps"), plus the wire-encoded
        aux-vars under `wire.KEY_AUX_VAR` when the Optimizer emitted any.
    """

    weights: Vector
    num_examples: int
    metrics: dict[str, Scalar]


class DeclearnClient(NumPyClient):
    """Flower client running declearn-style local optimization.

    In each round, `fit` loads the global weights, (re)builds the client
    Optimizer from the config the server sent (kept in `context.state` after
    the client's first round), restores the Optimizer state from
    `context.state`, processes the server's aux-vars, trains for the epochs
    or steps of the training config, saves the Optimizer state back to
    `context.state` and returns the new weights, the number of training
    samples and metrics: "train_loss" (mean batch loss), "n_steps" and the
    wire-encoded aux-vars for the server (`wire.KEY_AUX_VAR`, bytes).
    Flower rebuilds clients for every message, so nothing else survives
    between rounds: in particular, a dataset rebuilt by `client_fn` with a
    fixed seed shuffles its samples the same way every round.

    Weights travel as NDArrays in sorted-name order (see `wire.weight_names`).

    Parameters
    ----------
    model:
        The model to train; initialized from `train_data`'s specs if needed.
    train_data:
        Local training dataset.
    context:
        The Flower Context; its `state` stores the Optimizer state across
        rounds. None keeps that state on this instance instead (only valid
        when the same instance serves every round).
    valid_data:
        Local validation dataset used by `evaluate` (`train_data` if None).
    optimizer:
        Fallback Optimizer (or config) used when the server sends none, e.g.
        under a plain Flower strategy. A server-sent config takes precedence.
    train_config:
        Fallback training config, used when the server sends none.
    metrics:
        Evaluation metrics (instances or specs for `build_metric`); by
        default accuracy when the validation targets are class labels.
    """

    def __init__(
        self,
        model: Model[Any],
        train_data: InMemoryDataset,
        context: Context | None = None,
        *,
        valid_data: InMemoryDataset | None = None,
        optimizer: Optimizer | Mapping[str, Any] | None = None,
        train_config: TrainingConfig | Mapping[str, Any] | None = None,
        metrics: Sequence[MetricSpec] | None = None,
    ) -> None:
        self.model = model
        self.train_data = train_data
        self.valid_data = valid_data
        self.context = context
        self._state = context.state if context is not None else RecordDict()
        self._fallback_optimizer = (
            optimizer.get_config() if isinstance(optimizer, Optimizer) else optimizer
        )
        self._fallback_train = (
            TrainingConfig.from_dict(train_config)
            if isinstance(train_config, Mapping)
            else train_config
        )
        self._metric_specs = metrics
        if model.required_data_info:
            model.initialize(train_data.get_data_specs().to_data_info())
        weights = model.get_weights()
        self.vector_type: type[Vector] = type(weights)
        self.specs = wire.vector_specs(weights)
        self.names = wire.weight_names(weights)

    # -- NumPyClient API -------------------------------------------------------------------------

    def get_parameters(self, config: dict[str, Scalar]) -> NDArrays:
        """Return the model's weights as NDArrays in wire order."""
        return wire.vector_to_ndarrays(self.model.get_weights(), self.names)

    def fit(
        self, parameters: NDArrays, config: dict[str, Scalar]
    ) -> tuple[NDArrays, int, dict[str, Scalar]]:
        """Train from the global weights; return new weights, example count and metrics."""
        weights = wire.ndarrays_to_vector(parameters, self.specs, self.vector_type)
        out = self.train(weights, config)
        return wire.vector_to_ndarrays(out.weights, self.names), out.num_examples, out.metrics

    def evaluate(
        self, parameters: NDArrays, config: dict[str, Scalar]
    ) -> tuple[float, int, dict[str, Scalar]]:
        """Evaluate the global weights on the validation data: loss, sample count, metrics."""
        weights = wire.ndarrays_to_vector(parameters, self.specs, self.vector_type)
        loss, n_samples, metrics = self.evaluate_weights(weights, config)
        return loss, n_samples, dict(metrics)

    # -- framework-neutral core (also used by the Message API ClientApp) -------------------------

    def weights_from_named(self, arrays: Mapping[str, np.ndarray]) -> Vector:
        """Check named arrays against the model's specs and wrap them in its Vector type.

        Raises
        ------
        ValueError
            If names, shapes or dtypes differ from the model's.
        """
        if set(arrays) != set(self.names):
            missing = sorted(set(self.names) - set(arrays))
            extra = sorted(set(arrays) - set(self.names))
            raise ValueError(
                f"Weight names do not match the model: missing {missing}, unexpected {extra}."
            )
        return wire.ndarrays_to_vector(
            [arrays[name] for name in self.names], self.specs, self.vector_type
        )

    def train(self, weights: Vector, config: Mapping[str, Any]) -> FitOutput:
        """Run one round of local training from `weights`, as configured by the server.

        Raises
        ------
        ValueError
            If the config lacks an Optimizer config (and no fallback was
            given) or holds an invalid payload.
        """
        self.model.set_weights(weights)
        round_configs = self._round_configs(config)
        optimizer = self._build_optimizer(_decode_dict(round_configs, wire.KEY_OPTIMIZER))
        train_config = TrainingConfig.from_dict(_decode_dict(round_configs, wire.KEY_TRAIN_CONFIG))
        if wire.KEY_AUX_VAR in config:
            aux = wire.decode(_as_bytes(config, wire.KEY_AUX_VAR), self.vector_type)
            if not isinstance(aux, dict):
                raise ValueError("The server's aux-vars must be a dict {aux_name: dict}.")
            optimizer.process_aux_var(aux)
        optimizer.start_round()
        n_steps = self._run_local_training(optimizer, train_config)
        losses = self.model.collect_training_losses()
        aux_out = {key: val for key, val in optimizer.collect_aux_var().items() if val is not None}
        self._save_state(optimizer, round_configs)
        metrics: dict[str, Scalar] = {
            "train_loss": float(np.mean(losses)) if losses else float("nan"),
            "n_steps": n_steps,
        }
        if aux_out:
            metrics[wire.KEY_AUX_VAR] = wire.encode(aux_out)
        return FitOutput(self.model.get_weights(), len(self.train_data), metrics)

    def evaluate_weights(
        self, weights: Vector, config: Mapping[str, Any]
    ) -> tuple[float, int, dict[str, float]]:
        """Evaluate `weights` on the validation data: (loss, n_samples, metrics incl. loss)."""
        self.model.set_weights(weights)
        eval_config = EvaluationConfig()
        if wire.KEY_EVAL_CONFIG in config:
            eval_config = EvaluationConfig.from_dict(_decode_dict(config, wire.KEY_EVAL_CONFIG))
        dataset = self.valid_data if self.valid_data is not None else self.train_data
        results = evaluate_model(self.model, dataset, self._metric_specs, eval_config.batch_size)
        return float(results["loss"]), len(dataset), results

    # -- internals -------------------------------------------------------------------------------

    def _round_configs(self, config: Mapping[str, Any]) -> dict[str, bytes]:
        """Return this round's wire-encoded Optimizer and training configs.

        `DeclearnStrategy` sends both configs to a client once, then only their
        id (`wire.KEY_CONFIG_ID`): the client keeps them in `context.state`.
        Without an id (plain Flower strategies), configs sent with the round
        are used, else the client's fallbacks.

        Raises
        ------
        ValueError
            If the server refers to configs this client does not hold (lost
            state: the server resends them to clients that fail), or no
            Optimizer config is available at all.
        """
        configs: dict[str, bytes] = {}
        if wire.KEY_CONFIG_ID in config:
            configs[wire.KEY_CONFIG_ID] = _as_bytes(config, wire.KEY_CONFIG_ID)
            if wire.KEY_OPTIMIZER in config and wire.KEY_TRAIN_CONFIG in config:
                for key in (wire.KEY_OPTIMIZER, wire.KEY_TRAIN_CONFIG):
                    configs[key] = _as_bytes(config, key)
                return configs
            record = self._state.get(STATE_KEY)
            if (
                isinstance(record, ConfigRecord)
                and record.get(wire.KEY_CONFIG_ID) == configs[wire.KEY_CONFIG_ID]
            ):
                for key in (wire.KEY_OPTIMIZER, wire.KEY_TRAIN_CONFIG):
                    configs[key] = _as_bytes(record, key)
                return configs
            raise ValueError(
                "The server refers to configs this client does not hold (id "
                f"{configs[wire.KEY_CONFIG_ID].hex()}): its Context state was lost or is stale. "
                "The server sends them again to clients that fail a round."
            )
        if wire.KEY_OPTIMIZER in config:
            configs[wire.KEY_OPTIMIZER] = _as_bytes(config, wire.KEY_OPTIMIZER)
        elif self._fallback_optimizer is not None:
            configs[wire.KEY_OPTIMIZER] = wire.encode(dict(self._fallback_optimizer))
        else:
            raise ValueError(
                f"The fit config holds no '{wire.KEY_OPTIMIZER}' entry and this client has no "
                "fallback optimizer: use DeclearnStrategy, or pass `optimizer=` to the client."
            )
        if wire.KEY_TRAIN_CONFIG in config:
            configs[wire.KEY_TRAIN_CONFIG] = _as_bytes(config, wire.KEY_TRAIN_CONFIG)
        else:
            fallback = self._fallback_train or TrainingConfig()
            configs[wire.KEY_TRAIN_CONFIG] = wire.encode(fallback.to_dict())
        return configs

    def _build_optimizer(self, optim_config: dict[str, Any]) -> Optimizer:
        """Build the Optimizer and restore its state from the Context, if compatible."""
        optimizer = Optimizer.from_config(optim_config)
        record = self._state.get(STATE_KEY)
        if isinstance(record, ConfigRecord) and _STATE_OPTIM in record:
            saved_config = wire.decode(_as_bytes(record, _STATE_CONFIG))
            if _same_structure(saved_config, optim_config):
                state = wire.decode(_as_bytes(record, _STATE_OPTIM), self.vector_type)
                optimizer.set_state(state)
            else:
                log(
                    WARNING,
                    "flwr_declearn: the Optimizer's modules or regularizers changed since the "
                    "last round; starting from a fresh Optimizer state.",
                )
        return optimizer

    def _save_state(self, optimizer: Optimizer, round_configs: Mapping[str, bytes]) -> None:
        """Store the Optimizer state and the server's configs in the Context."""
        record: dict[str, bytes] = {
            _STATE_CONFIG: wire.encode(optimizer.get_config()),
            _STATE_OPTIM: wire.encode(optimizer.get_state()),
        }
        if wire.KEY_CONFIG_ID in round_configs:
            record.update(round_configs)
        self._state[STATE_KEY] = ConfigRecord(record)  # type: ignore[arg-type]

    def _run_local_training(self, optimizer: Optimizer, config: TrainingConfig) -> int:
        """Run the epochs or steps of `config`; return the number of steps taken."""
        self.model.collect_training_losses()  # forget losses of earlier calls
        n_steps, epoch = 0, 0
        max_epochs = config.epochs
        while max_epochs is None or epoch < max_epochs:
            epoch_steps = 0
            for batch in self.train_data.generate_batches(
                config.batch_size,
                shuffle=config.shuffle,
                drop_remainder=config.drop_remainder,
                poisson=config.poisson,
            ):
                optimizer.run_train_step(self.model, batch, sclip=config.sclip)
                n_steps += 1
                epoch_steps += 1
                if config.n_steps is not None and n_steps >= config.n_steps:
                    return n_steps
            epoch += 1
            if epoch_steps == 0 and not config.poisson:
                log(
                    WARNING,
                    "flwr_declearn: an epoch over %d samples with batch_size=%d yielded no "
                    "batch; stopping local training.",
                    len(self.train_data),
                    config.batch_size,
                )
                break
        return n_steps


def _as_bytes(config: Mapping[str, Any], key: str) -> bytes:
    value = config[key]
    if not isinstance(value, bytes):
        raise ValueError(f"Config entry '{key}' must be bytes, not {type(value).__name__}.")
    return value


def _decode_dict(config: Mapping[str, Any], key: str) -> dict[str, Any]:
    value = wire.decode(_as_bytes(config, key))
    if not isinstance(value, dict):
        raise ValueError(f"Config entry '{key}' must encode a dict, not {type(value).__name__}.")
    return value


def _same_structure(old: Any, new: Mapping[str, Any]) -> bool:
    """Whether two Optimizer configs chain the same modules and regularizers (by name)."""
    if not isinstance(old, dict):
        return False

    def names(config: Mapping[str, Any], key: str) -> list[Any]:
        specs = config.get(key) or []
        return [spec[0] if isinstance(spec, list | tuple) else spec for spec in specs]

    return all(names(old, key) == names(new, key) for key in ("modules", "regularizers"))

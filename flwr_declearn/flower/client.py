"""`DeclearnClient`: a Flower NumPyClient training any Model with any Optimizer config."""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Collection, Mapping, Sequence
from logging import WARNING
from typing import Any

import numpy as np
from flwr.app import ConfigRecord, Context, RecordDict
from flwr.client import NumPyClient
from flwr.common import NDArrays, Scalar, log

from flwr_declearn.data import as_dataset
from flwr_declearn.flower import wire
from flwr_declearn.flower._client_checks import (
    RejectedMessage,
    check_aux_var,
    check_finite,
    check_weights,
    find_non_finite,
)
from flwr_declearn.flower._evaluation import MetricSpec, evaluate_model
from flwr_declearn.flower.config import EvaluationConfig, TrainingConfig
from flwr_declearn.flower.protocol import STATE_KEY, is_internal_key
from flwr_declearn.model.api import Model, Vector, VectorNamesError, check_names
from flwr_declearn.optimizer import Optimizer
from flwr_declearn.optimizer._arrays import zeros_like
from flwr_declearn.optimizer.modules import GaussianNoiseModule
from flwr_declearn.privacy import PrivacyAccountant, noise_multiplier_of

__all__ = ["STATE_KEY", "DeclearnClient", "FitOutput", "RejectedMessage"]

_STATE_CONFIG = "optimizer_config"
_STATE_OPTIM = "optimizer_state"
_STATE_PRIVACY = "privacy_accountant"
_FLOWER_KEYS = frozenset({"server-round"})  # sent by Flower's own strategies
_warned_keys: set[frozenset[str]] = set()


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

    Nothing the server sends is trusted: the global weights (names, specs,
    finite values), the Optimizer and training configs (finite numbers,
    rates included; at most `max_steps` steps) and the aux-vars (Vectors with
    the trainable weights' specs, finite values) are checked before anything
    changes; a fault raises one `RejectedMessage` (a ValueError) naming it,
    and `context.state` is left as it was. A round whose training yields
    non-finite weights, aux-vars or Optimizer state raises a ValueError and
    stores nothing either.

    DP-SGD: when the training config sets `sclip` (per-sample clipping norm)
    and `poisson=True`, and the Optimizer's first module is "gaussian-noise",
    each step clips every sample's gradients to `sclip`, sums them over a
    Poisson sample (rate `q = batch_size / n_samples`), divides by the
    expected batch size `batch_size` and adds the module's noise: a noise
    multiplier of `std * batch_size / sclip` (`privacy.noise_multiplier_of`).
    Every draw is a step (an empty sample takes a noise-only step). The
    client accounts those steps in a `privacy.PrivacyAccountant` kept in
    `context.state` across rounds, and reports "dp_epsilon" and "dp_delta"
    (spent so far) in its metrics, and no "train_loss" (not private); this
    needs the `dp` extra. Evaluation on the training data (no `valid_data`)
    is not private either.

    Weights travel as NDArrays in sorted-name order (see `wire.weight_names`).

    Parameters
    ----------
    model:
        The model to train; initialized from `train_data`'s specs if needed.
    train_data:
        Local training data: an `InMemoryDataset`, numpy `(x, y[, s_wght])`, a
        torch Dataset or DataLoader, a `tf.data.Dataset` or a Hugging Face
        `datasets.Dataset` (see `flwr_declearn.data.as_dataset`). Other types are
        loaded into memory each time a client is built (Flower builds one per
        message): for large data, build the `InMemoryDataset` once with
        `as_dataset` and cache it. Dict items (a Hugging Face dataset in torch
        format, `{"img": ..., "label": ...}`) are read by key: see `as_dataset`
        for the defaults, or call it with `features=` / `target=`.
    context:
        The Flower Context; its `state` stores the Optimizer state across
        rounds. None keeps that state on this instance instead (only valid
        when the same instance serves every round).
    valid_data:
        Local validation data used by `evaluate` (`train_data` if None), in
        the same forms.
    optimizer:
        Fallback Optimizer (or config) used when the server sends none, e.g.
        under a plain Flower strategy. A server-sent config takes precedence.
    train_config:
        Fallback training config, used when the server sends none.
    metrics:
        Evaluation metrics (instances or specs for `build_metric`); by
        default accuracy when the validation targets are class labels.
    max_steps:
        Most training steps a round may ask for (n_steps, or epochs times
        batches per epoch); a larger request is rejected.
    max_seconds:
        If set, local training stops (with a warning) once a round has run
        this many seconds; the steps taken are reported.
    max_aux_norm:
        If set, server aux-var Vectors (e.g. SCAFFOLD's `c`) of a larger L2
        norm are rejected.
    dp_delta:
        The delta at which the DP-SGD epsilon is reported.
    config_keys:
        Config keys that your own code reads: no warning says they are unused.
    seed:
        Batch-order seed: shuffling and Poisson sampling of the training data
        draw from it (None: the dataset's own seed, fresh entropy by default).
        Clients rebuilt with the same seed and samples train identically.
    """

    def __init__(
        self,
        model: Model[Any],
        train_data: Any,
        context: Context | None = None,
        *,
        valid_data: Any | None = None,
        optimizer: Optimizer | Mapping[str, Any] | None = None,
        train_config: TrainingConfig | Mapping[str, Any] | None = None,
        metrics: Sequence[MetricSpec] | None = None,
        max_steps: int = 1_000_000,
        max_seconds: float | None = None,
        max_aux_norm: float | None = None,
        dp_delta: float = 1e-5,
        config_keys: Collection[str] = (),
        seed: int | None = None,
    ) -> None:
        if isinstance(max_steps, bool) or not isinstance(max_steps, int) or max_steps < 1:
            raise ValueError(f"'max_steps' must be a positive int, not {max_steps!r}.")
        if max_seconds is not None and not (
            isinstance(max_seconds, int | float) and max_seconds > 0 and math.isfinite(max_seconds)
        ):
            raise ValueError(
                f"'max_seconds' must be a positive number or None, not {max_seconds!r}."
            )
        if max_aux_norm is not None and not (
            isinstance(max_aux_norm, int | float) and max_aux_norm > 0
        ):
            raise ValueError(
                f"'max_aux_norm' must be a positive number or None, not {max_aux_norm!r}."
            )
        self.model = model
        self.train_data = as_dataset(train_data, seed)
        self.valid_data = None if valid_data is None else as_dataset(valid_data)
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
        self.max_steps = max_steps
        self.max_seconds = max_seconds
        self.max_aux_norm = max_aux_norm
        self.dp_delta = PrivacyAccountant(dp_delta).delta
        self.config_keys = frozenset(config_keys)
        if model.required_data_info:
            model.initialize(self.train_data.get_data_specs().to_data_info())
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
        weights = self._weights_from_ndarrays(parameters)
        out = self.train(weights, config)
        return wire.vector_to_ndarrays(out.weights, self.names), out.num_examples, out.metrics

    def evaluate(
        self, parameters: NDArrays, config: dict[str, Scalar]
    ) -> tuple[float, int, dict[str, Scalar]]:
        """Evaluate the global weights on the validation data: loss, sample count, metrics."""
        weights = self._weights_from_ndarrays(parameters)
        loss, n_samples, metrics = self.evaluate_weights(weights, config)
        return loss, n_samples, dict(metrics)

    # -- framework-neutral core (also used by the Message API ClientApp) -------------------------

    def weights_from_named(self, arrays: Mapping[str, np.ndarray]) -> Vector:
        """Check named arrays against the model's specs and wrap them in its Vector type.

        Raises
        ------
        RejectedMessage
            If names, shapes or dtypes differ from the model's.
        """
        try:
            check_names(self.names, arrays)
        except VectorNamesError as exc:
            raise RejectedMessage(
                f"Weight names do not match the model: {exc.difference}."
            ) from None
        return self._weights_from_ndarrays([arrays[name] for name in self.names])

    def _weights_from_ndarrays(self, arrays: Sequence[np.ndarray]) -> Vector:
        try:
            wire.check_ndarrays(arrays, self.specs)
        except ValueError as exc:
            raise RejectedMessage(str(exc)) from None
        for name, array in zip(self.names, arrays, strict=True):
            if array.dtype.kind in "fc" and not np.isfinite(array).all():
                raise RejectedMessage(f"The global weight '{name}' holds non-finite values.")
        return wire.ndarrays_to_vector(arrays, self.specs, self.vector_type)

    def train(self, weights: Vector, config: Mapping[str, Any]) -> FitOutput:
        """Run one round of local training from `weights`, as configured by the server.

        Raises
        ------
        RejectedMessage
            If the weights, configs or aux-vars are invalid (see the class
            docstring), or no Optimizer config is available; nothing changed.
        ValueError
            If training yields non-finite values; nothing was stored.
        """
        self._warn_unknown_keys(config)
        check_weights(weights, self.specs)
        accountant = self._load_accountant()
        try:
            round_configs = self._round_configs(config)
            optim_config = _decode_dict(round_configs, wire.KEY_OPTIMIZER)
            check_finite(optim_config, "The Optimizer config")
            train_dict = _decode_dict(round_configs, wire.KEY_TRAIN_CONFIG)
            check_finite(train_dict, "The training config")
            train_config = TrainingConfig.from_dict(train_dict)
            self._check_effort(train_config)
            optimizer = self._build_optimizer(optim_config)
            aux = None
            if wire.KEY_AUX_VAR in config:
                aux = wire.decode(_as_bytes(config, wire.KEY_AUX_VAR), self.vector_type)
                check_aux_var(aux, self.model.get_weights(trainable=True), self.max_aux_norm)
                optimizer.process_aux_var(aux)
            dp = self._dp_setup(optimizer, train_config)
        except RejectedMessage:
            raise
        except (ValueError, TypeError, KeyError) as exc:
            message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
            raise RejectedMessage(f"{message}") from exc
        self.model.set_weights(weights)
        optimizer.start_round()
        n_steps = self._run_local_training(optimizer, train_config, dp)
        losses = self.model.collect_training_losses()
        aux_out = {key: val for key, val in optimizer.collect_aux_var().items() if val is not None}
        new_weights = self.model.get_weights()
        for what, value in (
            ("weights", new_weights),
            ("aux-vars", aux_out),
            ("Optimizer state", optimizer.get_state()),
        ):
            found = find_non_finite(value)
            if found is not None:
                raise ValueError(
                    f"Local training produced non-finite {what} (at {found}); nothing was "
                    "stored: lower the learning rate or clip gradients."
                )
        metrics: dict[str, Scalar] = {"n_steps": n_steps}
        if dp is None:
            metrics["train_loss"] = float(np.mean(losses)) if losses else float("nan")
        else:  # no loss: it would be a non-private output
            accountant = accountant or PrivacyAccountant(self.dp_delta)
            accountant.delta = self.dp_delta
            accountant.step(dp.noise_multiplier, dp.sample_rate, n_steps)
            metrics["dp_epsilon"] = accountant.epsilon()
            metrics["dp_delta"] = accountant.delta
        self._save_state(optimizer, round_configs, accountant)
        if aux_out:
            metrics[wire.KEY_AUX_VAR] = wire.encode(aux_out)
        return FitOutput(new_weights, len(self.train_data), metrics)

    def evaluate_weights(
        self, weights: Vector, config: Mapping[str, Any]
    ) -> tuple[float, int, dict[str, float]]:
        """Evaluate `weights` on the validation data: (loss, n_samples, metrics incl. loss)."""
        check_weights(weights, self.specs)
        eval_config = EvaluationConfig()
        if wire.KEY_EVAL_CONFIG in config:
            try:
                eval_config = EvaluationConfig.from_dict(_decode_dict(config, wire.KEY_EVAL_CONFIG))
            except (ValueError, TypeError) as exc:
                raise RejectedMessage(str(exc)) from exc
        self.model.set_weights(weights)
        dataset = self.valid_data if self.valid_data is not None else self.train_data
        results = evaluate_model(self.model, dataset, self._metric_specs, eval_config.batch_size)
        return float(results["loss"]), len(dataset), results

    # -- internals -------------------------------------------------------------------------------

    def _warn_unknown_keys(self, config: Mapping[str, Any]) -> None:
        """Warn (once per set of keys) about config keys that nothing reads."""
        unknown = frozenset(
            key
            for key in config
            if not is_internal_key(str(key))
            and key not in _FLOWER_KEYS
            and key not in self.config_keys
        )
        if unknown and unknown not in _warned_keys:
            _warned_keys.add(unknown)
            log(
                WARNING,
                "flwr_declearn: config key(s) %s are not flwr_declearn's and go unused by "
                "DeclearnClient; read them in your own @app.train() function around "
                "`handle_train` (and pass `config_keys=` to silence this warning).",
                sorted(map(str, unknown)),
            )

    def _check_effort(self, config: TrainingConfig) -> None:
        """Reject a round asking for more than `max_steps` steps."""
        n_samples = len(self.train_data)
        per_epoch = n_samples // config.batch_size
        if not config.drop_remainder and n_samples % config.batch_size:
            per_epoch += 1
        epochs = config.epochs
        by_epochs = None if epochs is None else epochs * per_epoch
        steps = [n for n in (by_epochs, config.n_steps) if n is not None]
        total = min(steps) if steps else 0
        if total > self.max_steps:
            raise RejectedMessage(
                f"The training config asks for {total} steps (n_steps={config.n_steps}, "
                f"n_epochs={config.n_epochs}), more than this client's max_steps="
                f"{self.max_steps}."
            )

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
        """Build the Optimizer and restore its state from the Context, if compatible and finite."""
        optimizer = Optimizer.from_config(optim_config)
        for name in ("lrate", "w_decay"):
            value = getattr(optimizer, name)
            if not math.isfinite(value):
                raise RejectedMessage(f"The Optimizer config gives a non-finite {name}: {value}.")
        record = self._state.get(STATE_KEY)
        if isinstance(record, ConfigRecord) and _STATE_OPTIM in record:
            saved_config = wire.decode(_as_bytes(record, _STATE_CONFIG))
            state = None
            if _same_structure(saved_config, optim_config):
                state = wire.decode(_as_bytes(record, _STATE_OPTIM), self.vector_type)
                if find_non_finite(state) is not None:
                    log(
                        WARNING,
                        "flwr_declearn: the Optimizer state saved in the Context holds "
                        "non-finite values; starting from a fresh Optimizer state.",
                    )
                    state = None
            else:
                log(
                    WARNING,
                    "flwr_declearn: the Optimizer's modules or regularizers changed since the "
                    "last round; starting from a fresh Optimizer state.",
                )
            if state is not None:
                optimizer.set_state(state)
        return optimizer

    def _dp_setup(self, optimizer: Optimizer, config: TrainingConfig) -> _DpSetup | None:
        """Return the DP-SGD settings of this round, or None if it does not run DP-SGD."""
        noise = [mod for mod in optimizer.modules if isinstance(mod, GaussianNoiseModule)]
        if not noise or config.sclip is None:
            return None
        reason = None
        if not isinstance(optimizer.modules[0], GaussianNoiseModule):
            reason = "'gaussian-noise' is not the first module (it must see the clipped gradients)"
        elif not config.poisson:
            reason = "the training config does not set poisson=True"
        if reason is not None:
            log(
                WARNING,
                "flwr_declearn: clipping and noise without DP accounting: %s.",
                reason,
            )
            return None
        s_wght = self.train_data.s_wght
        if s_wght is not None and (
            np.asarray(s_wght).size and not (0 <= np.min(s_wght) and np.max(s_wght) <= 1)
        ):
            raise ValueError(
                "DP-SGD needs sample weights in [0, 1] (they scale the clipped gradients)."
            )
        module = optimizer.modules[0]
        assert isinstance(module, GaussianNoiseModule)
        if not module.safe_mode:
            log(
                WARNING,
                "flwr_declearn: DP-SGD noise with safe_mode=False comes from a predictable "
                "generator: the reported epsilon assumes secret noise.",
            )
        n_samples = len(self.train_data)
        sample_rate = min(1.0, config.batch_size / n_samples)
        expected = sample_rate * n_samples
        return _DpSetup(
            sample_rate=sample_rate,
            expected_batch=expected,
            noise_multiplier=noise_multiplier_of(module.std, config.sclip, expected),
        )

    def _load_accountant(self) -> PrivacyAccountant | None:
        record = self._state.get(STATE_KEY)
        if not isinstance(record, ConfigRecord) or _STATE_PRIVACY not in record:
            return None
        accountant = PrivacyAccountant(self.dp_delta)
        accountant.set_state(wire.decode(_as_bytes(record, _STATE_PRIVACY)))
        return accountant

    def _save_state(
        self,
        optimizer: Optimizer,
        round_configs: Mapping[str, bytes],
        accountant: PrivacyAccountant | None,
    ) -> None:
        """Store the Optimizer state, the server's configs and the DP accountant in the Context."""
        record: dict[str, bytes] = {
            _STATE_CONFIG: wire.encode(optimizer.get_config()),
            _STATE_OPTIM: wire.encode(optimizer.get_state()),
        }
        if wire.KEY_CONFIG_ID in round_configs:
            record.update(round_configs)
        if accountant is not None:
            record[_STATE_PRIVACY] = wire.encode(accountant.get_state())
        self._state[STATE_KEY] = ConfigRecord(record)  # type: ignore[arg-type]

    def _run_local_training(
        self, optimizer: Optimizer, config: TrainingConfig, dp: _DpSetup | None
    ) -> int:
        """Run the epochs or steps of `config`; return the number of steps taken."""
        self.model.collect_training_losses()  # forget losses of earlier calls
        deadline = None if self.max_seconds is None else time.monotonic() + self.max_seconds
        n_steps, epoch = 0, 0
        max_epochs = config.epochs
        while max_epochs is None or epoch < max_epochs:
            epoch_steps = 0
            if dp is not None:
                steps = self._dp_epoch(optimizer, config, dp)
            else:
                steps = self._epoch(optimizer, config)
            for _ in steps:
                n_steps += 1
                epoch_steps += 1
                if config.n_steps is not None and n_steps >= config.n_steps:
                    return n_steps
                if deadline is not None and time.monotonic() >= deadline:
                    log(
                        WARNING,
                        "flwr_declearn: local training stopped after %d step(s): the round "
                        "reached max_seconds=%s.",
                        n_steps,
                        self.max_seconds,
                    )
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

    def _epoch(self, optimizer: Optimizer, config: TrainingConfig) -> Any:
        for batch in self.train_data.generate_batches(
            config.batch_size,
            shuffle=config.shuffle,
            drop_remainder=config.drop_remainder,
            poisson=config.poisson,
        ):
            optimizer.run_train_step(self.model, batch, sclip=config.sclip)
            yield

    def _dp_epoch(self, optimizer: Optimizer, config: TrainingConfig, dp: _DpSetup) -> Any:
        """One epoch of DP-SGD steps: a Poisson draw each, noise-only steps on empty draws."""
        data = self.train_data
        n_samples = len(data)
        n_draws = n_samples // config.batch_size
        if not config.drop_remainder and n_samples % config.batch_size:
            n_draws += 1
        rng = np.random.default_rng()  # fresh OS entropy: independent draws in every round
        for _ in range(n_draws):
            idx = np.flatnonzero(rng.random(n_samples) < dp.sample_rate)
            if idx.size:
                grads = self.model.compute_batch_gradients(data.take(idx), max_norm=config.sclip)
                grads = grads * (idx.size / dp.expected_batch)
            else:
                grads = zeros_like(self.model.get_weights(trainable=True))
            optimizer.apply_gradients(self.model, grads)
            yield


@dataclasses.dataclass(frozen=True)
class _DpSetup:
    sample_rate: float
    expected_batch: float
    noise_multiplier: float


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

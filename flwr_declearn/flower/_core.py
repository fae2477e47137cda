"""Federated optimization logic shared by the Flower strategies (legacy and Message API).

`FederatedCore` owns the global weights, the server Optimizer, the client
Optimizer config and the training config. It builds each client's round
config (including that client's aux-vars) and aggregates the clients'
results into new global weights, as a transaction:

1. every update is checked at the boundary (`_validation`) before anything
   changes: example count, weights (decoded only after their sizes were
   checked against the model's specs), aux-vars; a bad client is skipped
   with one log line; duplicate replies of a client are dropped;
2. the valid updates, in client-id order, go through the server Optimizer's
   aux-var processing, the Aggregator, the server step and the metric
   aggregation; the new state must be finite;
3. on any exception, the weights and the server Optimizer state are restored
   bit for bit and the round is skipped (or, with `on_round_error="fail"`,
   the run stops with an `AggregationError`).

Client ids are strings; the strategies use Flower's `ClientProxy.cid`
(legacy API) or `str(node_id)` (Message API), which are the same value for
a given SuperNode (Flower's `GridClientProxy` sets `cid = str(node_id)`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from logging import ERROR, INFO, WARNING
from pathlib import Path
from typing import Any, Literal

import numpy as np
from flwr.common import Scalar, log

from flwr_declearn.flower import checkpoint, protocol, wire
from flwr_declearn.flower._client_checks import find_non_finite
from flwr_declearn.flower._global_model import GlobalWeights
from flwr_declearn.flower._validation import (
    ClientLimits,
    SpecMismatchError,
    check_aux_var,
    check_count,
    check_weights,
    decode_aux_var,
    max_magnitude,
)
from flwr_declearn.flower.aggregators import Aggregator, ClientWeights, build_aggregator
from flwr_declearn.flower.checkpoint import CheckpointError, thaw
from flwr_declearn.flower.config import EvaluationConfig, TrainingConfig
from flwr_declearn.flower.server_dp import ServerDP
from flwr_declearn.model.api import Model, Vector, VectorSpecError
from flwr_declearn.model.numpy import NumpyVector
from flwr_declearn.optimizer import Optimizer
from flwr_declearn.privacy import PrivacyAccountant

__all__ = ["AggregationError", "ClientUpdate", "FederatedCore", "build_core", "client_order"]

ErrorPolicy = Literal["skip", "fail"]
MetricsFn = Callable[[list[tuple[int, dict[str, Scalar]]]], dict[str, Scalar]]
WeightsPayload = Mapping[str, np.ndarray] | Sequence[np.ndarray]


class AggregationError(RuntimeError):
    """A round's aggregation failed and the strategy was set to stop the run on it."""


def client_order(client_id: str) -> tuple[int, str]:
    """Sort key of client ids: numeric ids in numeric order, then the others."""
    return (len(client_id), client_id) if client_id.isdigit() else (1 << 30, client_id)


@dataclasses.dataclass
class ClientUpdate:
    """A client's training result, as received by the server (nothing of it is trusted).

    Attributes
    ----------
    client_id:
        Stable id of the client (`ClientProxy.cid`, or `str(node_id)`).
    weights:
        The client's new weights: a `{name: array}` mapping, NDArrays in wire
        order (sorted names), or a callable returning either, called once the
        example count was checked (decoders check sizes before decoding).
    num_examples:
        The client's aggregation weight (its number of training examples).
    aux_var:
        Wire-encoded `{aux_name: dict}` aux-vars (bytes), or None.
    metrics:
        Other metrics reported by the client.
    fault:
        A fault the strategy found while reading the reply (the update is
        then skipped with this message).
    """

    client_id: str
    weights: WeightsPayload | Callable[[], WeightsPayload]
    num_examples: Any
    aux_var: Any = None
    metrics: dict[str, Scalar] = dataclasses.field(default_factory=dict)
    fault: str | None = None


@dataclasses.dataclass
class _ValidUpdate:
    client_id: str
    weights: dict[str, np.ndarray]
    num_examples: int
    aux_var: dict[str, Any]
    metrics: dict[str, Scalar]


class FederatedCore:
    """Global state and round logic of declearn-style federated optimization.

    Parameters
    ----------
    weights:
        Initial global weights (all of them, trainable or not).
    trainable:
        Names of the trainable weights; None means all. The server Optimizer
        only updates these, from the pseudo-gradient; the other weights (e.g.
        batch-norm statistics) are replaced by the clients' aggregate.
    client_optimizer:
        Config of the clients' Optimizer (`Optimizer.get_config()` format).
    server_optimizer:
        The server Optimizer, fed with pseudo-gradients.
    train_config, eval_config:
        Settings sent to the clients for training and evaluation.
    aggregator:
        How client updates are combined (see `aggregators`); default "mean".
    limits:
        Bounds on what clients may send (see `ClientLimits`).
    on_round_error:
        "skip" (default): a failed aggregation restores the state and skips
        the round; "fail": it raises an `AggregationError` (ends the run).
    on_spec_mismatch:
        "skip" (default): a client whose weights do not match the model is
        skipped; "fail": it raises a `SpecMismatchError` (ends the run).
    dp:
        Client-level differential privacy (see `server_dp.ServerDP`); it sets
        the aggregator (equal-weight mean of clipped updates) and adds noise.
    """

    def __init__(
        self,
        *,
        weights: NumpyVector,
        trainable: Collection[str] | None,
        client_optimizer: dict[str, Any],
        server_optimizer: Optimizer,
        train_config: TrainingConfig,
        eval_config: EvaluationConfig,
        aggregator: Aggregator | str | Sequence[Any] | None = None,
        limits: ClientLimits | None = None,
        on_round_error: ErrorPolicy = "skip",
        on_spec_mismatch: ErrorPolicy = "skip",
        dp: ServerDP | Mapping[str, Any] | None = None,
    ) -> None:
        if not weights.coefs:
            raise ValueError("The global model has no weights.")
        for name, value in (
            ("on_round_error", on_round_error),
            ("on_spec_mismatch", on_spec_mismatch),
        ):
            if value not in ("skip", "fail"):
                raise ValueError(f"'{name}' must be 'skip' or 'fail', not {value!r}.")
        self.weights = GlobalWeights(weights, weights.coefs if trainable is None else trainable)
        self.names = wire.weight_names(weights)
        self.specs: wire.WeightSpecs = wire.vector_specs(weights)
        self.client_optimizer = client_optimizer
        self.server_optimizer = server_optimizer
        self.train_config = train_config
        self.eval_config = eval_config
        self.dp = ServerDP.build(dp)
        self.accountant: PrivacyAccountant | None = None
        if self.dp is not None:
            if aggregator is not None:
                raise ValueError("Pass either `dp` or `aggregator`: DP sets the aggregator.")
            if set(self.weights.trainable_names) != set(self.names):
                raise ValueError(
                    "Client-level DP covers trainable weights only; this model also has "
                    f"non-trainable ones: {sorted(set(self.names) - set(self.trainable_names))}."
                )
            aggregator = self.dp.aggregator_spec()
            self.accountant = PrivacyAccountant(self.dp.delta)
        self.aggregator = build_aggregator(aggregator)
        self.limits = ClientLimits() if limits is None else limits
        self.on_round_error: ErrorPolicy = on_round_error
        self.on_spec_mismatch: ErrorPolicy = on_spec_mismatch
        self.server_round = 0
        """Index of the last round whose results were aggregated."""
        self.extra_state: dict[str, Any] = {}
        """State of strategy add-ons (e.g. privacy accounting), saved in checkpoints."""
        optim_bytes = wire.encode(client_optimizer)
        train_bytes = wire.encode(train_config.to_dict())
        self._static_fit: dict[str, Scalar] = {
            protocol.KEY_OPTIMIZER: optim_bytes,
            protocol.KEY_TRAIN_CONFIG: train_bytes,
        }
        digest = hashlib.sha256(len(optim_bytes).to_bytes(8, "little") + optim_bytes)
        digest.update(train_bytes)
        self.config_id = digest.digest()[:8]
        """Id of the client configs, sent every round (the configs only when needed)."""
        self._synced: set[str] = set()  # clients known to hold the configs
        self._always_send: set[str] = set()  # clients that failed after receiving them
        self._pending: set[str] = set()  # clients configured for the ongoing round
        self._static_eval: dict[str, Scalar] = {}
        if eval_config != EvaluationConfig():
            self._static_eval[protocol.KEY_EVAL_CONFIG] = wire.encode(eval_config.to_dict())

    # -- global weights --------------------------------------------------------------------------

    @property
    def trainable_names(self) -> list[str]:
        """Names of the weights the server Optimizer updates."""
        return list(self.weights.trainable_names)

    def get_weights(self) -> dict[str, np.ndarray]:
        """Return the global weights by name (do not modify the arrays in place)."""
        return dict(self.weights.arrays)

    def get_ndarrays(self) -> list[np.ndarray]:
        """Return the global weights as NDArrays in wire order."""
        return [self.weights.arrays[name] for name in self.names]

    def set_weights(self, weights: WeightsPayload) -> None:
        """Replace the global weights, after checking their names and specs.

        Raises
        ------
        ValueError
            If names, shapes or dtypes differ from the global model's.
        """
        self.weights.set_weights(NumpyVector(self.named_weights(weights)))

    def named_weights(self, weights: WeightsPayload) -> dict[str, np.ndarray]:
        """Return weights given by name or in wire order as `{name: array}` (specs unchecked).

        Raises
        ------
        SpecMismatchError
            If a sequence holds another number of arrays than the model.
        """
        if isinstance(weights, Mapping):
            return dict(weights)
        arrays = list(weights)
        if len(arrays) != len(self.names):
            raise SpecMismatchError(
                f"Expected {len(self.names)} weight arrays, received {len(arrays)}."
            )
        return dict(zip(self.names, arrays, strict=True))

    # -- round configuration ---------------------------------------------------------------------

    def fit_configs(
        self, server_round: int, client_ids: Sequence[str]
    ) -> dict[str, dict[str, Scalar]]:
        """Return a distinct fit config per client, carrying that client's aux-vars.

        Every config holds the round index and the id of the client configs;
        the Optimizer and training configs themselves go only to clients not
        known to hold them (first participation, or failure since).
        """
        aux = self.server_optimizer.collect_aux_var()
        per_client = Optimizer.split_server_aux_var(aux, list(client_ids)) if aux else {}
        self._pending = set(client_ids)
        configs: dict[str, dict[str, Scalar]] = {}
        for cid in client_ids:
            config: dict[str, Scalar] = {
                protocol.KEY_ROUND: int(server_round),
                protocol.KEY_CONFIG_ID: self.config_id,
            }
            if cid not in self._synced or cid in self._always_send:
                config.update(self._static_fit)
            payload = per_client.get(cid)
            if payload:
                config[protocol.KEY_AUX_VAR] = wire.encode(payload)
            configs[cid] = config
        return configs

    def note_responses(self, client_ids: Iterable[str]) -> None:
        """Record which configured clients answered the round.

        Clients that did not answer get the configs again in their next
        round; those that already held them (and so may not keep a state,
        e.g. a client built without a persistent Context) get them in every
        later round, at a cost of a few hundred bytes.
        """
        answered = set(client_ids)
        failed = self._pending - answered
        self._always_send |= failed & self._synced
        self._synced = (self._synced | (answered & self._pending)) - failed
        self._pending = set()

    def evaluate_config(self, server_round: int) -> dict[str, Scalar]:
        """Return a (new) evaluation config dict."""
        return {protocol.KEY_ROUND: int(server_round), **self._static_eval}

    # -- validation ------------------------------------------------------------------------------

    def validate(self, server_round: int, updates: Iterable[ClientUpdate]) -> list[_ValidUpdate]:
        """Check every update at the boundary; return the valid ones in client-id order.

        Invalid updates and duplicate replies of a client are logged (one
        line each, naming the client and the fault) and dropped.

        Raises
        ------
        SpecMismatchError
            With `on_spec_mismatch="fail"`, for a client whose weights do not
            match the model.
        """
        valid: list[_ValidUpdate] = []
        seen: set[str] = set()
        for update in sorted(updates, key=lambda upd: client_order(str(upd.client_id))):
            cid = str(update.client_id)
            if cid in seen:
                _skip(server_round, cid, "duplicate reply (only its first reply is used)")
                continue
            seen.add(cid)
            try:
                valid.append(self._validate(update))
            except VectorSpecError as exc:
                if self.on_spec_mismatch == "fail":
                    raise SpecMismatchError(
                        f"round {server_round}: client {cid}: {exc} (a client of another "
                        "framework or architecture?)"
                    ) from None
                _skip(server_round, cid, str(exc))
            except Exception as exc:  # any fault of client data skips that client
                _skip(server_round, cid, _describe(exc))
        return valid

    def _validate(self, update: ClientUpdate) -> _ValidUpdate:
        if update.fault is not None:
            raise ValueError(update.fault)
        count = check_count(update.num_examples, self.limits)
        payload = update.weights() if callable(update.weights) else update.weights
        weights = self.named_weights(payload)
        check_weights(
            weights, self.weights.get_weights(), self.weights.trainable_names, self.limits
        )
        aux: dict[str, Any] = {}
        if update.aux_var is not None:
            aux = check_aux_var(
                decode_aux_var(update.aux_var),
                self._aux_names(),
                self.weights.get_weights(trainable=True),
                self.limits,
            )
        missing = self._aux_names() - set(aux)
        if missing:  # e.g. a plain Flower client (its own training, FedAvg's reply)
            raise ValueError(
                f"no aux-vars for {sorted(missing)}, which the server Optimizer needs: the "
                "client must train with the client Optimizer the server sends (answer through "
                "flwr_declearn.flower.handle_train), or drop those modules"
            )
        metrics = protocol.public_entries(update.metrics)
        return _ValidUpdate(str(update.client_id), weights, count, aux, metrics)

    def _aux_names(self) -> set[str]:
        return {
            module.aux_name or module.name
            for module in self.server_optimizer.modules
            if module.aux_name is not None
        }

    # -- aggregation -----------------------------------------------------------------------------

    def aggregate(
        self,
        server_round: int,
        updates: Iterable[ClientUpdate],
        metrics_fn: MetricsFn | None = None,
    ) -> dict[str, Scalar] | None:
        """Validate client updates and run the round's aggregation as a transaction.

        Returns
        -------
        The aggregated fit metrics (`metrics_fn` of the accepted clients'
        `(num_examples, metrics)`, default: none), or None if the round
        changed nothing (no valid update, or a failed aggregation).

        Raises
        ------
        AggregationError, SpecMismatchError
            Only where `on_round_error` / `on_spec_mismatch` is "fail".
        """
        valid = self.validate(server_round, updates)
        if not valid:
            log(WARNING, "flwr_declearn: round %s: no valid client update.", server_round)
            return None
        weights_before = dict(self.weights.arrays)
        optimizer_before = wire.encode(self.server_optimizer.get_state())
        extra_before = wire.encode(self.extra_state)
        try:
            accepted = self._process_aux_var(server_round, valid, optimizer_before)
            if not accepted:
                log(WARNING, "flwr_declearn: round %s: no valid client update.", server_round)
                self._restore(weights_before, optimizer_before, extra_before)
                return None
            with np.errstate(over="ignore", invalid="ignore"):  # non-finite results checked below
                self._step(server_round, accepted)
            self._check_new_state()
            metrics = (
                metrics_fn([(upd.num_examples, upd.metrics) for upd in accepted])
                if metrics_fn is not None
                else {}
            )
        except Exception as exc:
            self._restore(weights_before, optimizer_before, extra_before)
            log(
                ERROR,
                "flwr_declearn: round %s: aggregation failed, server state restored, "
                "round skipped: %s",
                server_round,
                _describe(exc),
            )
            if self.on_round_error == "fail":
                raise AggregationError(
                    f"round {server_round}: aggregation failed: {_describe(exc)}"
                ) from exc
            return None
        self.server_round = int(server_round)
        log(
            INFO,
            "flwr_declearn: round %s: aggregated %d client update(s).",
            server_round,
            len(accepted),
        )
        return metrics

    def _step(self, server_round: int, updates: Sequence[_ValidUpdate]) -> None:
        """Aggregate the updates and apply the server Optimizer (may raise; caller restores)."""
        trainable = self.weights.trainable_names
        aggregate = self.aggregate_updates(server_round, updates, self.names, trainable)
        if self.dp is not None:
            self.dp.add_noise(aggregate, trainable, len(updates), server_round)
        gradients = {
            name: aggregate[name].astype(self.weights.arrays[name].dtype) for name in trainable
        }
        for name, grad in gradients.items():
            if grad.dtype.kind == "f" and grad.size and not np.isfinite(max_magnitude(grad)):
                raise FloatingPointError(f"the pseudo-gradient of '{name}' is not finite")
        self.server_optimizer.apply_gradients(self.weights, NumpyVector(gradients))
        frozen = [name for name in self.names if name not in set(trainable)]
        for name in frozen:
            reference = self.weights.arrays[name]
            value = reference.astype(np.float64) - aggregate[name]
            if reference.dtype.kind in "biu":
                value = np.rint(value)
            self.weights.arrays[name] = value.astype(reference.dtype)

    def aggregate_updates(
        self,
        server_round: int,
        updates: Sequence[_ValidUpdate],
        names: Sequence[str],
        trainable: Sequence[str],
    ) -> dict[str, np.ndarray]:
        """Return the float64 aggregate of the clients' `w_global - w_k` (the pseudo-gradient)."""
        clients = [ClientWeights(upd.client_id, upd.num_examples, upd.weights) for upd in updates]
        return self.aggregator.aggregate_weights(self.weights.arrays, clients, names, trainable)

    def _check_new_state(self) -> None:
        for name, array in self.weights.arrays.items():
            if array.dtype.kind == "f" and array.size and not np.isfinite(max_magnitude(array)):
                raise FloatingPointError(f"the new global weight '{name}' is not finite")
        fault = find_non_finite(self.server_optimizer.get_state(), "state")
        if fault is not None:
            raise FloatingPointError(f"the new server Optimizer state is not finite at {fault}")

    def _restore(self, weights: dict[str, np.ndarray], optimizer: bytes, extra: bytes) -> None:
        self.weights.arrays.clear()
        self.weights.arrays.update(weights)
        self.server_optimizer.set_state(thaw(wire.decode(optimizer)))
        self.extra_state = thaw(wire.decode(extra))

    def _process_aux_var(
        self, server_round: int, valid: Sequence[_ValidUpdate], snapshot: bytes
    ) -> list[_ValidUpdate]:
        """Feed the clients' aux-vars to the server Optimizer; return the updates it accepted.

        If the server Optimizer rejects the joint aux-vars, its state is
        restored (from `snapshot`, its wire-encoded state before the round)
        and each client's aux-vars are tried alone, to skip (and log) the
        clients at fault before processing the others together.
        """
        merged = _merge_aux(valid)
        if not merged:
            return list(valid)
        try:
            self.server_optimizer.process_aux_var(merged)
            return list(valid)
        except Exception:
            self.server_optimizer.set_state(thaw(wire.decode(snapshot)))
        good: list[_ValidUpdate] = []
        for upd in valid:
            try:
                if upd.aux_var:
                    self.server_optimizer.process_aux_var(_merge_aux([upd]))
            except Exception as exc:
                _skip(
                    server_round,
                    upd.client_id,
                    f"the server Optimizer rejected its aux-vars: {exc!r}",
                )
            else:
                good.append(upd)
            finally:
                self.server_optimizer.set_state(thaw(wire.decode(snapshot)))
        merged = _merge_aux(good)
        if merged:
            self.server_optimizer.process_aux_var(merged)
        return good

    def account_privacy(self, sample_rate: float) -> tuple[float, float]:
        """Account an aggregated round of client-level DP; return the (epsilon, delta) spent.

        Raises
        ------
        ImportError
            If `dp-accounting` is not installed.
        """
        assert self.dp is not None and self.accountant is not None
        self.accountant.step(self.dp.noise_multiplier, sample_rate)
        self.extra_state["privacy"] = self.accountant.get_state()
        return self.accountant.epsilon(), self.dp.delta

    # -- checkpointing ---------------------------------------------------------------------------

    def checkpoint_content(self) -> dict[str, Any]:
        """Return the server state as a `checkpoint.write_checkpoint` content dict."""
        return {
            "server_round": self.server_round,
            "weights": self.weights.get_weights(),
            "trainable": list(self.weights.trainable_names),
            "server_optimizer": {
                "config": self.server_optimizer.get_config(),
                "state": self.server_optimizer.get_state(),
            },
            "client_optimizer": self.client_optimizer,
            "train_config": self.train_config.to_dict(),
            "eval_config": self.eval_config.to_dict(),
            "extra": self.extra_state,
        }

    def save_checkpoint(self, path: str | os.PathLike[str], keep: int = 1) -> Path:
        """Write the server state to `path` (see `checkpoint`); return the path written."""
        return checkpoint.write_checkpoint(path, self.checkpoint_content(), keep=keep)

    def load_checkpoint(self, path: str | os.PathLike[str]) -> None:
        """Restore the weights, round index and server Optimizer state saved by `save_checkpoint`.

        Everything is checked (format, hash, weight names and specs,
        finiteness, the Optimizer state loaded into a fresh Optimizer) before
        the live state is replaced; on error, nothing changes.

        Raises
        ------
        CheckpointError
            If the file is unreadable, altered or does not fit this strategy.
        """
        content = checkpoint.read_checkpoint(path)
        try:
            loaded = checkpoint.check_content(
                content, self.weights, self.server_optimizer.get_config(), self.dp
            )
        except Exception as exc:  # any invalid value makes the file a bad checkpoint
            text = str(exc) if isinstance(exc, CheckpointError) else _describe(exc)
            raise CheckpointError(f"Checkpoint {str(path)!r}: {text}") from exc
        self.weights.set_weights(loaded.weights)
        self.server_optimizer.set_state(loaded.optimizer_state)
        self.server_round = loaded.server_round
        self.extra_state = loaded.extra
        if self.accountant is not None and "privacy" in loaded.extra:
            self.accountant.set_state(loaded.extra["privacy"])
        self._synced = set()


# -- helpers ---------------------------------------------------------------------------------------


def _skip(server_round: int, client_id: str, fault: str) -> None:
    log(
        WARNING,
        "flwr_declearn: round %s: skipping the update of client %s: %s",
        server_round,
        client_id,
        fault,
    )


def _describe(exc: BaseException) -> str:
    text = str(exc)
    if isinstance(exc, KeyError) and exc.args:
        text = str(exc.args[0])
    return f"{type(exc).__name__}: {text}" if not isinstance(exc, ValueError | TypeError) else text


def _merge_aux(updates: Sequence[_ValidUpdate]) -> dict[str, dict[str, Any]]:
    return Optimizer.merge_client_aux_var({upd.client_id: upd.aux_var for upd in updates})


def build_core(
    *,
    client_optimizer: Optimizer | Mapping[str, Any],
    model: Model[Any] | None = None,
    initial_weights: Vector | Mapping[str, Any] | None = None,
    trainable: Collection[str] | None = None,
    server_optimizer: Optimizer | Mapping[str, Any] | None = None,
    train_config: TrainingConfig | Mapping[str, Any] | None = None,
    eval_config: EvaluationConfig | Mapping[str, Any] | None = None,
    **options: Any,
) -> FederatedCore:
    """Build a FederatedCore from the user-facing arguments of the strategies.

    `options` are FederatedCore's keyword-only settings (aggregator, limits...).

    Raises
    ------
    ValueError
        If neither or both of `model` and `initial_weights` are given, or the
        model is not initialized.
    """
    if (model is None) == (initial_weights is None):
        raise ValueError("Pass exactly one of `model` and `initial_weights`.")
    if model is not None:
        if model.required_data_info:
            raise ValueError(
                "The model must be initialized before building the strategy; it still needs "
                f"data_info fields {sorted(model.required_data_info)}."
            )
        packed = model.get_weights().pack()
        names = set(model.get_weights(trainable=True).coefs)
        if trainable is not None and set(trainable) != names:
            raise ValueError("Pass `trainable` only with `initial_weights`: the model defines it.")
        trainable = names
    else:
        assert initial_weights is not None
        packed = (
            initial_weights.pack() if isinstance(initial_weights, Vector) else dict(initial_weights)
        )
    weights = NumpyVector({name: np.array(value, copy=True) for name, value in packed.items()})
    if isinstance(client_optimizer, Optimizer):
        client_config = client_optimizer.get_config()
    elif isinstance(client_optimizer, Mapping):
        client_config = dict(client_optimizer)
        Optimizer.from_config(client_config)  # fail early on an invalid config
    else:
        raise TypeError(
            "`client_optimizer` must be an Optimizer or its config dict, "
            f"not {type(client_optimizer).__name__}."
        )
    if server_optimizer is None:
        server = Optimizer(lrate=1.0)
    elif isinstance(server_optimizer, Optimizer):
        server = server_optimizer
    else:
        server = Optimizer.from_config(dict(server_optimizer))
    if train_config is None:
        train_config = TrainingConfig()
    elif isinstance(train_config, Mapping):
        train_config = TrainingConfig.from_dict(train_config)
    if eval_config is None:
        eval_config = EvaluationConfig()
    elif isinstance(eval_config, Mapping):
        eval_config = EvaluationConfig.from_dict(eval_config)
    return FederatedCore(
        weights=weights,
        trainable=trainable,
        client_optimizer=client_config,
        server_optimizer=server,
        train_config=train_config,
        eval_config=eval_config,
        **options,
    )

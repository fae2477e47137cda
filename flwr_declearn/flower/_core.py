"""Federated optimization logic shared by the Flower strategies (legacy and Message API).

`FederatedCore` owns the global weights, the server Optimizer, the client
Optimizer config and the training config. It builds each client's round
config (including that client's aux-vars) and aggregates the clients'
results into new global weights.

Client ids are strings; the strategies use Flower's `ClientProxy.cid`
(legacy API) or `str(node_id)` (Message API), which are the same value for
a given SuperNode (Flower's `GridClientProxy` sets `cid = str(node_id)`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import tempfile
from collections.abc import Collection, Iterable, Mapping, Sequence
from logging import INFO, WARNING
from pathlib import Path
from typing import Any

import numpy as np
from flwr.common import Scalar, log

from flwr_declearn.flower import aggregation, wire
from flwr_declearn.flower._global_model import GlobalWeights
from flwr_declearn.flower.config import EvaluationConfig, TrainingConfig
from flwr_declearn.model.api import Model, Vector
from flwr_declearn.model.numpy import NumpyVector
from flwr_declearn.optimizer import Optimizer
from flwr_declearn.utils import from_jsonable, to_jsonable

__all__ = ["CHECKPOINT_FORMAT", "ClientUpdate", "FederatedCore", "build_core"]

CHECKPOINT_FORMAT = "flwr_declearn.server_checkpoint"
CHECKPOINT_VERSION = 1
_META_KEY = "__meta__"
_WEIGHT_PREFIX = "weights/"


@dataclasses.dataclass
class ClientUpdate:
    """A client's training result, as received by the server.

    Attributes
    ----------
    client_id:
        Stable id of the client (`ClientProxy.cid`, or `str(node_id)`).
    weights:
        The client's new weights: NDArrays in wire order (sorted names), or
        a `{name: array}` mapping.
    num_examples:
        The client's aggregation weight (its number of training examples).
    aux_var:
        Wire-encoded `{aux_name: dict}` aux-vars (bytes), or None. Any other
        value makes the update invalid.
    metrics:
        Other metrics reported by the client.
    """

    client_id: str
    weights: Sequence[np.ndarray] | Mapping[str, np.ndarray]
    num_examples: int
    aux_var: Scalar | None = None
    metrics: dict[str, Scalar] = dataclasses.field(default_factory=dict)


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
        batch-norm statistics) are replaced by the clients' weighted average.
    client_optimizer:
        Config of the clients' Optimizer (`Optimizer.get_config()` format).
    server_optimizer:
        The server Optimizer, fed with pseudo-gradients.
    train_config, eval_config:
        Settings sent to the clients for training and evaluation.
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
    ) -> None:
        if not weights.coefs:
            raise ValueError("The global model has no weights.")
        self.model = GlobalWeights(weights, weights.coefs if trainable is None else trainable)
        self.specs: wire.WeightSpecs = wire.vector_specs(weights)
        self.names = wire.weight_names(weights)
        self.client_optimizer = client_optimizer
        self.server_optimizer = server_optimizer
        self.train_config = train_config
        self.eval_config = eval_config
        self.server_round = 0
        """Index of the last round whose results were aggregated."""
        optim_bytes = wire.encode(client_optimizer)
        train_bytes = wire.encode(train_config.to_dict())
        self._static_fit: dict[str, Scalar] = {
            wire.KEY_OPTIMIZER: optim_bytes,
            wire.KEY_TRAIN_CONFIG: train_bytes,
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
            self._static_eval[wire.KEY_EVAL_CONFIG] = wire.encode(eval_config.to_dict())

    # -- global weights --------------------------------------------------------------------------

    @property
    def trainable_names(self) -> list[str]:
        """Names of the weights the server Optimizer updates."""
        return self.model.trainable_names

    def get_weights(self) -> dict[str, np.ndarray]:
        """Return the global weights by name (do not modify the arrays in place)."""
        return self.model.get_weights().pack()

    def get_ndarrays(self) -> list[np.ndarray]:
        """Return the global weights as NDArrays in wire order."""
        return wire.vector_to_ndarrays(self.model.get_weights(), self.names)

    def set_weights(self, weights: Sequence[np.ndarray] | Mapping[str, np.ndarray]) -> None:
        """Replace the global weights, after checking them against the model's specs.

        Raises
        ------
        ValueError
            If names, shapes or dtypes differ from the global model's.
        """
        self.model.set_weights(NumpyVector(self._named_weights(weights)))

    def _named_weights(
        self, weights: Sequence[np.ndarray] | Mapping[str, np.ndarray]
    ) -> dict[str, np.ndarray]:
        if isinstance(weights, Mapping):
            if set(weights) != set(self.names):
                missing = sorted(set(self.names) - set(weights))
                extra = sorted(set(weights) - set(self.names))
                raise ValueError(
                    f"Weight names do not match the model: missing {missing}, unexpected {extra}."
                )
            arrays = [weights[name] for name in self.names]
        else:
            arrays = list(weights)
        wire.check_ndarrays(arrays, self.specs)
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
                wire.KEY_ROUND: int(server_round),
                wire.KEY_CONFIG_ID: self.config_id,
            }
            if cid not in self._synced or cid in self._always_send:
                config.update(self._static_fit)
            payload = per_client.get(cid)
            if payload:
                config[wire.KEY_AUX_VAR] = wire.encode(payload)
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
        return {wire.KEY_ROUND: int(server_round), **self._static_eval}

    # -- aggregation -----------------------------------------------------------------------------

    def aggregate(self, server_round: int, updates: Sequence[ClientUpdate]) -> list[str]:
        """Validate client updates, feed aux-vars to the server Optimizer and update the weights.

        Invalid updates (weights not matching the model, non-finite values,
        bad example count, undecodable aux-vars) are skipped and logged.

        Returns
        -------
        The ids of the clients whose updates were used (empty: no change).
        """
        valid: list[_ValidUpdate] = []
        for update in updates:
            try:
                valid.append(self._validate(update))
            except (ValueError, TypeError) as exc:
                log(
                    WARNING,
                    "flwr_declearn: round %s: skipping the update of client %s: %s",
                    server_round,
                    update.client_id,
                    exc,
                )
        if not valid:
            log(WARNING, "flwr_declearn: round %s: no valid client update.", server_round)
            return []
        valid = self._process_aux_var(server_round, valid)
        if not valid:
            log(WARNING, "flwr_declearn: round %s: no valid client update.", server_round)
            return []
        counts = [upd.num_examples for upd in valid]
        clients = [upd.weights for upd in valid]
        trainable = self.model.trainable_names
        global_weights = self.model.get_weights().pack()
        gradients = aggregation.pseudo_gradient(global_weights, clients, counts, trainable)
        frozen = [name for name in self.names if name not in set(trainable)]
        averaged = aggregation.weighted_average(clients, counts, frozen) if frozen else {}
        self.server_optimizer.apply_gradients(self.model, NumpyVector(gradients))
        if averaged:
            all_weights = self.model.get_weights().pack()
            all_weights.update(averaged)
            self.model.set_weights(NumpyVector(all_weights))
        self.server_round = int(server_round)
        log(
            INFO,
            "flwr_declearn: round %s: aggregated %d client update(s).",
            server_round,
            len(valid),
        )
        return [upd.client_id for upd in valid]

    def _validate(self, update: ClientUpdate) -> _ValidUpdate:
        count = update.num_examples
        if not isinstance(count, int | np.integer) or isinstance(count, bool) or count <= 0:
            raise ValueError(f"num_examples must be a positive int, not {count!r}")
        weights = self._named_weights(update.weights)
        for name, array in weights.items():
            if array.dtype.kind == "f" and not np.isfinite(array).all():
                raise ValueError(f"weight '{name}' holds non-finite values")
        aux: dict[str, Any] = {}
        if update.aux_var is not None:
            if not isinstance(update.aux_var, bytes):
                raise TypeError(f"aux-vars must be bytes, not {type(update.aux_var).__name__}")
            aux = wire.decode(update.aux_var, NumpyVector)
            if not isinstance(aux, dict) or not all(isinstance(v, dict) for v in aux.values()):
                raise ValueError("aux-vars must be a dict of dicts {aux_name: {key: value}}")
        return _ValidUpdate(update.client_id, weights, int(count), aux, dict(update.metrics))

    def _process_aux_var(
        self, server_round: int, valid: Sequence[_ValidUpdate]
    ) -> list[_ValidUpdate]:
        """Feed the clients' aux-vars to the server Optimizer; return the updates it accepted.

        If the server Optimizer rejects the joint aux-vars, its state is
        restored and each client's aux-vars are tried alone, to skip (and
        log) the clients at fault before processing the others together.
        """
        merged = _merge_aux([upd for upd in valid])
        if not merged:
            return list(valid)
        snapshot = self.server_optimizer.get_state()
        try:
            self.server_optimizer.process_aux_var(merged)
            return list(valid)
        except Exception:  # attributed to specific clients below, else re-raised
            self.server_optimizer.set_state(snapshot)
        good: list[_ValidUpdate] = []
        for upd in valid:
            try:
                if upd.aux_var:
                    self.server_optimizer.process_aux_var(_merge_aux([upd]))
            except Exception as exc:  # any rejection of a client's aux-vars skips it
                log(
                    WARNING,
                    "flwr_declearn: round %s: skipping the update of client %s: the server "
                    "Optimizer rejected its aux-vars: %r",
                    server_round,
                    upd.client_id,
                    exc,
                )
            else:
                good.append(upd)
            finally:
                self.server_optimizer.set_state(snapshot)
        merged = _merge_aux(good)
        if merged:
            self.server_optimizer.process_aux_var(merged)
        return good

    # -- checkpointing ---------------------------------------------------------------------------

    def save_checkpoint(self, path: str | os.PathLike[str]) -> Path:
        """Write the server state to an `.npz` file (atomically), without pickle.

        The file holds the global weights as arrays and a JSON document with
        the round index, the trainable names, the configs and the server
        Optimizer's state.

        Returns
        -------
        The path written.
        """
        path = Path(path)
        meta = {
            "format": CHECKPOINT_FORMAT,
            "version": CHECKPOINT_VERSION,
            "server_round": self.server_round,
            "trainable": self.model.trainable_names,
            "server_optimizer": {
                "config": self.server_optimizer.get_config(),
                "state": to_jsonable(self.server_optimizer.get_state()),
            },
            "client_optimizer": self.client_optimizer,
            "train_config": self.train_config.to_dict(),
            "eval_config": self.eval_config.to_dict(),
        }
        arrays = {_WEIGHT_PREFIX + name: value for name, value in self.get_weights().items()}
        arrays[_META_KEY] = np.frombuffer(json.dumps(meta).encode("utf-8"), dtype=np.uint8)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as file:
                np.savez(file, **arrays)  # type: ignore[arg-type]
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return path

    def load_checkpoint(self, path: str | os.PathLike[str]) -> None:
        """Restore the weights, round index and server Optimizer state saved by `save_checkpoint`.

        The weights must match this core's model specs and trainable names.

        Raises
        ------
        ValueError
            If the file is not a compatible checkpoint.
        """
        try:
            with np.load(path, allow_pickle=False) as data:
                arrays = {key: data[key] for key in data.files}
        except (OSError, ValueError) as exc:
            raise ValueError(f"Cannot read checkpoint {str(path)!r}: {exc}") from exc
        if _META_KEY not in arrays:
            raise ValueError(f"{str(path)!r} is not a flwr_declearn checkpoint (no metadata).")
        meta = json.loads(arrays.pop(_META_KEY).tobytes().decode("utf-8"))
        if meta.get("format") != CHECKPOINT_FORMAT or meta.get("version") != CHECKPOINT_VERSION:
            raise ValueError(
                f"{str(path)!r}: unsupported checkpoint format {meta.get('format')!r} "
                f"version {meta.get('version')!r}."
            )
        weights = {
            key.removeprefix(_WEIGHT_PREFIX): value
            for key, value in arrays.items()
            if key.startswith(_WEIGHT_PREFIX)
        }
        if sorted(meta["trainable"]) != sorted(self.model.trainable_names):
            raise ValueError(
                f"{str(path)!r}: trainable weights {sorted(meta['trainable'])} differ from "
                f"the model's {sorted(self.model.trainable_names)}."
            )
        if meta["server_optimizer"]["config"] != self.server_optimizer.get_config():
            log(
                WARNING,
                "flwr_declearn: the checkpoint's server Optimizer config differs from the "
                "current one; restoring its state into the current Optimizer.",
            )
        round_index = meta.get("server_round")
        if not isinstance(round_index, int) or isinstance(round_index, bool) or round_index < 0:
            raise ValueError(f"{str(path)!r}: invalid server_round {round_index!r}.")
        self.set_weights(weights)
        self.server_optimizer.set_state(from_jsonable(meta["server_optimizer"]["state"]))
        self.server_round = round_index
        self._synced = set()


def _merge_aux(updates: Sequence[_ValidUpdate]) -> dict[str, dict[str, Any]]:
    """Regroup clients' `{aux_name: aux}` into `{aux_name: {client_id: aux}}`."""
    merged: dict[str, dict[str, Any]] = {}
    for upd in updates:
        for aux_name, aux in upd.aux_var.items():
            merged.setdefault(aux_name, {})[upd.client_id] = aux
    return merged


def build_core(
    *,
    model: Model[Any] | None,
    initial_weights: Vector | Mapping[str, Any] | None,
    trainable: Collection[str] | None,
    client_optimizer: Optimizer | Mapping[str, Any],
    server_optimizer: Optimizer | Mapping[str, Any] | None,
    train_config: TrainingConfig | Mapping[str, Any] | None,
    eval_config: EvaluationConfig | Mapping[str, Any] | None,
) -> FederatedCore:
    """Build a FederatedCore from the user-facing arguments of the strategies.

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
    )

"""`JaxModelBase`: the weights, training and inference plumbing of the JAX models.

Subclasses (HaikuModel, JaxModel) say how weights are initialized and how
the forward pass reads them; everything else runs through the jit-compiled
functions of `_compiled`, on a flat dict of named weights.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from random import SystemRandom
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from flwr_declearn.data import Batch, aggregate_data_info
from flwr_declearn.model._canonical import CanonicalNames, group_entries
from flwr_declearn.model._model_utils import split_batch
from flwr_declearn.model.api import Model
from flwr_declearn.model.haiku._vector import JaxNumpyVector, select_device
from flwr_declearn.model.jax import _compiled as compiled
from flwr_declearn.model.jax._compiled import Forward, Params, Pending
from flwr_declearn.utils import DevicePolicy, get_device_policy

__all__ = ["JaxModelBase"]

LossFn = Callable[[jax.Array, jax.Array], jax.Array]


class JaxModelBase(Model[JaxNumpyVector]):
    """Model over a flat dict of named jax arrays, trained through jit-compiled calls.

    Device placement: weights live on the device of the global `DevicePolicy`
    at instantiation (and `update_device_policy`); batches are placed there and
    compiled computations run there.

    Randomness: the forward pass gets a fresh key at each call, drawn from a
    sequence seeded by `seed` (dropout masks differ across samples when
    gradients are clipped sample-wise).
    """

    fused_vector_type = JaxNumpyVector
    _vector_type = JaxNumpyVector

    def __init__(self, model: Any, loss: LossFn, seed: int | None, canonical_names: bool) -> None:
        if not callable(loss):
            raise TypeError(f"'loss' must be a callable, not {type(loss).__name__}.")
        super().__init__(model)
        self._loss_fn = loss
        if seed is None:
            seed = SystemRandom().randrange(10**6)
        self._seed = int(seed)
        self._canonical = bool(canonical_names)
        policy = get_device_policy()
        self._device = select_device(policy.gpu, policy.idx)
        self._rng = jax.device_put(jax.random.PRNGKey(self._seed), self._device)
        self._names: list[str] = []  # exchanged names (canonical ones if asked)
        self._native: dict[str, str] = {}  # exchanged name -> framework name
        self._trainable: list[str] = []
        self._train: Params = {}
        self._fixed: Params = {}
        self._pending: Pending | None = None  # (updates, scale) not yet added to `_train`
        self._dtype: Any = None
        self._forward: Forward | None = None
        self._static_loss = compiled.static(loss)
        self._data_info: dict[str, Any] = {}

    # -- subclass hooks --------------------------------------------------------------------------

    def _build_forward(self, renames: tuple[tuple[str, str], ...] | None) -> Forward:
        """The hashable `forward(params, key, *inputs)`; `renames` maps our names to native ones."""
        raise NotImplementedError

    def _canonical_names(self, native: dict[str, jax.Array]) -> CanonicalNames:
        """Canonical names of the weights, given by native name in model order."""
        raise NotImplementedError

    def _init_weights(self, inputs: tuple[jax.Array, ...]) -> None:
        """Create the weights by running the model on a one-sample batch `inputs`."""
        raise NotImplementedError

    @staticmethod
    def _layer_entries(native: dict[str, jax.Array], sep: str) -> list[Any]:
        """`group_entries` of native names `"{layer}{sep}{leaf}"`, grouped by layer."""
        groups: dict[str, dict[str, tuple[int, ...]]] = {}
        for name, value in native.items():
            layer, _, leaf = name.rpartition(sep)
            groups.setdefault(layer, {})[leaf] = tuple(value.shape)
        return group_entries(list(groups.items()), sep=sep)

    def _set_initial_weights(self, native: dict[str, Any]) -> None:
        """Adopt initial weights, keyed by native name in model order (all trainable)."""
        native = jax.device_put(dict(native), self._device)
        names = list(native)
        if self._canonical:
            canon = self._canonical_names(native)
            exchanged = [e.canonical for e in canon.entries]  # model order, roles in set order
            self._native = {e.canonical: e.native for e in canon.entries}
        else:
            exchanged = names
            self._native = {n: n for n in names}
        flat = {ours: native[self._native[ours]] for ours in exchanged}
        self._names = list(flat)
        self._trainable = list(flat)
        self._train, self._fixed, self._pending = dict(flat), {}, None
        self._dtype = next(
            (v.dtype for v in flat.values() if jnp.issubdtype(v.dtype, jnp.floating)), None
        )
        renames = tuple(self._native.items()) if self._canonical else None
        self._forward = self._build_forward(renames)

    # -- properties and setup --------------------------------------------------------------------

    @property
    def device_policy(self) -> DevicePolicy:
        if self._device.platform == "cpu":
            return DevicePolicy(gpu=False, idx=None)
        return DevicePolicy(gpu=True, idx=int(self._device.id))

    @property
    def required_data_info(self) -> set[str]:
        return set() if self._names else {"features_shape", "data_type"}

    def initialize(self, data_info: dict[str, Any]) -> None:
        """Create the weights on zeros shaped by `features_shape` and `data_type` (once).

        Raises
        ------
        KeyError
            If a required field is missing.
        """
        if self._names:
            return
        info = aggregate_data_info([data_info], self.required_data_info)
        self._init_weights(self._sample_inputs(info))
        self._data_info = info

    def initialize_from_batch(self, batch: Batch) -> None:
        """Create the weights by running the model on a sample batch's inputs (once)."""
        if self._names:
            return
        inputs, _, _ = self._unpack_batch((split_batch(batch)[0], None, None))
        self._init_weights(tuple(x[:1] for x in inputs))
        self._data_info = {
            "features_shape": list(inputs[0].shape[1:]),
            "data_type": str(inputs[0].dtype),
        }

    def _setup_config(self) -> dict[str, Any]:
        """The `get_config` entries that `_restore_setup` reads back (seed, names, trainable)."""
        return {
            "seed": self._seed,
            "data_info": self._data_info,
            "trainable": self._trainable if self._names else None,
            "canonical_names": self._canonical,
        }

    def _restore_setup(self, config: dict[str, Any]) -> None:
        """Initialize (if not yet) and select the trainable weights, as `config` records."""
        if config.get("data_info") and not self._names:
            self.initialize(config["data_info"])
        if config.get("trainable") is not None:
            self._require_initialized()
            self._select_trainable(self._trainable_from_names(list(config["trainable"])))

    def _require_initialized(self) -> None:
        if not self._names:
            raise RuntimeError(self._uninitialized_message())

    def update_device_policy(self, policy: DevicePolicy | None = None) -> None:
        if policy is None:
            policy = get_device_policy()
        device = select_device(policy.gpu, policy.idx)
        self._flush()
        self._device = device
        self._train = jax.device_put(self._train, device)
        self._fixed = jax.device_put(self._fixed, device)
        self._rng = jax.device_put(self._rng, device)

    # -- weights ---------------------------------------------------------------------------------

    def get_weight_names(self, trainable: bool = False) -> list[str]:
        """Return the ordered names of the weights (only the trainable ones if `trainable`)."""
        return list(self._trainable if trainable else self._names)

    def _select_trainable(self, keep: set[str]) -> None:
        """Make the weights named in `keep` trainable, and freeze all the others."""
        params = self._all_params()
        self._trainable = [name for name in self._names if name in keep]
        self._train = {k: params[k] for k in self._trainable}
        self._fixed = {k: v for k, v in params.items() if k not in keep}

    def _trainable_from_names(self, names: Sequence[str]) -> set[str]:
        unknown = sorted(set(names) - set(self._names))
        if unknown or not all(isinstance(c, str) for c in names):
            raise KeyError(f"Unknown weight names: {unknown or list(names)}.")
        return set(names)

    def _flush(self) -> None:
        """Add pending updates to the trainable weights.

        `apply_updates` defers the addition to the next gradients computation,
        which fuses it into the same compiled call; every other reader of the
        weights flushes first.
        """
        if self._pending is not None:
            self._train = compiled.add_trees(self._train, *self._pending)
            self._pending = None

    def _all_params(self) -> Params:
        self._flush()
        merged = self._train | self._fixed
        return {name: merged[name] for name in self._names}

    def get_weights(self, trainable: bool = False) -> JaxNumpyVector:
        self._require_initialized()
        # Copies: fused training steps donate the weights' buffers to their outputs.
        if trainable:
            self._flush()
            train = compiled.copy_tree(self._train)
            return JaxNumpyVector({name: train[name] for name in self._train})
        params = self._all_params()
        copied = compiled.copy_tree(params)
        return JaxNumpyVector({name: copied[name] for name in params})

    def set_weights(self, weights: JaxNumpyVector, trainable: bool = False) -> None:
        self._require_initialized()
        current = self._train if trainable else self._all_params()
        context = "the trainable weights" if trainable else "the weights"
        self._check_vector(weights, JaxNumpyVector(current), context)
        new = {
            k: jax.device_put(weights.coefs[k].astype(v.dtype), self._device)
            for k, v in current.items()
        }
        new = compiled.copy_tree(new)  # own buffers (device_put may alias the caller's)
        self._pending = None  # every trainable weight is replaced
        self._train = {k: new[k] if k in new else v for k, v in self._train.items()}
        self._fixed = {k: new[k] if k in new else v for k, v in self._fixed.items()}

    # -- training --------------------------------------------------------------------------------

    def compute_batch_gradients(
        self, batch: Batch, max_norm: float | None = None
    ) -> JaxNumpyVector:
        step = self._step_inputs(batch, max_norm)
        grads, loss, self._rng, train = compiled.grads_and_loss(
            self._forward, self._static_loss, self._train, step
        )
        if train is not None:  # pending updates were fused into the call
            self._train, self._pending = train, None
        self._loss_history.append(loss)
        return JaxNumpyVector({name: grads[name] for name in self._trainable})

    def run_fused_step(
        self,
        batch: Batch,
        max_norm: float | None,
        rule: Callable[[Params, Params, Any], tuple[Params, Any]],
        args: Any,
    ) -> Any:
        """Gradients and `rule`'s update in one jit-compiled call (see `Model.run_fused_step`).

        `rule` is a static argument of the call: pass the same object at each
        step (a new one means a new compilation).
        """
        step = self._step_inputs(batch, max_norm)
        train, outputs, loss, self._rng = compiled.fused_step(
            self._forward, self._static_loss, rule, self._train, step, args
        )
        self._train, self._pending = train, None
        self._loss_history.append(loss)
        return outputs

    def _step_inputs(self, batch: Batch, max_norm: float | None) -> compiled.StepInputs:
        """The compiled steps' inputs besides the trainable weights."""
        self._require_initialized()
        batch_arrays = self._unpack_batch(batch, lazy=True)
        max_norm = self._check_max_norm(max_norm)
        return compiled.StepInputs(self._pending, self._fixed, self._rng, batch_arrays, max_norm)

    def apply_updates(self, updates: JaxNumpyVector, scale: float = 1.0) -> None:
        """Add `scale * updates` to the trainable weights.

        `scale` lets an optimizer apply `-lrate * direction` without computing it
        first. The addition is deferred to the next compiled gradients call (or
        to the next read of the weights), saving a dispatch per step.
        """
        self._check_vector(updates, JaxNumpyVector(self._train), "the updates")
        self._flush()
        self._pending = (dict(updates.coefs), float(scale))

    # -- inference -------------------------------------------------------------------------------

    def _predict(self, inputs: Any) -> jax.Array:
        self._require_initialized()
        inputs, _, _ = self._unpack_batch((inputs, None, None))
        self._flush()
        y_pred, self._rng = compiled.predict(
            self._forward, self._train, self._fixed, self._rng, inputs
        )
        return y_pred

    def loss_function(self, y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
        s_loss = compiled.sample_losses(self._static_loss, self._array(y_pred), self._array(y_true))
        return np.asarray(s_loss)

    # -- internals -------------------------------------------------------------------------------

    def _array(self, data: Any, lazy: bool = False) -> Any:
        """Place an array on the model's device, cast to the weights' float dtype if floating.

        With `lazy`, numpy arrays are left to the jit-compiled function they are
        passed to, which moves them to the device of its (committed) weights.
        """
        is_jax = isinstance(data, jax.Array)
        if not is_jax:
            data = np.asarray(data)
        dtype = self._dtype
        if dtype is not None and data.dtype != dtype and data.dtype.kind == "f":
            data = data.astype(dtype)
        elif not is_jax and data.dtype.kind in "iu":  # cast here: cheaper than jax's cast
            data = data.astype(jax.dtypes.canonicalize_dtype(data.dtype), copy=False)
        if lazy and not is_jax:
            return data
        return jax.device_put(data, self._device)

    def _unpack_batch(
        self, batch: Batch, lazy: bool = False
    ) -> tuple[tuple[jax.Array, ...], jax.Array | None, jax.Array | None]:
        inputs, y_true, s_wght = split_batch(batch)
        if not isinstance(inputs, list | tuple):
            inputs = (inputs,)
        return (
            tuple(self._array(x, lazy) for x in inputs),
            None if y_true is None else self._array(y_true, lazy),
            None if s_wght is None else self._array(s_wght, lazy),
        )

    def _sample_inputs(self, data_info: dict[str, Any]) -> tuple[jax.Array, ...]:
        """A one-sample batch of zeros shaped after `features_shape` and `data_type`."""
        shape, dtype = data_info["features_shape"], data_info["data_type"]
        return (jax.device_put(np.zeros((1, *shape), dtype=dtype), self._device),)

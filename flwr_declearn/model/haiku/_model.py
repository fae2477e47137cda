"""Model wrapping a haiku-transformed function and a sample-wise loss."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Mapping
from random import SystemRandom
from typing import Any, Self

import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np

from flwr_declearn.data import Batch, aggregate_data_info
from flwr_declearn.model._model_utils import (
    check_vector,
    dump_pickle_hex,
    load_pickle_hex,
    raise_on_names_mismatch,
    split_batch,
)
from flwr_declearn.model.api import Model
from flwr_declearn.model.haiku._vector import JaxNumpyVector, select_device
from flwr_declearn.utils import DevicePolicy, get_device_policy, register_type

__all__ = ["HaikuModel"]

Params = dict[str, jax.Array]
"""Flat mapping of `"layer:weight"` names to arrays."""
LossFn = Callable[[jax.Array, jax.Array], jax.Array]
Pending = tuple[Params, float]
"""Updates not yet added to the weights, and their scale."""
Criterion = Callable[[str, str, jax.Array], bool] | Mapping[str, Mapping[str, Any]] | list[str]


def _nest(flat: Mapping[str, jax.Array]) -> dict[str, dict[str, jax.Array]]:
    """Turn `{"layer:weight": array}` into haiku's `{layer: {weight: array}}`."""
    nested: dict[str, dict[str, jax.Array]] = {}
    for key, value in flat.items():
        layer, name = key.rsplit(":", 1)
        nested.setdefault(layer, {})[name] = value
    return nested


def _samplewise(s_loss: jax.Array) -> jax.Array:
    """Average a loss array over all but its first (batch) axis."""
    if s_loss.ndim == 0:
        raise ValueError("The loss function returned a scalar: it must return sample-wise values.")
    if s_loss.ndim == 1:
        return s_loss
    return s_loss.reshape(s_loss.shape[0], -1).mean(axis=1)


class HaikuModel(Model[JaxNumpyVector]):
    """Model wrapping a haiku function and its loss.

    Weights are named `"{layer}:{weight}"` (e.g. `"mlp/~/linear_0:w"`). All are
    trainable until `set_trainable_weights` freezes some.

    Device placement: weights live on the device of the global `DevicePolicy`
    at instantiation (and `update_device_policy`); batches are placed there and
    jit-compiled computations run there.

    Randomness: the forward pass gets a fresh key at each call, drawn from a
    sequence seeded by `seed` (dropout masks differ across samples when
    gradients are clipped sample-wise).

    Parameters
    ----------
    model:
        Function such that `model(*inputs)` runs haiku modules and returns
        predictions; it is wrapped with `haiku.transform`.
    loss:
        Jax function `loss(y_pred, y_true)` returning sample-wise values (first
        axis: batch; other axes are averaged).
    seed:
        Seed of the random key sequence; drawn at random if None.
    """

    def __init__(
        self, model: Callable[..., jax.Array], loss: LossFn, seed: int | None = None
    ) -> None:
        if not callable(model) or not callable(loss):
            raise TypeError("HaikuModel needs callable 'model' and 'loss' functions.")
        super().__init__(hk.transform(model))
        self._model: hk.Transformed = self._model
        self._model_fn = model
        self._loss_fn = loss
        if seed is None:
            seed = SystemRandom().randrange(10**6)
        self._seed = int(seed)
        policy = get_device_policy()
        self._device = select_device(policy.gpu, policy.idx)
        self._rng = jax.device_put(jax.random.PRNGKey(self._seed), self._device)
        self._names: list[str] = []
        self._trainable: list[str] = []
        self._train: Params = {}
        self._fixed: Params = {}
        self._pending: Pending | None = None  # (updates, scale) not yet added to `_train`
        self._dtype: Any = None
        self._data_info: dict[str, Any] = {}
        self._losses: list[jax.Array] = []
        # Static arguments of the module-level jitted functions: instances built
        # from the same functions share their compiled code.
        self._fns = (_static(model), _static(loss))

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
        """Initialize the weights from `features_shape` and `data_type` (once).

        Raises
        ------
        KeyError
            If a required field is missing.
        """
        if self._names:
            return
        info = aggregate_data_info([data_info], self.required_data_info)
        inputs = jax.device_put(
            np.zeros((1, *info["features_shape"]), dtype=info["data_type"]), self._device
        )
        self._rng, key = jax.random.split(self._rng)
        params = _init(self._fns[0], key, inputs)
        flat = {
            f"{layer}:{name}": value
            for layer, weights in params.items()
            for name, value in weights.items()
        }
        self._data_info = info
        self._names = list(flat)
        self._trainable = list(flat)
        self._train, self._fixed = dict(flat), {}
        self._dtype = next(
            (v.dtype for v in flat.values() if jnp.issubdtype(v.dtype, jnp.floating)), None
        )

    def _require_initialized(self) -> None:
        if not self._names:
            raise RuntimeError("HaikuModel must be initialized first (see `initialize`).")

    def update_device_policy(self, policy: DevicePolicy | None = None) -> None:
        if policy is None:
            policy = get_device_policy()
        device = select_device(policy.gpu, policy.idx)
        self._flush()
        self._device = device
        self._train = jax.device_put(self._train, device)
        self._fixed = jax.device_put(self._fixed, device)
        self._rng = jax.device_put(self._rng, device)

    # -- config ----------------------------------------------------------------------------------

    def get_config(self) -> dict[str, Any]:
        """Return a JSON-serializable config, holding the pickled model and loss functions.

        The functions are pickled by reference (they must be importable,
        module-level functions). This is for local persistence only:
        `from_config` loads them only with `allow_pickle=True`.

        Raises
        ------
        TypeError
            If a function cannot be pickled (e.g. a lambda).
        """
        return {
            "serialization": "pickle",
            "model": dump_pickle_hex(self._model_fn, "haiku model function"),
            "loss": dump_pickle_hex(self._loss_fn, "loss function"),
            "seed": self._seed,
            "data_info": self._data_info,
            "trainable": self._trainable if self._names else None,
        }

    @classmethod
    def from_config(cls, config: dict[str, Any], allow_pickle: bool = False) -> Self:
        """Rebuild a HaikuModel from `get_config`'s output.

        Parameters
        ----------
        config:
            Output of `get_config`.
        allow_pickle:
            Must be True: the functions are pickled, and unpickling runs
            arbitrary code. Only load configs you stored yourself.

        Raises
        ------
        ValueError
            If `allow_pickle` is False.
        KeyError
            If the config lacks the "model" or "loss" entries.
        """
        for key in ("model", "loss"):
            if key not in config:
                raise KeyError(f"HaikuModel config lacks the '{key}' entry.")
        model_fn = load_pickle_hex(config["model"], "haiku model function", allow_pickle)
        loss_fn = load_pickle_hex(config["loss"], "loss function", allow_pickle)
        model = cls(model_fn, loss_fn, seed=config.get("seed"))
        if config.get("data_info"):
            model.initialize(config["data_info"])
            if config.get("trainable") is not None:
                model.set_trainable_weights(list(config["trainable"]))
        return model

    # -- weights ---------------------------------------------------------------------------------

    def get_weight_names(self, trainable: bool = False) -> list[str]:
        """Return the ordered names of the weights (only the trainable ones if `trainable`)."""
        return list(self._trainable if trainable else self._names)

    def set_trainable_weights(self, criterion: Criterion) -> None:
        """Select the trainable weights; freeze all the others.

        Parameters
        ----------
        criterion:
            - a list of weight names (see `get_weight_names`) to keep trainable;
            - a callable `(layer, name, value) -> bool`, True for trainable weights
              (as in `haiku.data_structures.partition`);
            - a dict `{layer: {name: anything}}` whose entries are the trainable weights.

        Raises
        ------
        RuntimeError
            If the model is not initialized.
        KeyError
            If a list names unknown weights.
        TypeError
            If `criterion` has none of these forms.
        """
        self._require_initialized()
        self._flush()
        params = self._all_params()
        if isinstance(criterion, list):
            unknown = sorted(set(criterion) - set(self._names))
            if unknown or not all(isinstance(c, str) for c in criterion):
                raise KeyError(f"Unknown weight names: {unknown or criterion}.")
            keep = set(criterion)
        elif isinstance(criterion, Mapping):
            if not all(isinstance(v, Mapping) for v in criterion.values()):
                raise TypeError("A dict criterion must map layer names to dicts of weight names.")
            keep = {f"{layer}:{name}" for layer, names in criterion.items() for name in names}
        elif callable(criterion) and len(inspect.signature(criterion).parameters) == 3:
            include: Callable[[str, str, jax.Array], bool] = criterion  # type: ignore[assignment]
            keep = set()
            for key, value in params.items():
                layer, name = key.rsplit(":", 1)
                if include(layer, name, value):
                    keep.add(key)
        else:
            raise TypeError(
                "'criterion' must be a list of weight names, a dict {layer: {name: ...}} "
                f"or a callable (layer, name, value) -> bool, not {criterion!r}."
            )
        self._trainable = [name for name in self._names if name in keep]
        self._train = {k: params[k] for k in self._trainable}
        self._fixed = {k: v for k, v in params.items() if k not in keep}

    def _flush(self) -> None:
        """Add pending updates to the trainable weights.

        `apply_updates` defers the addition to the next gradients computation,
        which fuses it into the same compiled call; every other reader of the
        weights flushes first.
        """
        if self._pending is not None:
            self._train = _add_trees(self._train, *self._pending)
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
            train = _copy_tree(self._train)
            return JaxNumpyVector({name: train[name] for name in self._train})
        params = self._all_params()
        copied = _copy_tree(params)
        return JaxNumpyVector({name: copied[name] for name in params})

    def set_weights(self, weights: JaxNumpyVector, trainable: bool = False) -> None:
        self._require_initialized()
        current = self._train if trainable else self._all_params()
        shapes = {k: tuple(v.shape) for k, v in current.items()}
        check_vector(
            weights,
            JaxNumpyVector,
            shapes,
            "trainable weights" if trainable else "weights",
            "HaikuModel",
        )
        new = {
            k: jax.device_put(weights.coefs[k].astype(v.dtype), self._device)
            for k, v in current.items()
        }
        new = _copy_tree(new)  # own buffers (device_put may alias the caller's): see get_weights
        self._pending = None  # every trainable weight is replaced
        self._train = {k: new[k] if k in new else v for k, v in self._train.items()}
        self._fixed = {k: new[k] if k in new else v for k, v in self._fixed.items()}

    # -- training --------------------------------------------------------------------------------

    def compute_batch_gradients(
        self, batch: Batch, max_norm: float | None = None
    ) -> JaxNumpyVector:
        self._require_initialized()
        batch_arrays = self._unpack_batch(batch, lazy=True)
        norm = self._max_norm(max_norm)
        grads, loss, self._rng, train = _grads_and_loss(
            *self._fns, self._train, self._pending, self._fixed, self._rng, batch_arrays, norm
        )
        if train is not None:  # pending updates were fused into the call
            self._train, self._pending = train, None
        self._losses.append(loss)
        return JaxNumpyVector({name: grads[name] for name in self._trainable})

    fused_vector_type = JaxNumpyVector

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
        self._require_initialized()
        batch_arrays = self._unpack_batch(batch, lazy=True)
        norm = self._max_norm(max_norm)
        train, outputs, loss, self._rng = _fused_step(
            *self._fns,
            rule,
            self._train,
            self._pending,
            self._fixed,
            self._rng,
            batch_arrays,
            norm,
            args,
        )
        self._train, self._pending = train, None
        self._losses.append(loss)
        return outputs

    @staticmethod
    def _max_norm(max_norm: float | None) -> float | None:
        if max_norm is None:
            return None
        if max_norm <= 0:
            raise ValueError(f"'max_norm' must be positive, not {max_norm!r}.")
        return float(max_norm)

    def apply_updates(self, updates: JaxNumpyVector, scale: float = 1.0) -> None:
        """Add `scale * updates` to the trainable weights.

        `scale` lets an optimizer apply `-lrate * direction` without computing it
        first. The addition is deferred to the next compiled gradients call (or
        to the next read of the weights), saving a dispatch per step.
        """
        if not isinstance(updates, JaxNumpyVector):
            raise TypeError(
                f"HaikuModel expects updates as a JaxNumpyVector, not {type(updates).__name__}."
            )
        coefs = updates.coefs
        if coefs.keys() != self._train.keys():
            raise_on_names_mismatch(coefs, self._train, "updates")
        for name, value in self._train.items():
            if coefs[name].shape != value.shape:
                shapes = {k: tuple(v.shape) for k, v in self._train.items()}
                check_vector(updates, JaxNumpyVector, shapes, "updates", "HaikuModel")
        self._flush()
        self._pending = (dict(coefs), float(scale))

    def collect_training_losses(self) -> list[float]:
        losses, self._losses = self._losses, []
        return [*self._loss_history, *(float(loss) for loss in losses)]

    # -- inference -------------------------------------------------------------------------------

    def compute_batch_predictions(
        self, batch: Batch
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        self._require_initialized()
        inputs, y_true, s_wght = split_batch(batch)
        if y_true is None:
            raise TypeError("HaikuModel.compute_batch_predictions needs a batch with y_true.")
        inputs, _, _ = self._unpack_batch((inputs, None, None))
        self._flush()
        y_pred, self._rng = _predict(self._fns[0], self._train, self._fixed, self._rng, inputs)
        return (
            np.asarray(y_true),
            np.asarray(y_pred),
            None if s_wght is None else np.asarray(s_wght),
        )

    def loss_function(self, y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
        s_loss = _sample_losses(self._fns[1], self._array(y_pred), self._array(y_true))
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


register_type(HaikuModel, name="HaikuModel", group="Model")


class _ById:
    """Hashable stand-in for an unhashable function (compared by identity)."""

    def __init__(self, func: Callable[..., Any]) -> None:
        self.func = func

    def __call__(self, *args: Any) -> Any:
        return self.func(*args)


def _static(func: Callable[..., Any]) -> Callable[..., Any]:
    """Return `func` if hashable (a valid jit static argument), else a `_ById` wrapper."""
    try:
        hash(func)
    except TypeError:
        return _ById(func)
    return func


@functools.partial(jax.jit, static_argnums=0)
def _init(model_fn: Callable[..., jax.Array], key: jax.Array, inputs: jax.Array) -> Any:
    return hk.transform(model_fn).init(key, inputs)


@functools.partial(jax.jit, static_argnums=0)
def _predict(
    model_fn: Callable[..., jax.Array],
    train: Params,
    fixed: Params,
    rng: jax.Array,
    inputs: tuple[jax.Array, ...],
) -> tuple[jax.Array, jax.Array]:
    rng, key = jax.random.split(rng)
    return hk.transform(model_fn).apply(_nest(train | fixed), key, *inputs), rng


@functools.partial(jax.jit, static_argnums=0)
def _sample_losses(loss_fn: LossFn, y_pred: jax.Array, y_true: jax.Array) -> jax.Array:
    return _samplewise(loss_fn(y_pred, y_true))


def _batch_grads(
    model_fn: Callable[..., jax.Array],
    loss_fn: LossFn,
    train: Params,
    fixed: Params,
    key: jax.Array,
    inputs: tuple[jax.Array, ...],
    y_true: jax.Array | None,
    s_wght: jax.Array | None,
) -> tuple[Params, jax.Array]:
    """Batch-averaged gradients and (weighted) loss; traced into the jitted functions below."""
    apply = hk.transform(model_fn).apply

    def batch_loss(train: Params) -> jax.Array:
        y_pred = apply(_nest(train | fixed), key, *inputs)
        s_loss = _samplewise(loss_fn(y_pred, y_true))  # type: ignore[arg-type]
        if s_wght is not None:
            s_loss = s_loss * s_wght
        return jnp.mean(s_loss)

    loss, grads = jax.value_and_grad(batch_loss)(train)
    return grads, loss


def _clipped_batch_grads(
    model_fn: Callable[..., jax.Array],
    loss_fn: LossFn,
    train: Params,
    fixed: Params,
    key: jax.Array,
    inputs: tuple[jax.Array, ...],
    y_true: jax.Array | None,
    s_wght: jax.Array | None,
    max_norm: jax.Array,
) -> tuple[Params, jax.Array]:
    """Average of sample-wise gradients, each clipped to an L2 norm of `max_norm`, and loss.

    Sample-wise gradients come from `jax.vmap`, each sample with its own key.
    """
    apply = hk.transform(model_fn).apply
    n_samples = inputs[0].shape[0]
    keys = jax.random.split(key, n_samples)

    def sample_loss(
        train: Params, key: jax.Array, inputs: tuple[jax.Array, ...], y_true: jax.Array | None
    ) -> jax.Array:
        batched = tuple(x[None] for x in inputs)
        y_pred = apply(_nest(train | fixed), key, *batched)
        y_one = None if y_true is None else y_true[None]
        return jnp.sum(_samplewise(loss_fn(y_pred, y_one)))  # type: ignore[arg-type]

    grad_fn = jax.vmap(jax.value_and_grad(sample_loss), in_axes=(None, 0, 0, 0))
    s_loss, grads = grad_fn(train, keys, inputs, y_true)
    sq_norms = sum(jnp.sum(jnp.square(g.reshape(n_samples, -1)), axis=1) for g in grads.values())
    scale = jnp.minimum(1.0, max_norm / jnp.sqrt(sq_norms))
    if s_wght is not None:
        scale = scale * s_wght
        s_loss = s_loss * s_wght
    scale = scale / n_samples
    out = {k: jnp.tensordot(scale.astype(g.dtype), g, axes=1) for k, g in grads.items()}
    return out, jnp.mean(s_loss)


def _grads_with_pending(
    model_fn: Callable[..., jax.Array],
    loss_fn: LossFn,
    train: Params,
    pending: Pending | None,
    fixed: Params,
    rng: jax.Array,
    batch: tuple[tuple[jax.Array, ...], jax.Array | None, jax.Array | None],
    max_norm: jax.Array | None,
) -> tuple[Params, jax.Array, jax.Array, Params]:
    """Add `pending` updates to `train`, then return `(grads, loss, next rng, train)`."""
    if pending is not None:
        train = _add_trees(train, *pending)
    rng, key = jax.random.split(rng)
    if max_norm is None:
        grads, loss = _batch_grads(model_fn, loss_fn, train, fixed, key, *batch)
    else:
        grads, loss = _clipped_batch_grads(model_fn, loss_fn, train, fixed, key, *batch, max_norm)
    return grads, loss, rng, train


@functools.partial(jax.jit, static_argnums=(0, 1))
def _grads_and_loss(
    model_fn: Callable[..., jax.Array],
    loss_fn: LossFn,
    train: Params,
    pending: Pending | None,
    fixed: Params,
    rng: jax.Array,
    batch: tuple[tuple[jax.Array, ...], jax.Array | None, jax.Array | None],
    max_norm: jax.Array | None,
) -> tuple[Params, jax.Array, jax.Array, Params | None]:
    """Gradients (clipped sample-wise if `max_norm` is set), loss, next PRNG key, new weights.

    `pending` updates (if any) are first added to `train`; the updated weights
    are returned then (None otherwise).
    """
    grads, loss, rng, new_train = _grads_with_pending(
        model_fn, loss_fn, train, pending, fixed, rng, batch, max_norm
    )
    return grads, loss, rng, None if pending is None else new_train


@functools.partial(jax.jit, static_argnums=(0, 1, 2), donate_argnums=3)
def _fused_step(
    model_fn: Callable[..., jax.Array],
    loss_fn: LossFn,
    rule: Callable[..., Any],
    train: Params,
    pending: Pending | None,
    fixed: Params,
    rng: jax.Array,
    batch: tuple[tuple[jax.Array, ...], jax.Array | None, jax.Array | None],
    max_norm: jax.Array | None,
    args: Any,
) -> tuple[Params, Any, jax.Array, jax.Array]:
    """Gradients, then `rule(train, grads, args)`: new weights, rule outputs, loss, next key.

    `train`'s buffers are donated to the new weights (updated in place): the
    model never lets them out (`get_weights` copies).
    """
    grads, loss, rng, train = _grads_with_pending(
        model_fn, loss_fn, train, pending, fixed, rng, batch, max_norm
    )
    new_train, outputs = rule(train, grads, args)
    return new_train, outputs, loss, rng


@jax.jit
def _copy_tree(params: Params) -> Params:
    return {k: jnp.copy(v) for k, v in params.items()}


@jax.jit
def _add_trees(params: Params, updates: Params, scale: float) -> Params:  # used in other jits
    """Add `scale * updates` to weights, keeping the weights' dtypes."""
    return {k: (v + updates[k] * scale).astype(v.dtype) for k, v in params.items()}

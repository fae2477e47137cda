"""Model wrapping a Keras 3 model (tensorflow backend) and a sample-wise loss."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Self

import keras
import numpy as np
import tensorflow as tf

from flwr_declearn.data import Batch, aggregate_data_info
from flwr_declearn.model._model_utils import split_batch
from flwr_declearn.model.api._model import FusedRule, Model
from flwr_declearn.model.tensorflow._compiled import (
    FusedGraphStep,
    Trainable,
    flatten,
    gradients_graph,
    predict_graph,
)
from flwr_declearn.model.tensorflow._loss import LossSpec, build_keras_loss, samplewise
from flwr_declearn.model.tensorflow._naming import canonical_names, structural_names
from flwr_declearn.model.tensorflow._vector import (
    TensorflowVector,
    eager_tensor,
    select_device,
    shape_of,
)
from flwr_declearn.utils import DevicePolicy, get_device_policy, register_type

__all__ = ["TensorflowModel"]


def _same_device(current: str, target: str) -> bool:
    cur, tgt = tf.DeviceSpec.from_string(current), tf.DeviceSpec.from_string(target)
    same_index = (cur.device_index or 0) == (tgt.device_index or 0)
    return bool(cur.device_type == tgt.device_type and same_index)


class TensorflowModel(Model[TensorflowVector]):
    """Model wrapping a Keras 3 model (tensorflow backend) and its loss.

    Trainable weights are the model's `trainable_weights`; `get_weights()`
    also returns the non-trainable ones (frozen layers, batch-norm statistics).
    Weights are named after the model's structure (see `get_weight_names`), so
    that independently built copies of one architecture share names.

    Gradients and updates run as `tf.function`-compiled graphs (one per set of
    trainable weights), on the device of the global `DevicePolicy`; per-sample
    clipping uses a vectorized jacobian of the sample-wise losses.

    Parameters
    ----------
    model:
        Keras model or layer (a layer is wrapped into a `keras.Sequential`).
    loss:
        Keras Loss instance, name or function `loss(y_true, y_pred)` (Keras'
        argument order), made sample-wise by `build_keras_loss` as
        `keras.Model.compile` would (ranks of labels and outputs aligned);
        axes beyond the batch one are averaged.
    metrics:
        Keras metrics (instances or names) compiled with the model, that
        `evaluate` computes (as in declearn).
    canonical_names:
        Name weights canonically (`"dense_0/kernel"`...), so that torch, haiku
        and JAX clients of one architecture exchange identical weights (see
        `flwr_declearn.model._canonical`); structural Keras names otherwise.
    **kwargs:
        Other arguments to `keras.Model.compile` (kept in the config).
    """

    def __init__(
        self,
        model: keras.Layer,
        loss: LossSpec,
        metrics: Sequence[Any] | None = None,
        canonical_names: bool = False,
        **kwargs: Any,
    ) -> None:
        if keras.backend.backend() != "tensorflow":
            raise RuntimeError(
                f"TensorflowModel needs Keras' tensorflow backend, not '{keras.backend.backend()}'."
            )
        if not isinstance(model, keras.Layer):
            raise TypeError(f"'model' must be a Keras Layer or Model, not {type(model).__name__}.")
        if not isinstance(model, keras.Model):
            model = keras.Sequential([model])
        super().__init__(model)
        self._model: keras.Model = model
        self._loss_spec, self._loss = loss, build_keras_loss(loss, "none")
        self._metrics = list(metrics) if metrics is not None else None
        self._compile_kwargs = dict(kwargs)
        self._canonical = bool(canonical_names)
        policy = get_device_policy()
        self._device = select_device(policy.gpu, policy.idx)
        self._vars: list[Any] = []
        self._names: list[str] = []
        self._trainable_cache: tuple[tuple[bool, ...], Trainable] | None = None
        self._fns: dict[tuple, Any] = {}  # batch structure -> concrete gradients function
        self._fdtype: tf.DType | None = None
        if self._metrics is not None or self._compile_kwargs:
            self._compile()
        if self._model.built:
            self._place_model()

    # -- properties and setup --------------------------------------------------------------------

    @property
    def device_policy(self) -> DevicePolicy:
        spec = tf.DeviceSpec.from_string(self._device)
        if spec.device_type == "GPU":
            return DevicePolicy(gpu=True, idx=spec.device_index or 0)
        return DevicePolicy(gpu=False, idx=None)

    @property
    def required_data_info(self) -> set[str]:
        return set() if self._model.built else {"features_shape"}

    def initialize_from_batch(self, batch: Batch) -> None:
        """Build the model by running it on a sample batch's inputs (any input structure)."""
        if self._model.built:
            return
        inputs, _, _ = split_batch(batch)
        with tf.device(self._device):
            self._model(self._unpack_batch((inputs, None, None))[0], training=False)
        self._place_model()

    def initialize(self, data_info: dict[str, Any]) -> None:
        """Build the model from `features_shape`, unless it is built already.

        Raises
        ------
        KeyError
            If `features_shape` is missing while the model is not built.
        """
        if self._model.built:
            return
        info = aggregate_data_info([data_info], self.required_data_info)
        with tf.device(self._device):
            self._model.build((None, *info["features_shape"]))
        self._place_model()

    def update_device_policy(self, policy: DevicePolicy | None = None) -> None:
        if policy is None:
            policy = get_device_policy()
        self._device = select_device(policy.gpu, policy.idx)
        if self._model.built:
            self._place_model()

    def _place_model(self) -> None:
        """Move the model's weights to our device if needed, and index them."""
        if any(not _same_device(v.value.device, self._device) for v in self._model.weights):
            config = keras.saving.serialize_keras_object(self._model)
            values = [v.numpy() for v in self._model.weights]
            with tf.device(self._device):
                model = keras.saving.deserialize_keras_object(config, safe_mode=False)
                for var, value in zip(model.weights, values, strict=True):
                    var.assign(value)
            self._model = model
        self._vars = list(self._model.weights)
        self._names = structural_names(self._model)
        if self._canonical:
            self._names = canonical_names(self._model, self._names).canonical_names(self._names)
        self._trainable_cache = None
        self._fns = {}
        self._fdtype = None

    def _require_built(self) -> None:
        if not self._model.built:
            raise RuntimeError(self._uninitialized_message())

    # -- config ----------------------------------------------------------------------------------

    def get_config(self, allow_bin: bool = False) -> dict[str, Any]:
        """Return the model's, loss' and metrics' Keras serialization (JSON, no pickle).

        `allow_bin` (declearn's argument) changes nothing: the config holds no bytes.

        Custom layers must be registered with `keras.saving.register_keras_serializable`.
        Weights are not part of the config.
        """
        serialize = keras.saving.serialize_keras_object
        config = {
            "typekey": "TensorflowModel",
            "serialization": "keras",
            "model": serialize(self._model),
            "loss": serialize(self._loss_spec),
            "loss_dtype": self._loss.dtype,
            "canonical_names": self._canonical,
        }
        if self._metrics is not None:
            config["metrics"] = [serialize(metric) for metric in self._metrics]
        if self._compile_kwargs:
            config["kwargs"] = {k: serialize(v) for k, v in self._compile_kwargs.items()}
        return config

    @classmethod
    def from_config(
        cls, config: dict[str, Any], allow_pickle: bool = False, allow_bin: bool = False
    ) -> Self:
        """Rebuild a TensorflowModel from `get_config`'s output.

        `allow_pickle` allows Keras' unsafe deserialization (e.g. of `Lambda`
        layers, whose code is pickled); Keras' safe mode is used otherwise.
        `allow_bin` (declearn's) is ignored: the config holds no bytes.

        Raises
        ------
        KeyError
            If the config lacks the "model" or "loss" entries.
        ValueError
            If the config holds unsafe objects and `allow_pickle` is False.
        """
        cls._require_config_entries(config, "model", "loss")
        policy = get_device_policy()
        with tf.device(select_device(policy.gpu, policy.idx)):
            safe = not allow_pickle
            model = keras.saving.deserialize_keras_object(config["model"], safe_mode=safe)
            loss = keras.saving.deserialize_keras_object(config["loss"], safe_mode=safe)
            metrics = config.get("metrics")
            if metrics is not None:
                metrics = [keras.metrics.get(metric) for metric in metrics]
            kwargs = {
                key: keras.saving.deserialize_keras_object(value, safe_mode=safe)
                for key, value in config.get("kwargs", {}).items()
            }
        canonical = bool(config.get("canonical_names", False))
        out = cls(model, loss, metrics=metrics, canonical_names=canonical, **kwargs)
        if config.get("loss_dtype"):
            out._loss = build_keras_loss(loss, "none", config["loss_dtype"])
        return out

    # -- weights ---------------------------------------------------------------------------------

    def get_weight_names(self, trainable: bool = False) -> list[str]:
        """Return the ordered names of the weights (only the trainable ones if `trainable`)."""
        return [name for name, _ in self._named_vars(trainable)]

    def _named_vars(self, trainable: bool) -> list[tuple[str, Any]]:
        self._require_built()
        if trainable:
            return self._trainable_vars().named
        return list(zip(self._names, self._vars, strict=True))

    def _trainable_vars(self) -> Trainable:
        """The trainable weights (re-indexed when a layer's `trainable` flag changes)."""
        self._require_built()
        flags = (self._model.trainable, *(var.trainable for var in self._vars))
        cache = self._trainable_cache
        if cache is None or cache[0] != flags:
            pairs = zip(self._names, self._vars, strict=True)
            named = [(n, v) for n, v in pairs if v.trainable] if self._model.trainable else []
            cache = self._trainable_cache = (flags, Trainable(named))
        return cache[1]

    def get_weights(self, trainable: bool = False) -> TensorflowVector:
        with tf.device(self._device):
            return TensorflowVector(
                {name: tf.identity(var.value) for name, var in self._named_vars(trainable)}
            )

    def set_weights(self, weights: TensorflowVector, trainable: bool = False) -> None:
        targets = dict(self._named_vars(trainable))
        reference = TensorflowVector({name: var.value for name, var in targets.items()})
        context = "the trainable weights" if trainable else "the weights"
        self._check_vector(weights, reference, context)
        with tf.device(self._device):
            for name, var in targets.items():
                var.assign(tf.cast(weights.coefs[name], var.dtype))

    # -- training --------------------------------------------------------------------------------

    def compute_batch_gradients(
        self, batch: Batch, max_norm: float | None = None
    ) -> TensorflowVector:
        state = self._trainable_vars()
        with tf.device(self._device):
            flat, key = self._flat_batch(batch, max_norm, state.names)
            func = self._fns.get(key)
            if func is None:
                func = self._fns[key] = gradients_graph(
                    self._model, self._loss, state.named, key, flat
                )
            grads, loss = func(*flat)
        self._loss_history.append(loss)
        return TensorflowVector(dict(zip(state.names, grads, strict=True)))

    fused_vector_type = TensorflowVector
    _vector_type = TensorflowVector

    def run_fused_step(
        self, batch: Batch, max_norm: float | None, rule: FusedRule, args: Any
    ) -> Any:
        """Gradients and `rule`'s update in one graph-function call (see `Model.run_fused_step`).

        The graph is traced once per `rule` object and batch structure, and
        called with a flat list of tensors (no per-call argument binding).
        """
        state = self._trainable_vars()
        with tf.device(self._device):
            flat, key = self._flat_batch(batch, max_norm, state.names)
            key = ("fused", rule, *key)
            arg_flat = [
                v.read_value() if isinstance(v, tf.Variable) else v for v in flatten(args, [])
            ]
            fused = self._fns.get(key)
            if fused is None:
                fused = self._fns[key] = FusedGraphStep(
                    self._model, self._loss, state, key[2:], flat, rule, args
                )
            outputs, loss = fused(flat, arg_flat)
        self._loss_history.append(loss)
        return outputs

    def _flat_batch(
        self, batch: Batch, max_norm: float | None, names: tuple[str, ...]
    ) -> tuple[list[tf.Tensor], tuple[Any, ...]]:
        """Return the batch as a flat list of tensors (then `max_norm`), and its structure key."""
        max_norm = self._check_max_norm(max_norm)
        inputs, y_true, s_wght = self._unpack_batch(batch)
        multi = isinstance(inputs, list)
        flat = [*inputs] if multi else [inputs]
        n_inputs = len(flat)
        flat += [t for t in (y_true, s_wght) if t is not None]
        if max_norm is not None:
            flat.append(tf.constant(max_norm, dtype=self._float_dtype()))
        key = (
            "grads" if max_norm is None else "clipped",
            names,
            multi,
            n_inputs,
            y_true is not None,
            s_wght is not None,
            tuple((t.dtype, shape_of(t)[1:]) for t in flat),
        )
        return flat, key

    def apply_updates(self, updates: TensorflowVector, scale: float = 1.0) -> None:
        """Add `scale * updates` to the trainable weights.

        `scale` lets an optimizer apply `-lrate * direction` in the same ops.
        """
        state = self._trainable_vars()
        self._check_vector(updates, state.reference, "the updates")
        values = [updates.coefs[name] for name in state.names]
        alphas: dict[tf.DType, tf.Tensor] = {}
        with tf.device(self._device):
            for (_, var), raw, value in zip(state.named, state.raw, values, strict=True):
                if raw is None:  # no backing tf.Variable found: use Keras' own method
                    var.assign_add(value if scale == 1.0 else value * scale)
                    continue
                dtype = raw.dtype
                if value.dtype is not dtype and value.dtype != dtype:
                    value = tf.cast(value, dtype)
                if scale == 1.0:
                    tf.raw_ops.AssignAddVariableOp(resource=raw.handle, value=value)
                    continue
                alpha = alphas.get(dtype)
                if alpha is None:
                    alpha = alphas[dtype] = tf.constant(-scale, dtype=dtype)
                # var -= alpha * value, i.e. var += scale * value, in one op
                tf.raw_ops.ResourceApplyGradientDescent(var=raw.handle, alpha=alpha, delta=value)

    # -- inference -------------------------------------------------------------------------------

    def _predict(self, inputs: Any) -> tf.Tensor:
        self._require_built()
        with tf.device(self._device):
            inputs, _, _ = self._unpack_batch((inputs, None, None))
            return self._predict_graph(inputs)

    def evaluate(self, dataset: Any) -> dict[str, float]:
        """Compute the loss and compiled `metrics` over a dataset with Keras' `evaluate`.

        `dataset` is an iterable of `(inputs, y_true, s_wght)` batches (as
        `InMemoryDataset.generate_batches` yields), a `tf.data.Dataset` or a
        `keras.utils.PyDataset`.
        """
        self._require_built()
        if not self._model.compiled:
            self._compile()
        if not isinstance(dataset, tf.data.Dataset | keras.utils.PyDataset):
            batches = list(dataset)

            def generate() -> Any:
                for batch in batches:
                    yield tuple(part for part in split_batch(batch) if part is not None)

            dataset, steps = generate(), len(batches)
        else:
            steps = None
        with tf.device(self._device):
            return self._model.evaluate(  # type: ignore[no-any-return]
                dataset, steps=steps, return_dict=True, verbose=0
            )

    def _compile(self) -> None:
        """Compile the Keras model with our loss and metrics (for `evaluate`)."""
        kwargs = {"optimizer": "sgd", **self._compile_kwargs}
        with tf.device(self._device):
            loss = build_keras_loss(self._loss_spec, "sum_over_batch_size", self._loss.dtype)
            self._model.compile(loss=loss, metrics=self._metrics, **kwargs)

    def _predict_graph(self, inputs: Any) -> tf.Tensor:
        """Run the model in inference mode, through one graph per input structure.

        The graph is traced once per structure, with a free batch size (no
        "tf.function retracing" as batch sizes vary across rounds).
        """
        flat = inputs if isinstance(inputs, list) else [inputs]
        key = ("predict", isinstance(inputs, list), tuple((t.dtype, shape_of(t)[1:]) for t in flat))
        func = self._fns.get(key)
        if func is None:
            func = self._fns[key] = predict_graph(self._model, key[1], flat)
        return func(*flat)

    def loss_function(self, y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
        with tf.device(self._device):
            s_loss = self._loss(tf.convert_to_tensor(y_true), tf.convert_to_tensor(y_pred))
            return samplewise(s_loss).numpy()  # type: ignore[no-any-return]

    # -- internals -------------------------------------------------------------------------------

    def _float_dtype(self) -> tf.DType:
        """The dtype of the first floating-point weight (Keras' floatx if none)."""
        if self._fdtype is None:
            dtypes = [tf.as_dtype(var.dtype) for var in self._vars]
            floats = [dtype for dtype in dtypes if dtype.is_floating]
            self._fdtype = floats[0] if floats else tf.as_dtype(keras.config.floatx())
        return self._fdtype

    def _tensor(self, data: Any) -> tf.Tensor:
        """Turn data into a tensor; floating-point data get the weights' dtype.

        (Converting here is cheaper than letting a tf.function convert numpy inputs.)
        """
        if isinstance(data, tf.Tensor):
            return data
        array = np.asarray(data)
        if array.dtype.kind == "f":
            dtype = self._float_dtype().as_numpy_dtype
            if array.dtype != dtype:
                array = array.astype(dtype)
        return eager_tensor(array)

    def _unpack_batch(self, batch: Batch) -> tuple[Any, tf.Tensor | None, tf.Tensor | None]:
        inputs, y_true, s_wght = split_batch(batch)
        if isinstance(inputs, list | tuple):
            inputs = [self._tensor(x) for x in inputs]
        else:
            inputs = self._tensor(inputs)
        return (
            inputs,
            None if y_true is None else self._tensor(y_true),
            None if s_wght is None else self._tensor(s_wght),
        )


register_type(TensorflowModel, name="TensorflowModel", group="Model")

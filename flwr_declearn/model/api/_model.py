"""Framework-agnostic `Model` API."""

from __future__ import annotations

import importlib
from abc import ABCMeta, abstractmethod
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Self, TypeVar

import numpy as np

from flwr_declearn.data import Batch
from flwr_declearn.model._model_utils import split_batch
from flwr_declearn.model.api._vector import Vector, as_numpy
from flwr_declearn.utils import DevicePolicy, access_registered, create_types_registry

__all__ = ["FusedRule", "Model"]

VectorT = TypeVar("VectorT", bound=Vector)

FusedRule = Callable[[dict[str, Any], dict[str, Any], Any], tuple[dict[str, Any], Any]]
"""`rule(weights, gradients, args) -> (new_weights, outputs)` of `Model.run_fused_step`."""

# Registered name -> module defining (and registering) it, imported by `Model.from_config`.
_MODEL_MODULES = {
    "TorchModel": "flwr_declearn.model.torch",
    "TensorflowModel": "flwr_declearn.model.tensorflow",
    "HaikuModel": "flwr_declearn.model.haiku._model",
    "JaxModel": "flwr_declearn.model.jax._model",
}


@create_types_registry(name="Model")
class Model(Generic[VectorT], metaclass=ABCMeta):
    """Interface to a framework-specific model: weights, gradients, predictions.

    Weights and gradients are exchanged as the framework's Vector type, so
    that optimization algorithms are written once for every framework.
    Device placement follows the global `DevicePolicy` at instantiation and
    on `update_device_policy`.
    """

    _vector_type: ClassVar[type[Vector] | None] = None
    """The Vector type of weights, gradients and updates (checked by `_check_vector`)."""

    def __init__(self, model: Any) -> None:
        self._model = model
        self._loss_history: list[Any] = []
        """Batch losses (floats or framework scalars) since `collect_training_losses`."""

    def get_wrapped_model(self) -> Any:
        """Return the wrapped framework-specific model (for users, not internals)."""
        return self._model

    @property
    @abstractmethod
    def device_policy(self) -> DevicePolicy:
        """Device-placement policy currently used by this model."""

    @property
    @abstractmethod
    def required_data_info(self) -> set[str]:
        """Names of the `data_info` fields `initialize` needs (empty once initialized)."""

    @abstractmethod
    def initialize(self, data_info: dict[str, Any]) -> None:
        """Initialize the model from data specifications.

        Raises
        ------
        KeyError
            If a field of `required_data_info` is missing.
        """

    def initialize_from_batch(self, batch: Batch) -> None:
        """Initialize the model from a sample batch `(inputs, y_true, s_wght)`.

        This default reads `features_shape` and `data_type` off the (single)
        inputs array; frameworks that can, run the model on the inputs instead.
        """
        if not self.required_data_info:
            return
        inputs = batch[0] if isinstance(batch, tuple | list) else batch
        array = np.asarray(inputs)
        self.initialize({"features_shape": list(array.shape[1:]), "data_type": array.dtype.name})

    def _uninitialized_message(self) -> str:
        """The error message of a method that needs an initialized model: which call to make."""
        fields = sorted(self.required_data_info)
        example = {
            "features_shape": [32],
            "data_type": "float32",
        }
        info = ", ".join(f"{f!r}: {example.get(f, '...')!r}" for f in fields)
        return (
            f"{type(self).__name__} must be initialized first: call "
            f"`model.initialize({{{info}}})` with your data's specs (fields {fields}), or "
            "`model.initialize_from_batch((x_sample, y_sample, None))` with a sample batch."
        )

    @abstractmethod
    def get_config(self) -> dict[str, Any]:
        """Return a JSON-serializable dict from which `from_config` rebuilds the model.

        It holds the registered name of the Model class as "typekey", so that
        `Model.from_config` finds that class (as in declearn).
        """

    if TYPE_CHECKING:  # subclasses may add their own keyword options (e.g. `allow_pickle`)

        @classmethod
        @abstractmethod
        def from_config(cls, config: dict[str, Any]) -> Self:
            """Instantiate a model from its configuration dict."""

    else:

        @classmethod
        @abstractmethod
        def from_config(cls, config: dict[str, Any], **kwargs: Any) -> Self:
            """Instantiate a model from its configuration dict.

            Called on `Model` itself, dispatch to the registered subclass named by
            the config's "typekey" (passing `kwargs` on, e.g. `allow_pickle`).

            Raises
            ------
            ValueError
                If the config has no "typekey" (on `Model` itself).
            KeyError
                If the "typekey" names no registered Model class.
            """
            if "typekey" not in config:
                raise ValueError(
                    f"{cls.__name__}.from_config needs the 'typekey' field that get_config writes "
                    "(the registered name of the Model class)."
                )
            module = _MODEL_MODULES.get(config["typekey"])
            if module is not None:
                importlib.import_module(module)  # registers the class
            subclass = access_registered(config["typekey"], "Model")
            if subclass is cls or not issubclass(subclass, cls):
                raise TypeError(f"'{config['typekey']}' is not a subclass of {cls.__name__}.")
            return subclass.from_config(config, **kwargs)  # type: ignore[no-any-return]

    @classmethod
    def _require_config_entries(cls, config: Mapping[str, Any], *keys: str) -> None:
        """`from_config` preamble: raise a KeyError naming the first of `keys` not in `config`."""
        for key in keys:
            if key not in config:
                raise KeyError(f"{cls.__name__} config lacks the '{key}' entry.")

    @abstractmethod
    def get_weights(self, trainable: bool = False) -> VectorT:
        """Return the model's weights, restricted to the trainable ones if `trainable`."""

    @abstractmethod
    def set_weights(self, weights: VectorT, trainable: bool = False) -> None:
        """Assign all the model's weights (only the trainable ones if `trainable`).

        Raises
        ------
        KeyError
            If the names of `weights` differ from the model's.
        TypeError
            If `weights` is not of this model's Vector type.
        """

    @abstractmethod
    def compute_batch_gradients(self, batch: Batch, max_norm: float | None = None) -> VectorT:
        """Return the batch-averaged gradients of the loss w.r.t. the trainable weights.

        Records the batch loss (see `collect_training_losses`).

        Parameters
        ----------
        batch:
            `(inputs, y_true, s_wght)` tuple.
        max_norm:
            If set, clip each sample's gradients to this L2 norm before averaging.
        """

    @abstractmethod
    def apply_updates(self, updates: VectorT, scale: float = 1.0) -> None:
        """Add `scale * updates` to the trainable weights, in place.

        `scale` lets an Optimizer apply `-lrate * direction` in the same pass
        over the weights, instead of materializing the scaled updates first.
        """

    @staticmethod
    def _check_max_norm(max_norm: float | None) -> float | None:
        """Return the sample-wise clipping threshold as a float (None: no clipping).

        Raises
        ------
        ValueError
            If `max_norm` is not positive.
        """
        if max_norm is None:
            return None
        if not max_norm > 0:
            raise ValueError(f"'max_norm' must be positive, not {max_norm!r}.")
        return float(max_norm)

    fused_vector_type: ClassVar[type[Vector] | None] = None
    """Vector type whose compiled kernels `run_fused_step` can trace (None: cannot)."""

    def run_fused_step(
        self, batch: Batch, max_norm: float | None, rule: FusedRule, args: Any
    ) -> Any:
        """Compute gradients on `batch` and update the weights by `rule`, in one compiled call.

        `rule(weights, gradients, args) -> (new_weights, outputs)` is a pure
        function of dicts of framework arrays (the trainable weights, by
        name), traceable by the framework's compiler; `args` is a nest of
        arrays and scalars whose structure and shapes depend only on `rule`
        and on the trainable weights. Records the batch loss, as
        `compute_batch_gradients` does.

        Returns
        -------
        The rule's `outputs`, as framework arrays.

        Raises
        ------
        NotImplementedError
            If this model has no compiled steps (`fused_vector_type` is None).
        """
        raise NotImplementedError(f"{type(self).__name__} has no fused training steps.")

    def collect_training_losses(self) -> list[float]:
        """Return the batch losses recorded since the last call, and forget them."""
        losses, self._loss_history = self._loss_history, []
        return [float(loss) for loss in losses]

    def _check_vector(self, vector: Any, reference: Vector, what: str) -> None:
        """Check weights or updates given to this model against `reference` (the model's own).

        The preamble of `set_weights` and `apply_updates`: `vector` must be
        of this model's Vector type, with `reference`'s names and shapes;
        dtypes may differ (values are cast to the weights' dtypes).

        Raises
        ------
        TypeError
            If `vector` is not of this model's Vector type.
        VectorNamesError
            If its names differ (a KeyError, as declearn's `set_weights` raises).
        VectorSpecError
            If some of its arrays' shapes differ.
        """
        vtype = self._vector_type
        if vtype is not None and not isinstance(vector, vtype):
            raise TypeError(
                f"{type(self).__name__} expects {what} as a {vtype.__name__}, "
                f"not {type(vector).__name__}."
            )
        reference.check_specs(vector, dtypes=False, other_name=what)

    def compute_batch_predictions(
        self, batch: Batch
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """Return `(y_true, y_pred, s_wght)` as numpy arrays for a batch.

        Predictions come from `_predict`, which framework models implement.

        Raises
        ------
        TypeError
            If the batch has no `y_true`.
        """
        inputs, y_true, s_wght = split_batch(batch)
        if y_true is None:
            raise TypeError(
                f"{type(self).__name__}.compute_batch_predictions needs a batch with y_true."
            )
        y_pred = self._predict(inputs)
        return as_numpy(y_true), as_numpy(y_pred), None if s_wght is None else as_numpy(s_wght)

    def _predict(self, inputs: Any) -> Any:
        """The model's predictions for a batch's inputs, in inference mode (any array type)."""
        raise NotImplementedError(
            f"{type(self).__name__} implements neither `_predict` nor `compute_batch_predictions`."
        )

    @abstractmethod
    def loss_function(self, y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
        """Return the sample-wise loss values of predictions, as a 1-d numpy array."""

    @abstractmethod
    def update_device_policy(self, policy: DevicePolicy | None = None) -> None:
        """Move the model to `policy`'s device (the global policy if None)."""

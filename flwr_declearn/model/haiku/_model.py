"""Model wrapping a haiku-transformed function and a sample-wise loss."""

from __future__ import annotations

import dataclasses
import functools
import inspect
from collections.abc import Callable, Mapping
from typing import Any, Self

import haiku as hk
import jax

from flwr_declearn.model._canonical import CanonicalNames
from flwr_declearn.model._model_utils import dump_pickle_hex, load_pickle_hex
from flwr_declearn.model.jax._base import JaxModelBase, LossFn
from flwr_declearn.model.jax._compiled import Params, grads_and_loss, native_params, static
from flwr_declearn.utils import register_type

__all__ = ["HaikuModel"]

Criterion = Callable[[str, str, jax.Array], bool] | Mapping[str, Mapping[str, Any]] | list[str]


def _nest(flat: Mapping[str, jax.Array]) -> dict[str, dict[str, jax.Array]]:
    """Turn `{"layer:weight": array}` into haiku's `{layer: {weight: array}}`."""
    nested: dict[str, dict[str, jax.Array]] = {}
    for key, value in flat.items():
        layer, name = key.rsplit(":", 1)
        nested.setdefault(layer, {})[name] = value
    return nested


@dataclasses.dataclass(frozen=True)
class _HaikuForward:
    """`forward(params, key, *inputs)` of a haiku function (hashable: a jit static argument)."""

    model_fn: Callable[..., jax.Array]
    renames: tuple[tuple[str, str], ...] | None = None  # our name -> "layer:weight"

    def __call__(self, params: Params, key: jax.Array, *inputs: jax.Array) -> jax.Array:
        params = native_params(params, self.renames)
        return hk.transform(self.model_fn).apply(_nest(params), key, *inputs)


@functools.partial(jax.jit, static_argnums=0)
def _init(model_fn: Callable[..., jax.Array], key: jax.Array, inputs: tuple[jax.Array, ...]) -> Any:
    return hk.transform(model_fn).init(key, *inputs)


class HaikuModel(JaxModelBase):
    """Model wrapping a haiku function and its loss.

    Weights are named `"{layer}:{weight}"` (e.g. `"mlp/~/linear_0:w"`), or
    canonically (`"dense_0/kernel"`, see `flwr_declearn.model._canonical`) with
    `canonical_names=True`. All are trainable until `set_trainable_weights`
    freezes some.

    Device placement and randomness are those of every JAX model (see
    `JaxModelBase`).

    Parameters
    ----------
    model:
        Function such that `model(*inputs)` runs haiku modules and returns
        predictions; it is wrapped with `haiku.transform`.
    loss, seed, canonical_names:
        Sample-wise jax loss `loss(y_pred, y_true)`, seed of the random key
        sequence (random if None), and whether to exchange canonical weight
        names: as documented in `JaxModelBase`.
    """

    def __init__(
        self,
        model: Callable[..., jax.Array],
        loss: LossFn,
        seed: int | None = None,
        canonical_names: bool = False,
    ) -> None:
        if not callable(model) or not callable(loss):
            raise TypeError("HaikuModel needs callable 'model' and 'loss' functions.")
        super().__init__(hk.transform(model), loss, seed, canonical_names)
        self._model: hk.Transformed = self._model
        self._model_fn = model
        self._static_model = static(model)

    def _build_forward(self, renames: tuple[tuple[str, str], ...] | None) -> _HaikuForward:
        return _HaikuForward(self._static_model, renames)

    def _canonical_names(self, native: dict[str, jax.Array]) -> CanonicalNames:
        return CanonicalNames(self._layer_entries(native, sep=":"))

    # -- setup -----------------------------------------------------------------------------------

    def _init_weights(self, inputs: tuple[jax.Array, ...]) -> None:
        self._rng, key = jax.random.split(self._rng)
        params = _init(self._static_model, key, inputs)
        self._set_initial_weights(
            {
                f"{layer}:{name}": v
                for layer, weights in params.items()
                for name, v in weights.items()
            }
        )

    # -- config ----------------------------------------------------------------------------------

    def get_config(self, allow_bin: bool = False) -> dict[str, Any]:
        """Return a JSON-serializable config, holding the pickled model and loss functions.

        The functions are pickled by reference (they must be importable,
        module-level functions). This is for local persistence only:
        `from_config` loads them only with `allow_pickle=True`. `allow_bin`
        (declearn's argument) changes nothing.

        Raises
        ------
        TypeError
            If a function cannot be pickled (e.g. a lambda).
        """
        return {
            "typekey": "HaikuModel",
            "serialization": "pickle",
            "model": dump_pickle_hex(self._model_fn, "haiku model function"),
            "loss": dump_pickle_hex(self._loss_fn, "loss function"),
            **self._setup_config(),
        }

    @classmethod
    def from_config(
        cls, config: dict[str, Any], allow_pickle: bool = False, allow_bin: bool = False
    ) -> Self:
        """Rebuild a HaikuModel from `get_config`'s output (`allow_pickle=True` required).

        The functions are pickled, and unpickling runs arbitrary code: load
        only configs you stored yourself. `allow_bin` (declearn's) is ignored.

        Raises
        ------
        ValueError
            If `allow_pickle` is False.
        KeyError
            If the config lacks the "model" or "loss" entries.
        """
        cls._require_config_entries(config, "model", "loss")
        model_fn = load_pickle_hex(config["model"], "haiku model function", allow_pickle)
        loss_fn = load_pickle_hex(config["loss"], "loss function", allow_pickle)
        canonical = bool(config.get("canonical_names", False))
        model = cls(model_fn, loss_fn, seed=config.get("seed"), canonical_names=canonical)
        model._restore_setup(config)
        return model

    # -- weights ---------------------------------------------------------------------------------

    def set_trainable_weights(self, criterion: Criterion) -> None:
        """Select the trainable weights; freeze all the others.

        Parameters
        ----------
        criterion:
            - a list of weight names (see `get_weight_names`) to keep trainable;
            - a callable `(layer, name, value) -> bool`, True for trainable weights
              (as in `haiku.data_structures.partition`; haiku's layer and weight names);
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
            keep = self._trainable_from_names(criterion)
        elif isinstance(criterion, Mapping):
            if not all(isinstance(v, Mapping) for v in criterion.values()):
                raise TypeError("A dict criterion must map layer names to dicts of weight names.")
            natives = {f"{layer}:{name}" for layer, names in criterion.items() for name in names}
            keep = {ours for ours, native in self._native.items() if native in natives}
        elif callable(criterion) and len(inspect.signature(criterion).parameters) == 3:
            include: Callable[[str, str, jax.Array], bool] = criterion  # type: ignore[assignment]
            keep = set()
            for ours, value in params.items():
                layer, name = self._native[ours].rsplit(":", 1)
                if include(layer, name, value):
                    keep.add(ours)
        else:
            raise TypeError(
                "'criterion' must be a list of weight names, a dict {layer: {name: ...}} "
                f"or a callable (layer, name, value) -> bool, not {criterion!r}."
            )
        self._select_trainable(keep)


register_type(HaikuModel, name="HaikuModel", group="Model")

_grads_and_loss = grads_and_loss  # the shared compiled gradients (its cache is inspected in tests)

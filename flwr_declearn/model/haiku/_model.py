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
from flwr_declearn.model._model_utils import dump_pickle_hex
from flwr_declearn.model.jax._base import JaxModelBase, LossFn
from flwr_declearn.model.jax._compiled import Params, grads_and_loss, native_params, static
from flwr_declearn.utils import register_type

__all__ = ["HaikuModel"]


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

    _required_entries = ("model", "loss")

    @classmethod
    def _from_pickled(cls, config: dict[str, Any], load: Callable[[str, str], Any]) -> Self:
        return cls(
            load("model", "haiku model function"),
            load("loss", "loss function"),
            seed=config.get("seed"),
            canonical_names=bool(config.get("canonical_names", False)),
        )

    # -- weights ---------------------------------------------------------------------------------

    def _trainable_from_selector(self, criterion: Any) -> set[str]:
        if isinstance(criterion, Mapping):
            if not all(isinstance(v, Mapping) for v in criterion.values()):
                raise TypeError("A dict criterion must map layer names to dicts of weight names.")
            natives = {f"{layer}:{name}" for layer, names in criterion.items() for name in names}
            return {ours for ours, native in self._native.items() if native in natives}
        if callable(criterion) and len(inspect.signature(criterion).parameters) == 3:
            include: Callable[[str, str, jax.Array], bool] = criterion
            keep = set()
            for ours, value in self._all_params().items():
                layer, name = self._native[ours].rsplit(":", 1)
                if include(layer, name, value):
                    keep.add(ours)
            return keep
        raise TypeError(
            "'criterion' must be a list of weight names, a dict {layer: {name: ...}} "
            f"or a callable (layer, name, value) -> bool, not {criterion!r}."
        )


register_type(HaikuModel, name="HaikuModel", group="Model")

_grads_and_loss = grads_and_loss  # the shared compiled gradients (its cache is inspected in tests)

"""Model wrapping a plain-JAX apply function and its params pytree (no haiku needed)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any, Self

import jax
import numpy as np

from flwr_declearn.model._canonical import CanonicalNames
from flwr_declearn.model._model_utils import dump_pickle_hex
from flwr_declearn.model.haiku._vector import JaxNumpyVector
from flwr_declearn.model.jax._base import JaxModelBase, LossFn
from flwr_declearn.model.jax._compiled import Params, native_params, static
from flwr_declearn.utils import register_type

__all__ = ["JaxModel", "JaxNumpyVector"]


def _key_name(key: Any) -> str:
    for attr in ("key", "idx", "name"):
        if hasattr(key, attr):
            return str(getattr(key, attr))
    return str(key)


def named_leaves(tree: Any) -> tuple[dict[str, Any], Any, list[str]]:
    """Flatten a pytree into `{path name: leaf}` in model order, its treedef, and jax's leaf order.

    Names join the path's keys with "/" (e.g. "params/Dense_0/kernel", "0/w").
    Model order keeps dicts' insertion order (jax sorts their keys), so that
    layers are listed as the user (or flax' init) created them.
    """
    pairs, treedef = jax.tree_util.tree_flatten_with_path(tree)
    jax_order = ["/".join(_key_name(k) for k in path) for path, _ in pairs]
    if len(set(jax_order)) != len(jax_order):
        jax_order = [f"{i}:{name}" for i, name in enumerate(jax_order)]
    leaves = dict(zip(jax_order, (leaf for _, leaf in pairs), strict=True))
    ordered: list[str] = []

    def walk(node: Any, prefix: str) -> None:
        if isinstance(node, dict):
            items: Sequence[tuple[Any, Any]] = list(node.items())
        elif isinstance(node, list | tuple) and not hasattr(node, "_fields"):
            items = list(enumerate(node))
        else:
            ordered.append(prefix)
            return
        for key, child in items:
            walk(child, f"{prefix}/{key}" if prefix else str(key))

    walk(tree, "")
    if sorted(ordered) == sorted(jax_order):
        leaves = {name: leaves[name] for name in ordered}
    return leaves, treedef, jax_order


@dataclasses.dataclass(frozen=True)
class _PytreeForward:
    """`forward(params, key, *inputs)` over a flat dict (hashable: a jit static argument)."""

    apply_fn: Callable[..., jax.Array]
    treedef: Any
    leaf_names: tuple[str, ...]  # native names, in the treedef's leaf order
    renames: tuple[tuple[str, str], ...] | None  # our name -> native name
    with_rng: bool

    def __call__(self, params: Params, key: jax.Array, *inputs: jax.Array) -> jax.Array:
        params = native_params(params, self.renames)
        tree = jax.tree_util.tree_unflatten(self.treedef, [params[n] for n in self.leaf_names])
        if self.with_rng:
            return self.apply_fn(tree, key, *inputs)
        return self.apply_fn(tree, *inputs)


class JaxModel(JaxModelBase):
    """Model wrapping a plain JAX function `apply_fn(params, *inputs)` and its params pytree.

    No haiku needed: `params` is any pytree of arrays (nested dicts, lists...),
    e.g. a flax model's `variables["params"]` with
    `apply_fn = lambda params, x: module.apply({"params": params}, x)`, or the
    params of `flax.nnx.split` with `apply_fn = lambda p, x: nnx.merge(graphdef, p, rest)(x)`.
    State that is not trained (batch statistics...) stays in the closure, or
    among the params and frozen with `set_trainable_weights`.

    Weights are named after their path in the pytree, keys joined with "/"
    (e.g. "Dense_0/kernel"), or canonically (`"dense_0/kernel"`, see
    `flwr_declearn.model._canonical`) with `canonical_names=True`.

    Parameters
    ----------
    apply_fn:
        `apply_fn(params, *inputs) -> y_pred` (or `apply_fn(params, rng, *inputs)`
        with `with_rng=True`), traceable by `jax.jit`.
    params:
        The initial params pytree; None to create them at initialization with `init_fn`.
    loss:
        Jax function `loss(y_pred, y_true)` returning sample-wise values (see
        `JaxModelBase`, which documents `seed` and `canonical_names` too).
    init_fn:
        `init_fn(rng, *inputs) -> params`, run by `initialize` (on zeros shaped
        by `features_shape` and `data_type`) or `initialize_from_batch` (on a
        sample batch), when `params` is None.
    with_rng:
        Whether `apply_fn` takes a PRNG key (fresh at each call, e.g. for dropout).
    seed, canonical_names:
        As for every JAX model: random key seed (random if None); exchange
        canonical weight names (see `JaxModelBase`).
    """

    def __init__(
        self,
        apply_fn: Callable[..., jax.Array],
        params: Any,
        loss: LossFn,
        *,
        init_fn: Callable[..., Any] | None = None,
        with_rng: bool = False,
        seed: int | None = None,
        canonical_names: bool = False,
    ) -> None:
        if not callable(apply_fn):
            raise TypeError(f"'apply_fn' must be callable, not {type(apply_fn).__name__}.")
        if params is None and init_fn is None:
            raise TypeError(
                "JaxModel needs either initial 'params' or an 'init_fn' to create them."
            )
        if init_fn is not None and not callable(init_fn):
            raise TypeError(f"'init_fn' must be callable, not {type(init_fn).__name__}.")
        super().__init__(apply_fn, loss, seed, canonical_names)
        self._apply_fn = apply_fn
        self._init_fn = init_fn
        self._with_rng = bool(with_rng)
        self._layout: tuple[Any, tuple[str, ...]] | None = None
        if params is not None:
            self._adopt(params)

    def _adopt(self, params: Any) -> None:
        leaves, treedef, jax_order = named_leaves(params)
        if not leaves:
            raise ValueError("JaxModel 'params' holds no arrays.")
        self._layout = (treedef, tuple(jax_order))
        self._set_initial_weights({name: jax.numpy.asarray(v) for name, v in leaves.items()})

    def _build_forward(self, renames: tuple[tuple[str, str], ...] | None) -> _PytreeForward:
        assert self._layout is not None
        treedef, order = self._layout
        return _PytreeForward(static(self._apply_fn), treedef, order, renames, self._with_rng)

    def _canonical_names(self, native: dict[str, jax.Array]) -> CanonicalNames:
        entries = self._layer_entries(native, sep="/")
        return CanonicalNames([e if e.native in native else _strip(e) for e in entries])

    # -- setup -----------------------------------------------------------------------------------

    def _init_weights(self, inputs: tuple[jax.Array, ...]) -> None:
        assert self._init_fn is not None  # params are given otherwise
        self._rng, key = jax.random.split(self._rng)
        with jax.default_device(self._device):
            self._adopt(self._init_fn(key, *inputs))

    # -- weights ---------------------------------------------------------------------------------

    def _trainable_from_selector(self, criterion: Any) -> set[str]:
        if callable(criterion):
            return {name for name, value in self._all_params().items() if criterion(name, value)}
        raise TypeError(f"'criterion' must be a list of names or a callable, not {criterion!r}.")

    # -- config ----------------------------------------------------------------------------------

    def get_config(self, allow_bin: bool = False) -> dict[str, Any]:
        """Return a JSON-serializable config, holding the pickled functions (and params).

        The functions are pickled by reference (module-level functions only).
        Without `init_fn`, the initial params are pickled too. This is for local
        persistence only: `from_config` loads them only with `allow_pickle=True`.

        Raises
        ------
        TypeError
            If a function cannot be pickled (e.g. a lambda).
        """
        params = None
        if self._init_fn is None:
            params = {name: np.asarray(v) for name, v in self._all_params().items()}
        return {
            "typekey": "JaxModel",
            "serialization": "pickle",
            "apply_fn": dump_pickle_hex(self._apply_fn, "apply function"),
            "loss": dump_pickle_hex(self._loss_fn, "loss function"),
            "init_fn": None if self._init_fn is None else dump_pickle_hex(self._init_fn, "init"),
            "params": None if params is None else dump_pickle_hex(self._params_tree(), "params"),
            "with_rng": self._with_rng,
            **self._setup_config(),
        }

    def _params_tree(self) -> Any:
        """The current params as the user's pytree (numpy leaves)."""
        assert self._layout is not None
        treedef, order = self._layout
        native = {self._native[ours]: np.asarray(v) for ours, v in self._all_params().items()}
        return jax.tree_util.tree_unflatten(treedef, [native[name] for name in order])

    _required_entries = ("apply_fn", "loss")

    @classmethod
    def _from_pickled(cls, config: dict[str, Any], load: Callable[[str, str], Any]) -> Self:
        return cls(
            load("apply_fn", "apply function"),
            load("params", "params") if config.get("params") else None,
            load("loss", "loss function"),
            init_fn=load("init_fn", "init") if config.get("init_fn") else None,
            with_rng=bool(config.get("with_rng", False)),
            seed=config.get("seed"),
            canonical_names=bool(config.get("canonical_names", False)),
        )


def _strip(entry: Any) -> Any:
    """Top-level leaves have no layer path: drop the separator `group_entries` put first."""
    return dataclasses.replace(entry, native=entry.native.lstrip("/"))


register_type(JaxModel, name="JaxModel", group="Model")

"""Canonical, framework-independent names and layouts of common layers' weights.

Each framework names and lays out the weights of one architecture its own way:
torch stores a Linear kernel as `(out, in)` under "0.weight", Keras as
`(in, out)` under "dense/kernel", haiku as `(in, out)` under "linear:w". For
clients of several frameworks to train one model together, a Model built with
`canonical_names=True` exchanges its weights (and so gradients, updates and
optimizer states keyed by them) under canonical names and layouts:

- each layer holding weights is numbered in the model's order (0, 1, ...),
  and named after its kind: `"{kind}_{index}/{role}"`. The model's order is
  the order in which its framework lists the weights: torch, module
  registration (the order of `__init__`'s assignments; `nn.Sequential`'s
  order); Keras, `model.weights` (call order for Sequential and functional
  models, attribute order for subclassed ones); haiku, the order in which
  `init` creates the parameters (call order, whatever the modules' names or
  construction order); plain JAX, the params pytree's order (dict keys
  sorted, lists in order). Clients of one architecture therefore agree when
  every layer is declared in the order it is called (and JAX dict keys sort
  in that order: "dense_0", "dense_1"... or a list); a client that numbers
  differently sends other shapes under the same names, which the server's
  spec check reports on the first round (layers of equal shapes would pair
  silently: declare them in call order);
- `dense` (Linear / Dense): `kernel` shaped `(in, out)`, `bias`;
- `conv` (1-3d convolutions): `kernel` shaped `(*window, in, out)`, `bias`;
- `embedding`: `embeddings` shaped `(vocabulary, features)`;
- `norm` (batch / layer / group normalization): `scale`, `offset`, and for
  batch normalization the running `mean` and `var`;
- any other layer keeps its framework's weight names: `"{layer_type}_{index}/{name}"`.

Layouts are those of Keras, haiku and flax (channels-last): only torch's
Linear and Conv weights are transposed.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

__all__ = ["CanonicalNames", "Entry", "classify_leaves", "snake_case"]

T = TypeVar("T")

Transpose = Callable[[Any, tuple[int, ...]], Any]
"""`transpose(array, axes)`, with numpy's `transpose` semantics."""

ROLE_ORDER = ("kernel", "embeddings", "scale", "bias", "offset", "mean", "var")


def snake_case(name: str) -> str:
    """`"BatchNormalization"` -> `"batch_normalization"`."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


@dataclasses.dataclass(frozen=True)
class Entry:
    """One weight: its framework name, canonical name and layout change.

    `axes` transposes the framework's array into the canonical layout (numpy's
    `transpose` semantics); None if the layouts are the same.
    """

    native: str
    canonical: str
    axes: tuple[int, ...] | None = None

    @property
    def inverse_axes(self) -> tuple[int, ...] | None:
        if self.axes is None:
            return None
        inverse = [0] * len(self.axes)
        for pos, axis in enumerate(self.axes):
            inverse[axis] = pos
        return tuple(inverse)


class CanonicalNames:
    """Two-way renaming (and transposition) between framework and canonical weights."""

    def __init__(self, entries: Sequence[Entry]) -> None:
        self.entries = list(entries)
        self.native = {e.native: e for e in self.entries}
        self.canonical = {e.canonical: e for e in self.entries}
        if len(self.canonical) != len(self.entries):
            raise ValueError("Canonical weight names collide; this model cannot use them.")
        self.permuted = any(e.axes is not None for e in self.entries)

    def to_canonical(self, arrays: Mapping[str, T], transpose: Transpose) -> dict[str, T]:
        """Rename (and transpose) framework-named arrays; names not covered are dropped."""
        out: dict[str, T] = {}
        for name, value in arrays.items():
            entry = self.native.get(name)
            if entry is not None:
                out[entry.canonical] = value if entry.axes is None else transpose(value, entry.axes)
        return out

    def to_native(self, arrays: Mapping[str, T], transpose: Transpose) -> dict[str, T]:
        """Rename (and transpose back) canonically named arrays; unknown names are kept."""
        out: dict[str, T] = {}
        for name, value in arrays.items():
            entry = self.canonical.get(name)
            if entry is None:
                out[name] = value  # left for the model's name check to report
            else:
                axes = entry.inverse_axes
                out[entry.native] = value if axes is None else transpose(value, axes)
        return out

    def native_names(self, canonical: Sequence[str]) -> list[str]:
        return [self.canonical[n].native if n in self.canonical else n for n in canonical]

    def canonical_names(self, native: Sequence[str]) -> list[str]:
        return [self.native[n].canonical for n in native if n in self.native]


def layer_entries(
    index: int,
    kind: str,
    roles: Mapping[str, str],
    axes: Mapping[str, tuple[int, ...]] | None = None,
) -> list[Entry]:
    """Entries of one layer: `roles` maps canonical roles to native names."""
    axes = axes or {}
    order = sorted(roles, key=lambda r: ROLE_ORDER.index(r) if r in ROLE_ORDER else len(ROLE_ORDER))
    return [Entry(roles[role], f"{kind}_{index}/{role}", axes.get(role)) for role in order]


def classify_leaves(shapes: Mapping[str, tuple[int, ...]]) -> tuple[str, dict[str, str]] | None:
    """Recognise a layer from its weights' leaf names (haiku, flax, plain JAX conventions).

    Returns `(kind, {role: leaf name})`, or None if the layer is not recognised.
    """
    names = set(shapes)
    kernel = next((n for n in ("kernel", "w") if n in names), None)
    bias = next((n for n in ("bias", "b") if n in names), None)
    if kernel is not None and names <= {kernel, *([bias] if bias else [])}:
        kind = "dense" if len(shapes[kernel]) == 2 else "conv"
        return kind, {"kernel": kernel, **({"bias": bias} if bias else {})}
    if len(names) == 1 and names <= {"embeddings", "embedding"}:
        return "embedding", {"embeddings": next(iter(names))}
    if "scale" in names and names <= {"scale", "offset", "bias", "mean", "var"}:
        roles = {"scale": "scale"}
        for role, leaf in (
            ("offset", "offset"),
            ("offset", "bias"),
            ("mean", "mean"),
            ("var", "var"),
        ):
            if leaf in names:
                roles[role] = leaf
        return "norm", roles
    if names <= {"offset"}:
        return "norm", {"offset": "offset"}
    return None


def group_entries(
    groups: Sequence[tuple[str, Mapping[str, tuple[int, ...]]]], sep: str
) -> list[Entry]:
    """Entries for layers given as `(layer path, {leaf: shape})`, in model order.

    Native names are `f"{path}{sep}{leaf}"`; unrecognised layers keep their leaf names.
    """
    entries: list[Entry] = []
    for index, (path, shapes) in enumerate(groups):
        found = classify_leaves(shapes)
        if found is None:
            kind = snake_case(path.rsplit("/", 1)[-1]).rstrip("_0123456789") or "layer"
            roles = {leaf: leaf for leaf in shapes}
        else:
            kind, roles = found
        native = {role: f"{path}{sep}{leaf}" for role, leaf in roles.items()}
        entries.extend(layer_entries(index, kind, native))
    return entries

"""Names of a Keras model's weights: structural (default) or canonical (mixed frameworks)."""

from __future__ import annotations

from typing import Any

import keras

from flwr_declearn.model._canonical import CanonicalNames, Entry, layer_entries, snake_case

__all__ = ["canonical_names", "structural_names"]


def _walk(model: keras.Layer) -> list[tuple[str, Any, list[Any]]]:
    """`(path, layer, own variables)` for every layer, depth first, in model order.

    Like Keras' own weights files, each layer is named after its class,
    numbered within its parent (e.g. "dense", "dense_1", "functional/dense"),
    as Keras' auto-generated layer names ("dense_7") differ across instances.
    """
    out: list[tuple[str, Any, list[Any]]] = []

    def walk(layer: Any, prefix: str) -> None:
        used: dict[str, int] = {}
        for sub in layer._flatten_layers(include_self=False, recursive=False):
            base = snake_case(type(sub).__name__)
            count = used.get(base, 0)
            used[base] = count + 1
            walk(sub, f"{prefix}{base}{f'_{count}' if count else ''}/")
        own = [*layer._trainable_variables, *layer._non_trainable_variables]
        out.append((prefix, layer, own))

    walk(model, "")
    return out


def structural_names(model: keras.Layer) -> list[str]:
    """Name the model's weights `"{layer path}/{variable name}"`, in `model.weights` order."""
    names: dict[int, str] = {}
    try:
        for prefix, _, own in _walk(model):
            for var in own:
                names.setdefault(id(var), f"{prefix}{var.name}")
    except AttributeError:  # pragma: no cover - keras internals changed: use paths
        names = {}
    out = [names.get(id(var), var.path) for var in model.weights]
    if len(set(out)) != len(out):  # pragma: no cover - exotic layers sharing names
        out = [f"{idx}:{name}" for idx, name in enumerate(out)]
    return out


_ROLES: dict[str, tuple[str, dict[str, str]]] = {
    "Dense": ("dense", {"kernel": "kernel", "bias": "bias"}),
    "Conv1D": ("conv", {"kernel": "kernel", "bias": "bias"}),
    "Conv2D": ("conv", {"kernel": "kernel", "bias": "bias"}),
    "Conv3D": ("conv", {"kernel": "kernel", "bias": "bias"}),
    "Embedding": ("embedding", {"embeddings": "embeddings"}),
    "BatchNormalization": (
        "norm",
        {"gamma": "scale", "beta": "offset", "moving_mean": "mean", "moving_variance": "var"},
    ),
    "LayerNormalization": ("norm", {"gamma": "scale", "beta": "offset"}),
    "GroupNormalization": ("norm", {"gamma": "scale", "beta": "offset"}),
}


def canonical_names(model: keras.Layer, structural: list[str]) -> CanonicalNames:
    """Canonical names (see `flwr_declearn.model._canonical`) of the model's weights."""
    by_id = dict(zip((id(v) for v in model.weights), structural, strict=True))
    entries: list[Entry] = []
    index = 0
    for _, layer, own in _walk(model):
        own = [var for var in own if id(var) in by_id]
        if not own:
            continue
        kind, roles = _ROLES.get(type(layer).__name__, (snake_case(type(layer).__name__), {}))
        native = {roles.get(var.name, var.name): by_id[id(var)] for var in own}
        entries.extend(layer_entries(index, kind, native))
        index += 1
    return CanonicalNames(entries)

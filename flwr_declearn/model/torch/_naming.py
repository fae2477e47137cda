"""Canonical names and layouts of a torch module's weights (see `model._canonical`)."""

from __future__ import annotations

import torch

from flwr_declearn.model._canonical import CanonicalNames, Entry, layer_entries, snake_case

__all__ = ["canonical_names", "permute"]

_NORMS = (
    torch.nn.modules.batchnorm._NormBase,
    torch.nn.LayerNorm,
    torch.nn.GroupNorm,
)
_NORM_ROLES = {"weight": "scale", "bias": "offset", "running_mean": "mean", "running_var": "var"}


def permute(tensor: torch.Tensor, axes: tuple[int, ...]) -> torch.Tensor:
    """Transpose (a view) with numpy's `transpose` semantics."""
    return tensor.permute(axes)


def canonical_names(module: torch.nn.Module) -> CanonicalNames:
    """Canonical names of the module's `state_dict` entries.

    Linear kernels `(out, in)` become `(in, out)`; Conv kernels `(out, in, *window)`
    become `(*window, in, out)`. Batch norm's `num_batches_tracked` counter is
    not exchanged (it only matters with `momentum=None`).
    """
    state = set(module.state_dict(keep_vars=True))
    entries: list[Entry] = []
    index = 0
    for prefix, sub in module.named_modules():
        own = [n for n, _ in sub.named_parameters(recurse=False)]
        own += [n for n, _ in sub.named_buffers(recurse=False)]
        full = {name: f"{prefix}.{name}" if prefix else name for name in own}
        full = {name: path for name, path in full.items() if path in state}
        if not full:
            continue
        roles: dict[str, str] = {}
        axes: dict[str, tuple[int, ...]] = {}
        if isinstance(sub, torch.nn.Linear):
            kind = "dense"
            roles = {"kernel": full["weight"], **({"bias": full["bias"]} if "bias" in full else {})}
            axes = {"kernel": (1, 0)}
        elif isinstance(sub, torch.nn.modules.conv._ConvNd) and not sub.transposed:
            kind = "conv"
            ndim = sub.weight.ndim
            roles = {"kernel": full["weight"], **({"bias": full["bias"]} if "bias" in full else {})}
            axes = {"kernel": (*range(2, ndim), 1, 0)}
        elif isinstance(sub, torch.nn.Embedding):
            kind = "embedding"
            roles = {"embeddings": full["weight"]}
        elif isinstance(sub, _NORMS):
            kind = "norm"
            roles = {_NORM_ROLES[n]: path for n, path in full.items() if n in _NORM_ROLES}
        else:
            kind = snake_case(type(sub).__name__)
            roles = dict(full)
        entries.extend(layer_entries(index, kind, roles, axes))
        index += 1
    return CanonicalNames(entries)

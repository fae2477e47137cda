"""Sample-wise losses and clipped per-sample gradients of TorchModel (torch.func.vmap)."""

from __future__ import annotations

from collections.abc import Callable

import torch

from flwr_declearn.model._clipping import ClipOps

__all__ = ["TORCH_CLIP_OPS", "LossFn", "samplewise", "samplewise_grads_fn"]

LossFn = Callable[[torch.Tensor, torch.Tensor | None], torch.Tensor]


def samplewise(s_loss: torch.Tensor) -> torch.Tensor:
    """Average a loss tensor over all but its first (batch) axis."""
    if s_loss.ndim == 1:
        return s_loss
    if s_loss.ndim == 0:
        raise ValueError(
            "The loss function returned a scalar: it must return sample-wise values "
            "(e.g. a torch loss module with reduction='none')."
        )
    return s_loss.reshape(s_loss.shape[0], -1).mean(dim=1)


TORCH_CLIP_OPS = ClipOps(
    row_sq_norms=lambda grads: grads.reshape(grads.shape[0], -1).square().sum(dim=1),
    at_most_one=lambda values: torch.clamp(values, max=1.0),
    sqrt=torch.sqrt,
    mean=torch.mean,
    like=lambda values, other: values.to(other.dtype),
    n_rows=lambda values: int(values.shape[0]),
    combine=lambda scale, grads: torch.tensordot(scale, grads, dims=1),
)
"""torch operations of `clip_and_average`."""


def samplewise_grads_fn(
    model: torch.nn.Module, loss_fn: LossFn, with_y: bool
) -> Callable[..., tuple[dict[str, torch.Tensor], torch.Tensor]]:
    """Build `f(params, frozen, inputs, y_true) -> (sample-wise grads, sample-wise losses)`."""

    def sample_loss(
        params: dict[str, torch.Tensor],
        frozen: dict[str, torch.Tensor],
        inputs: tuple[torch.Tensor, ...],
        y_true: torch.Tensor | None,
    ) -> torch.Tensor:
        batched = tuple(x.unsqueeze(0) for x in inputs)
        y_pred = torch.func.functional_call(model, (params, frozen), batched)
        y_one = None if y_true is None else y_true.unsqueeze(0)
        return samplewise(loss_fn(y_pred, y_one)).sum()

    grad_fn = torch.func.grad_and_value(sample_loss)
    in_dims = (None, None, 0, 0 if with_y else None)
    return torch.func.vmap(grad_fn, in_dims=in_dims, randomness="different")  # type: ignore[no-any-return]

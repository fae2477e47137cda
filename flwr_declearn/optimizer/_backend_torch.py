"""Torch backend: `Arrays` whose operators are `torch._foreach_*` kernels (one dispatch each).

Each operator processes all the tensors of a step at once, as `torch.optim`
does. The fused forms (`ewma`, `adaptive_scale`...) take one or two passes
and allocate only their output (temporaries are computed into it), and
augmented assignments (`x += y`) work in place: on a 1M-parameter model each
big allocation costs about as much as a pass, in page faults. Reflected
operators (`2.0 - x`) go through the generic key-by-key ones.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Sequence
from typing import Any

import torch

from flwr_declearn.model.torch import TorchVector
from flwr_declearn.optimizer._arrays import Arrays, Backend

__all__ = ["TorchBackend"]

_FOREACH: dict[Any, Any] = {
    operator.add: torch._foreach_add,
    operator.sub: torch._foreach_sub,
    operator.mul: torch._foreach_mul,
    operator.truediv: torch._foreach_div,
}


_on_cpu = operator.attrgetter("is_cpu")


def _values(arrays: Arrays) -> list[torch.Tensor]:
    return list(arrays.data.values())


def _operand(other: Any) -> Any:
    """The other operand of a `_foreach` op: a list of tensors, a tensor or a python number."""
    if isinstance(other, TorchArrays):
        return list(other.data.values())
    if type(other) in (int, float) or isinstance(other, torch.Tensor):
        return other
    return float(other)


def _inplace(foreach_: Callable[..., None]) -> Callable[..., Arrays]:
    def method(self: Arrays, other: Any) -> Arrays:
        foreach_(_values(self), _operand(other))
        return self

    return method


class TorchArrays(Arrays):
    """Arrays of torch tensors, with `torch._foreach_*` operators."""

    __slots__ = ()

    def _wrap(self, tensors: Sequence[torch.Tensor]) -> TorchArrays:
        return TorchArrays(dict(zip(self.data, tensors, strict=False)), self.ops)

    def _binary(self, other: Any, op: Callable[[Any, Any], Any], reflect: bool = False) -> Arrays:
        foreach = _FOREACH.get(op)
        if foreach is None or reflect:
            return super()._binary(other, op, reflect)
        return self._wrap(foreach(_values(self), _operand(other)))

    # In place, as Python's augmented assignments let mutable values be: steps use them
    # only on values they computed themselves, and save an allocation per use.
    __iadd__ = _inplace(torch._foreach_add_)
    __isub__ = _inplace(torch._foreach_sub_)
    __imul__ = _inplace(torch._foreach_mul_)
    __itruediv__ = _inplace(torch._foreach_div_)

    def sqrt(self) -> Arrays:
        return self._wrap(torch._foreach_sqrt(list(self.data.values())))

    def sign(self) -> Arrays:
        return self._wrap(torch._foreach_sign(list(self.data.values())))

    def maximum(self, other: Any) -> Arrays:
        if isinstance(other, TorchArrays):
            other = list(other.data.values())
        return self._wrap(torch._foreach_maximum(list(self.data.values()), other))

    def norms(self) -> Arrays:
        return self._wrap(torch._foreach_norm(list(self.data.values())))

    def norm(self) -> Any:
        norms = torch._foreach_norm(list(self.data.values()))
        return torch.linalg.vector_norm(torch.stack([n.to(norms[0].dtype) for n in norms]))

    def ewma(self, x: Arrays, beta: Any) -> Arrays:
        return self._wrap(torch._foreach_lerp(_values(self), _values(x), 1.0 - float(beta)))

    def ewma_squares(self, x: Arrays, beta: Any) -> Arrays:
        out, xs = torch._foreach_mul(_values(self), float(beta)), _values(x)
        torch._foreach_addcmul_(out, xs, xs, value=1.0 - float(beta))
        return self._wrap(out)

    def yogi_ewma(self, x: Arrays, beta: Any) -> Arrays:
        values, xs = _values(self), _values(x)
        out = torch._foreach_sub(values, xs)
        torch._foreach_sign_(out)
        for o, v, y in zip(out, values, xs, strict=True):
            torch.addcmul(v, o, y, value=float(beta) - 1.0, out=o)
        return self._wrap(out)

    def axpy(self, alpha: Any, y: Arrays) -> Arrays:
        return self._wrap(torch._foreach_add(_values(y), _values(self), alpha=float(alpha)))

    def addcmul(self, x: Arrays, y: Arrays, value: Any = 1.0) -> Arrays:
        out = torch._foreach_addcmul(_values(self), _values(x), _values(y), value=float(value))
        return self._wrap(out)

    def adaptive_scale(self, v: Arrays, eps: Any, div: Any = 1.0, v_div: Any = 1.0) -> Arrays:
        den = torch._foreach_sqrt(_values(v))  # the only temporary, and the output
        if v_div != 1.0:
            torch._foreach_div_(den, math.sqrt(v_div))
        torch._foreach_add_(den, float(eps))
        if div != 1.0:
            torch._foreach_mul_(den, float(div))
        for x, d in zip(self.data.values(), den, strict=True):
            torch.div(x, d, out=d)
        return self._wrap(den)

    # Clipping reads the norms of CPU tensors as python floats (there is no device to wait
    # for), then scales each array by `min(1, max_norm / norm)`: one `_foreach_mul` in all.

    def clip_each(self, max_norm: Any) -> Arrays:
        values = _values(self)
        norms = torch._foreach_norm(values)
        if not all(map(_on_cpu, norms)):
            return super().clip_each(max_norm)
        limit = float(max_norm)
        scales = [1.0 if n <= limit else limit / n for n in map(float, norms)]  # NaN stays NaN
        return self._wrap(torch._foreach_mul(values, scales))

    def clip_all(self, max_norm: Any) -> Arrays:
        values = _values(self)
        norms = torch._foreach_norm(values)
        if not values or not all(map(_on_cpu, norms)):
            return super().clip_all(max_norm)
        norm, limit = math.hypot(*map(float, norms)), float(max_norm)
        return self._wrap(torch._foreach_mul(values, 1.0 if norm <= limit else limit / norm))


class TorchBackend(Backend):
    """Steps run eagerly on `TorchArrays`."""

    arrays_type = TorchArrays
    vector_type = TorchVector

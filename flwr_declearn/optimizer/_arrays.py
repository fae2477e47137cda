"""Named arrays with element-wise algebra: what the pure steps of OptiModules compute on.

A module's maths is one pure function over `Arrays` (see `modules/_api.py`):

    step(states, gradients, hyper) -> (new_states, output)

`Arrays` wraps a dict of one framework's arrays; operators apply key by key,
with scalars (python numbers, or 0-d arrays while a step is traced) cast to
each array's dtype. The same function runs eagerly on every Vector type and
is traced by jax / tensorflow compilers. A `Backend` (one per Vector type,
see `_backend.py`) decides how: as is, with a subclass of `Arrays` whose
operators are fused framework kernels (torch), or compiled once per layout.

This module is the leaf of the optimizer's layers: it imports no other part
of the optimizer.
"""

from __future__ import annotations

import numbers
import operator
from collections.abc import Callable, Mapping
from itertools import repeat
from operator import attrgetter
from typing import Any

import numpy as np

from flwr_declearn.model.api import Vector

__all__ = [
    "ArrayOps",
    "Arrays",
    "Backend",
    "CompiledBackend",
    "Hyper",
    "Step",
    "align",
    "zeros_like",
]

Hyper = Mapping[str, Any]
"""A step's scalars by name: python floats, or 0-d arrays while traced."""

_data, _coefs = attrgetter("data"), attrgetter("coefs")


class ArrayOps:
    """Array primitives of one framework: those of its Vector type, plus a scalar cast."""

    def __init__(self, vector_type: type[Vector]) -> None:
        self.sqrt = vector_type._sqrt
        self.sign = vector_type._sign
        self.maximum = vector_type._maximum
        self.sum = vector_type._sum

    def cast(self, scalar: Any, like: Any) -> Any:
        """Return `scalar` (a number, or a 0-d array such as a norm) as a python number.

        Python numbers keep an array's dtype in arithmetic, in every framework.
        """
        return scalar if type(scalar) in (int, float) else float(scalar)


def _operator(op: Callable[[Any, Any], Any], reflect: bool = False) -> Callable[..., Arrays]:
    def method(self: Arrays, other: Any) -> Arrays:
        return self._binary(other, op, reflect)

    return method


class Arrays:
    """Named arrays with element-wise algebra (`+ - * /`, `sqrt`, `sign`, `maximum`, norms).

    The other operand of a binary operator is an `Arrays` with the same
    names (not checked: `align` did) or a scalar. A step may use augmented
    assignments (`x += y`) on values it computed itself (or on a state no one
    else sees, as SCAFFOLD's running sum): fast backends run them in place,
    others rebind `x` to a new value.
    """

    __slots__ = ("data", "ops")

    def __init__(self, data: dict[str, Any], ops: ArrayOps) -> None:
        self.data = data
        self.ops = ops

    def _new(self, data: dict[str, Any]) -> Arrays:
        return type(self)(data, self.ops)

    def _binary(self, other: Any, op: Callable[[Any, Any], Any], reflect: bool = False) -> Arrays:
        if isinstance(other, Arrays):
            odata = other.data
            if reflect:
                return self._new({k: op(odata[k], a) for k, a in self.data.items()})
            return self._new({k: op(a, odata[k]) for k, a in self.data.items()})
        cast = self.ops.cast
        if reflect:
            return self._new({k: op(cast(other, a), a) for k, a in self.data.items()})
        return self._new({k: op(a, cast(other, a)) for k, a in self.data.items()})

    __add__, __radd__ = _operator(operator.add), _operator(operator.add, True)
    __sub__, __rsub__ = _operator(operator.sub), _operator(operator.sub, True)
    __mul__, __rmul__ = _operator(operator.mul), _operator(operator.mul, True)
    __truediv__, __rtruediv__ = _operator(operator.truediv), _operator(operator.truediv, True)

    def __neg__(self) -> Arrays:
        return self._new({k: -a for k, a in self.data.items()})

    def sqrt(self) -> Arrays:
        return self._new({k: self.ops.sqrt(a) for k, a in self.data.items()})

    def sign(self) -> Arrays:
        return self._new({k: self.ops.sign(a) for k, a in self.data.items()})

    def maximum(self, other: Any) -> Arrays:
        return self._binary(other, self.ops.maximum)

    def norms(self) -> Arrays:
        """L2 norm of each array (0-d arrays)."""
        return self._new({k: self.ops.sqrt(self.ops.sum(a * a)) for k, a in self.data.items()})

    def norm(self) -> Any:
        """L2 norm of all the arrays together (a 0-d array of the first array's dtype)."""
        first = next(iter(self.data.values()))
        total = sum(self.ops.cast(self.ops.sum(a * a), first) for a in self.data.values())
        return self.ops.sqrt(total)

    # Fused forms of frequent expressions: fast backends override them with fewer passes
    # over memory and fewer temporaries; results agree to rounding.

    def ewma(self, x: Arrays, beta: Any) -> Arrays:
        """`beta * self + (1 - beta) * x`."""
        return self * beta + x * (1.0 - beta)

    def ewma_squares(self, x: Arrays, beta: Any) -> Arrays:
        """`beta * self + (1 - beta) * x ** 2`."""
        return self * beta + (x * x) * (1.0 - beta)

    def yogi_ewma(self, x: Arrays, beta: Any) -> Arrays:
        """`self - (1 - beta) * sign(self - x) * x` (Yogi's additive average)."""
        return self.addcmul((self - x).sign(), x, beta - 1.0)

    def axpy(self, alpha: Any, y: Arrays) -> Arrays:
        """`alpha * self + y`."""
        return self * alpha + y

    def addcmul(self, x: Arrays, y: Arrays, value: Any = 1.0) -> Arrays:
        """`self + value * x * y`."""
        return self + (x * y) * value

    def adaptive_scale(self, v: Arrays, eps: Any, div: Any = 1.0, v_div: Any = 1.0) -> Arrays:
        """`(self / div) / (sqrt(v / v_div) + eps)`."""
        return (self / div) / ((v / v_div).sqrt() + eps)

    def clip_each(self, max_norm: Any) -> Arrays:
        """`x / max(1, ||x||_2 / max_norm)` for each array `x`."""
        return self / (self.norms() / max_norm).maximum(1.0)

    def clip_all(self, max_norm: Any) -> Arrays:
        """`self / max(1, ||self||_2 / max_norm)`, with the norm of all arrays together."""
        if not self.data:
            return self
        norm = self.norm()
        return self / self.ops.maximum(norm / self.ops.cast(max_norm, norm), 1.0)


Step = Callable[[tuple[Arrays, ...], Arrays, Hyper], tuple[tuple[Arrays, ...], Arrays]]
"""A module's pure step: `(states, gradients, hyper) -> (new_states, output)`."""


class Backend:
    """How steps run on one Vector type's arrays: here, as is, with `Arrays`.

    Subclasses (see `_backend.py`) fuse operators or compile whole steps.
    """

    arrays_type: type[Arrays] = Arrays
    vector_type: type[Vector]
    traceable: bool = False
    """Whether compiled training steps may trace `Arrays` of this backend (see `_fused.py`)."""

    def __init__(self, vector_type: type[Vector]) -> None:
        self.vector_type = vector_type
        self.ops = ArrayOps(vector_type)

    def arrays(self, data: dict[str, Any]) -> Arrays:
        return self.arrays_type(data, self.ops)

    def apply(
        self, step: Step, states: tuple[dict[str, Any], ...], grads: dict[str, Any], hyper: Hyper
    ) -> tuple[tuple[dict[str, Any], ...], dict[str, Any]]:
        """Run `step` on dicts of arrays; return the new states' and the output's dicts.

        Their keys come in the order of `grads`' keys. What compiled backends trace.
        """
        new, out = step(tuple(map(self.arrays, states)), self.arrays(grads), hyper)
        return tuple(map(_data, new)), out.data

    def run(
        self, step: Step, states: tuple[Vector, ...], grads: Vector, hyper: Hyper
    ) -> tuple[tuple[Vector, ...], Vector]:
        """Run `step` eagerly on Vectors of this backend's type and one layout (see `align`).

        Every eager step of a module comes here: it makes few calls, since on a
        large model the code a step runs is cold in the CPU's caches each time.
        """
        make, ops, vtype = self.arrays_type, self.ops, self.vector_type
        new, out = step(
            tuple(map(make, map(_coefs, states), repeat(ops))), make(grads.coefs, ops), hyper
        )
        vectors = tuple(map(vtype, map(_data, new)))
        if new and new[0] is out:  # the output is the new state (momentum, EWMA): one Vector
            return vectors, vectors[0]
        return vectors, vtype(out.data)

    def scalar_array(self, values: list[float]) -> Any:
        """Turn python floats into one 1-d float64 argument of a compiled function."""
        return np.asarray(values, dtype=np.float64)


class CompiledBackend(Backend):
    """A backend that compiles `apply` (once per layout) and runs steps through it."""

    traceable = True

    def run(
        self, step: Step, states: tuple[Vector, ...], grads: Vector, hyper: Hyper
    ) -> tuple[tuple[Vector, ...], Vector]:
        new, out = self.apply(step, tuple(map(_coefs, states)), grads.coefs, hyper)
        vtype = self.vector_type
        return tuple(map(vtype, new)), vtype(out)


def zeros_like(vec: Vector) -> Vector:
    """Return zeros with the specs and device placement of `vec`."""
    return type(vec)(
        {
            k: vec._from_numpy(np.zeros(vec._shape(v), vec._dtype(v)), like=v)
            for k, v in vec.coefs.items()
        }
    )


def align(
    grads: Vector, states: tuple[Vector | float | None, ...]
) -> tuple[Vector, tuple[Vector, ...]]:
    """Return `grads` and `states` as Vectors of one type and specs, names in `grads`' order.

    None states become zeros, and a real number `x` a Vector filled with `x`
    (declearn's modules hold scalar states, e.g. AdaGrad's 0.0 or a preset
    accumulator such as Keras' 0.1). A NumpyVector (e.g. a state restored from a
    checkpoint) is converted to the framework's type, as Vector algebra
    does; Vectors that cannot be combined raise its TypeError, and differing
    specs its `VectorSpecError` (`Vector.check_specs`).
    """
    ref: Vector = grads
    for state in states:
        if not isinstance(state, Vector) or type(state) is type(ref):
            continue
        if ref._coerce(state) is None:
            ref = state  # `state`'s framework absorbs the gradients' type
    out: list[Vector] = []
    for value in (grads, *states):
        if value is None:
            vec = zeros_like(ref)
        elif not isinstance(value, Vector):
            if isinstance(value, bool) or not isinstance(value, numbers.Real):
                raise TypeError(f"A state must be a Vector, a number or None, not {value!r}.")
            vec = zeros_like(ref) + float(value)
        elif type(value) is not type(ref):
            vec = ref._coerce(value)  # type: ignore[assignment]
        else:
            vec = value
        base = out[0] if out else vec  # the gradients, as `ref`'s type
        if not _same_layout(base, vec):
            base.check_specs(vec)  # raises, unless only the names' order differs
            vec = type(ref)({k: vec.coefs[k] for k in base.coefs})
        out.append(vec)
    return out[0], tuple(out[1:])


def _same_layout(ref: Vector, vec: Vector) -> bool:
    """Fast check: same names in the same order, same shapes and dtypes (`.shape`, `.dtype`)."""
    if ref is vec:
        return True
    if len(ref.coefs) != len(vec.coefs):
        return False
    try:
        for (key, val), (okey, oth) in zip(ref.coefs.items(), vec.coefs.items(), strict=False):
            if key != okey or val.shape != oth.shape or val.dtype != oth.dtype:
                return False
    except AttributeError:  # not an array: let `check_specs` judge
        return False
    return True

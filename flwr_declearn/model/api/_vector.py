"""Framework-agnostic `Vector` of named arrays, with element-wise algebra."""

from __future__ import annotations

import dataclasses
import importlib
import numbers
import operator
from abc import ABCMeta
from collections.abc import Callable, Iterable, Mapping
from typing import Any, ClassVar, Generic, Self, TypeVar

import numpy as np

from flwr_declearn.utils._registry import (
    access_registered,
    access_registration_info,
    create_types_registry,
    register_type,
)

__all__ = [
    "Vector",
    "VectorNamesError",
    "VectorSpec",
    "VectorSpecError",
    "as_numpy",
    "check_names",
    "register_vector_type",
]

T = TypeVar("T")

# Vector subclass name -> module that defines (and registers) it, for lazy loading.
_VECTOR_MODULES: dict[str, str] = {
    "NumpyVector": "flwr_declearn.model.numpy",
    "TorchVector": "flwr_declearn.model.torch",
    "TensorflowVector": "flwr_declearn.model.tensorflow",
    "JaxNumpyVector": "flwr_declearn.model.haiku",
}
# Top-level module of an array type -> module defining its Vector type.
_ARRAY_MODULES: dict[str, str] = {
    "numpy": "flwr_declearn.model.numpy",
    "torch": "flwr_declearn.model.torch",
    "tensorflow": "flwr_declearn.model.tensorflow",
    "keras": "flwr_declearn.model.tensorflow",
    "jax": "flwr_declearn.model.haiku",
    "jaxlib": "flwr_declearn.model.haiku",
}
_ARRAY_TYPES: dict[type, type[Vector]] = {}


class VectorSpecError(ValueError):
    """Two Vectors do not share the same specs (names, shapes, dtypes)."""


class VectorNamesError(VectorSpecError, KeyError):
    """Two Vectors hold different names (a KeyError too, as declearn raises).

    `missing` and `unexpected` list the differing names (sorted), for
    callers that word their own message.
    """

    __str__ = ValueError.__str__  # KeyError's would quote the message

    def __init__(
        self, message: str, missing: Iterable[str] = (), unexpected: Iterable[str] = ()
    ) -> None:
        super().__init__(message)
        self.missing = sorted(missing)
        self.unexpected = sorted(unexpected)

    def __reduce__(self) -> tuple[Any, ...]:
        return type(self), (str(self), self.missing, self.unexpected)

    @property
    def difference(self) -> str:
        """`"missing [...], unexpected [...]"`, for callers' own messages."""
        return f"missing {self.missing}, unexpected {self.unexpected}"


def check_names(
    expected: Iterable[str], received: Iterable[str], other_name: str = "the other vector"
) -> None:
    """Raise a VectorNamesError if the `received` names differ from the `expected` ones.

    The name check of `Vector.check_specs`, for callers that hold names
    rather than Vectors. `other_name` says what `received` belongs to.
    """
    expected, received = set(expected), set(received)
    if expected != received:
        missing, unexpected = sorted(expected - received), sorted(received - expected)
        raise VectorNamesError(
            f"Vector names differ: missing from {other_name}: {missing}; "
            f"unexpected in {other_name}: {unexpected}.",
            missing,
            unexpected,
        )


@dataclasses.dataclass
class VectorSpec:
    """What `Vector.unflatten` needs to rebuild a Vector from its flat values.

    Attributes
    ----------
    names:
        Names of the arrays, in flattening order.
    shapes:
        Shape of each named array.
    dtypes:
        Numpy-style dtype name of each named array.
    v_type:
        `(name, group)` registration of the Vector subclass, if registered.
    kwargs:
        Subclass-specific metadata.
    """

    names: list[str]
    shapes: dict[str, tuple[int, ...]]
    dtypes: dict[str, str]
    v_type: tuple[str, str] | None = None
    kwargs: dict[str, Any] = dataclasses.field(default_factory=dict)


def register_vector_type(
    *array_types: type, name: str | None = None
) -> Callable[[type[Vector]], type[Vector]]:
    """Register a Vector subclass (type registry group "Vector") and the array types it wraps.

    `Vector.build` then wraps arrays of these types into that subclass.
    """

    def decorate(cls: type[Vector]) -> type[Vector]:
        register_type(cls, name=name or cls.__name__, group="Vector")
        for typ in array_types:
            _ARRAY_TYPES[typ] = cls
        return cls

    return decorate


def load_vector_type(name: str) -> type[Vector]:
    """Return the Vector subclass named `name`, importing its framework module if needed.

    Raises
    ------
    KeyError
        If `name` is not a known Vector type.
    """
    if name not in _VECTOR_MODULES:
        raise KeyError(f"Unknown Vector type '{name}'; known: {sorted(_VECTOR_MODULES)}.")
    module = importlib.import_module(_VECTOR_MODULES[name])
    return getattr(module, name)  # type: ignore[no-any-return]


class _NoNamespace:
    """`Vector._xp` of a type that names no array namespace: each primitive then raises."""

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):  # protocol and introspection lookups (ABCMeta, mock, asyncio)
            raise AttributeError(name)
        raise NotImplementedError(f"This Vector type does not define `{name}`.")


@create_types_registry(name="Vector")
class Vector(Generic[T], metaclass=ABCMeta):
    """Named arrays of one framework, with element-wise algebra.

    Binary operators (`+ - * / **`, reflected forms included) accept a
    scalar or a Vector with the same specs (names, shapes and dtypes).
    A NumpyVector combines with any framework Vector; the result then has
    the framework's type.

    Subclasses name their framework's array namespace (`_xp`), implement
    the array-level primitives it lacks (`_to_numpy`, `_shape`...) as
    static methods, and list the Vector types they absorb in
    `compatible_vector_types`. A subclass written for declearn, which
    overrides the public methods (`sign`, `minimum`, `sum`, `__eq__`,
    `flatten`...) instead, works too: a primitive it lacks raises
    NotImplementedError only when used.
    """

    __array_ufunc__ = None  # numpy scalars defer to our reflected operators
    __hash__ = None  # type: ignore[assignment]

    compatible_vector_types: ClassVar[tuple[type[Vector], ...]] = ()
    """Vector types whose instances are converted to this type when mixed in operations."""

    def __init__(self, coefs: Mapping[str, T]) -> None:
        if type(self) is Vector:
            raise TypeError("Vector is abstract: use Vector.build or a subclass.")
        self.coefs: dict[str, T] = dict(coefs)

    # -- framework primitives (each raises NotImplementedError until a subclass defines it) ------

    @staticmethod
    def _to_numpy(value: T) -> np.ndarray:
        """Return a numpy view of an array (a copy only where unavoidable)."""
        raise NotImplementedError("This Vector type does not convert its arrays to numpy.")

    @classmethod
    def _from_numpy(cls, array: np.ndarray, like: T | None = None) -> T:
        """Turn a numpy array into this framework's array (on `like`'s device, else by policy)."""
        raise NotImplementedError(f"{cls.__name__} does not build its arrays from numpy.")

    @staticmethod
    def _shape(value: T) -> tuple[int, ...]:
        """Shape of an array."""
        raise NotImplementedError("This Vector type does not define its arrays' shapes.")

    @staticmethod
    def _dtype(value: T) -> str:
        """Numpy-style dtype name of an array (e.g. 'float32')."""
        raise NotImplementedError("This Vector type does not define its arrays' dtypes.")

    _xp: ClassVar[Any] = _NoNamespace()
    """The framework's numpy-style namespace (`numpy`, `jax.numpy`, `torch`, `tensorflow`).

    The primitives below call it by numpy's names; a subclass overrides those
    its framework spells otherwise.
    """

    @classmethod
    def _sign(cls, value: T) -> T:
        return cls._xp.sign(value)  # type: ignore[no-any-return]

    @classmethod
    def _sqrt(cls, value: T) -> T:
        return cls._xp.sqrt(value)  # type: ignore[no-any-return]

    @classmethod
    def _minimum(cls, value: T, other: Any) -> T:
        """Element-wise minimum with an array or a python scalar."""
        return cls._xp.minimum(value, other)  # type: ignore[no-any-return]

    @classmethod
    def _maximum(cls, value: T, other: Any) -> T:
        """Element-wise maximum with an array or a python scalar."""
        return cls._xp.maximum(value, other)  # type: ignore[no-any-return]

    @classmethod
    def _sum(cls, value: T) -> T:
        """Sum of all entries, as a 0-d array."""
        return cls._xp.sum(value)  # type: ignore[no-any-return]

    @classmethod
    def _vdot(cls, value: T, other: T) -> float:
        """Sum of the element-wise product of two arrays, as a python float."""
        return float(cls._xp.vdot(value, other))

    @classmethod
    def _equal(cls, value: T, other: T) -> bool:
        """Whether two arrays have equal shapes and values."""
        shape = cls._shape
        return shape(value) == shape(other) and bool(cls._xp.array_equal(value, other))

    @classmethod
    def _has_specs(cls) -> bool:
        """Whether this type defines its arrays' shapes and dtypes."""
        return cls._shape is not Vector._shape and cls._dtype is not Vector._dtype

    # -- construction ----------------------------------------------------------------------------

    @staticmethod
    def build(coefs: Mapping[str, Any]) -> Vector:
        """Wrap named arrays into the Vector type that matches their framework.

        Raises
        ------
        TypeError
            If the arrays belong to no supported framework, or to several.
        """
        if not coefs:
            raise TypeError("Cannot build a Vector from an empty mapping.")
        types = {_vector_type_for(value) for value in coefs.values()}
        if len(types) != 1:
            names = sorted(t.__name__ for t in types)
            raise TypeError(f"Cannot build a Vector from arrays of mixed frameworks: {names}.")
        return types.pop()(coefs)

    # -- specs -----------------------------------------------------------------------------------

    def shapes(self) -> dict[str, tuple[int, ...]]:
        """Return the shape of each named array."""
        return {key: self._shape(val) for key, val in self.coefs.items()}

    def dtypes(self) -> dict[str, str]:
        """Return the numpy-style dtype name of each named array."""
        return {key: self._dtype(val) for key, val in self.coefs.items()}

    def check_specs(
        self, other: Vector, *, dtypes: bool = True, other_name: str = "the other vector"
    ) -> None:
        """Raise a VectorSpecError naming the entries where `other`'s specs differ from ours.

        This is the package's one check of names and specs: of operands,
        of weights and updates given to a Model, of what Flower peers send.

        Parameters
        ----------
        other:
            The Vector to check.
        dtypes:
            Whether dtypes must match too (False where values get cast, as
            in `Model.set_weights`).
        other_name:
            What `other` is, in error messages (e.g. "the updates").

        Raises
        ------
        VectorNamesError
            If names differ (a VectorSpecError and a KeyError).
        VectorSpecError
            If shapes (or dtypes) differ, where both types define them.
        """
        ours, theirs = self.coefs, other.coefs
        if ours.keys() != theirs.keys():
            check_names(ours, theirs, other_name)
        if not (self._has_specs() and other._has_specs()):
            return
        shape, oshape = self._shape, other._shape
        dtype, odtype = self._dtype, other._dtype
        bad = [
            key
            for key, val in ours.items()
            if shape(val) != oshape(theirs[key]) or (dtypes and dtype(val) != odtype(theirs[key]))
        ]
        if bad:
            details = "; ".join(
                f"'{key}': {dtype(ours[key])}{list(shape(ours[key]))} vs "
                f"{odtype(theirs[key])}{list(oshape(theirs[key]))}"
                for key in bad
            )
            raise VectorSpecError(f"Vector specs differ for: {details} (expected vs {other_name}).")

    # -- algebra ---------------------------------------------------------------------------------

    def _coerce(self, other: Vector) -> Vector | None:
        """Return `other` as our type, or None if the operation must go to `other`'s type."""
        if type(other) is type(self):
            return other
        if isinstance(other, self.compatible_vector_types):
            like = next(iter(self.coefs.values()), None)
            return type(self)(
                {k: self._from_numpy(other._to_numpy(v), like) for k, v in other.coefs.items()}
            )
        if isinstance(self, other.compatible_vector_types):
            return None
        raise TypeError(f"Cannot combine a {type(self).__name__} with a {type(other).__name__}.")

    def _apply_operation(
        self, other: Any, op: Callable[[Any, Any], Any], reflect: bool = False
    ) -> Any:
        """Combine each array with `other`'s (same names and specs) or with a scalar.

        Returns NotImplemented for other operands, so that Python tries
        `other`'s reflected operator, then raises TypeError.
        """
        if isinstance(other, Vector):
            coerced = self._coerce(other)
            if coerced is None:
                return NotImplemented
            self.check_specs(coerced)
            ocoefs = coerced.coefs
            if reflect:
                return type(self)({k: op(ocoefs[k], v) for k, v in self.coefs.items()})
            return type(self)({k: op(v, ocoefs[k]) for k, v in self.coefs.items()})
        if isinstance(other, np.generic):
            other = other.item()  # python scalars keep the arrays' dtype on every backend
        if isinstance(other, numbers.Number) and not isinstance(other, complex):
            if reflect:
                return type(self)({k: op(other, v) for k, v in self.coefs.items()})
            return type(self)({k: op(v, other) for k, v in self.coefs.items()})
        return NotImplemented

    def __add__(self, other: Any) -> Self:
        return self._apply_operation(other, operator.add)  # type: ignore[no-any-return]

    def __radd__(self, other: Any) -> Self:
        return self._apply_operation(other, operator.add, reflect=True)  # type: ignore[no-any-return]

    def __sub__(self, other: Any) -> Self:
        return self._apply_operation(other, operator.sub)  # type: ignore[no-any-return]

    def __rsub__(self, other: Any) -> Self:
        return self._apply_operation(other, operator.sub, reflect=True)  # type: ignore[no-any-return]

    def __mul__(self, other: Any) -> Self:
        return self._apply_operation(other, operator.mul)  # type: ignore[no-any-return]

    def __rmul__(self, other: Any) -> Self:
        return self._apply_operation(other, operator.mul, reflect=True)  # type: ignore[no-any-return]

    def __truediv__(self, other: Any) -> Self:
        return self._apply_operation(other, operator.truediv)  # type: ignore[no-any-return]

    def __rtruediv__(self, other: Any) -> Self:
        return self._apply_operation(other, operator.truediv, reflect=True)  # type: ignore[no-any-return]

    def __pow__(self, other: Any) -> Self:
        return self._apply_operation(other, operator.pow)  # type: ignore[no-any-return]

    def __rpow__(self, other: Any) -> Self:
        return self._apply_operation(other, operator.pow, reflect=True)  # type: ignore[no-any-return]

    def __neg__(self) -> Self:
        return type(self)({k: -v for k, v in self.coefs.items()})  # type: ignore[operator]

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Vector):
            return False
        try:
            coerced = self._coerce(other)
        except TypeError:
            return False
        if coerced is None:
            return other == self
        if self.coefs.keys() != coerced.coefs.keys():
            return False
        return all(
            self._dtype(v) == coerced._dtype(coerced.coefs[k]) and self._equal(v, coerced.coefs[k])
            for k, v in self.coefs.items()
        )

    def _symmetric(self, name: str, other: Any) -> Any:
        """Apply the symmetric primitive `name` element-wise with a scalar or a Vector."""
        func = getattr(self, name)
        if isinstance(other, Vector):
            coerced = self._coerce(other)
            if coerced is None:  # the framework type owns the result
                return other._symmetric(name, self)
            self.check_specs(coerced)
            return type(self)({k: func(v, coerced.coefs[k]) for k, v in self.coefs.items()})
        return type(self)({k: func(v, other) for k, v in self.coefs.items()})

    def minimum(self, other: Any) -> Self:
        """Element-wise minimum with a scalar or a Vector."""
        return self._symmetric("_minimum", other)  # type: ignore[no-any-return]

    def maximum(self, other: Any) -> Self:
        """Element-wise maximum with a scalar or a Vector."""
        return self._symmetric("_maximum", other)  # type: ignore[no-any-return]

    def sign(self) -> Self:
        """Element-wise sign (-1, 0 or 1)."""
        return type(self)({k: self._sign(v) for k, v in self.coefs.items()})

    def sqrt(self) -> Self:
        """Element-wise square root."""
        return type(self)({k: self._sqrt(v) for k, v in self.coefs.items()})

    def sum(self) -> Self:
        """Sum of each named array, as a Vector of 0-d arrays."""
        return type(self)({k: self._sum(v) for k, v in self.coefs.items()})

    def dot(self, other: Vector) -> float:
        """Scalar product with a Vector of the same specs, summed over all arrays."""
        coerced = self._coerce(other)
        if coerced is None:
            return other.dot(self)
        self.check_specs(coerced)
        return float(sum(self._vdot(v, coerced.coefs[k]) for k, v in self.coefs.items()))

    def norm(self) -> float:
        """Global L2 norm over all arrays."""
        return float(sum(self._vdot(v, v) for v in self.coefs.values())) ** 0.5

    def apply_func(self, func: Callable[..., T], *args: Any, **kwargs: Any) -> Self:
        """Apply `func(array, *args, **kwargs)` to each named array."""
        return type(self)({k: func(v, *args, **kwargs) for k, v in self.coefs.items()})

    # -- conversion ------------------------------------------------------------------------------

    def pack(self) -> dict[str, np.ndarray]:
        """Return the named arrays as numpy arrays, without copying where the framework allows."""
        return {key: self._to_numpy(val) for key, val in self.coefs.items()}

    @classmethod
    def unpack(cls, data: Mapping[str, np.ndarray]) -> Self:
        """Build a Vector from numpy arrays, placed per the global device policy."""
        return cls({key: cls._from_numpy(np.asarray(val)) for key, val in data.items()})

    def get_vector_specs(self) -> VectorSpec:
        """Return the names, shapes, dtypes and registered type of this Vector."""
        try:
            v_type: tuple[str, str] | None = access_registration_info(type(self))
        except KeyError:
            v_type = None
        return VectorSpec(
            names=list(self.coefs), shapes=self.shapes(), dtypes=self.dtypes(), v_type=v_type
        )

    def flatten(self) -> tuple[list[float], VectorSpec]:
        """Return all values as one list of python floats, and the specs to rebuild the Vector.

        Sparse arrays contribute all their entries (zeros included), so that
        flat vectors of the same specs can be summed entry-wise (as secure
        aggregation does).
        """
        arrays = self.pack()
        flat = [np.ravel(arr).astype(np.float64, copy=False) for arr in arrays.values()]
        values = np.concatenate(flat).tolist() if flat else []
        return values, self.get_vector_specs()

    @classmethod
    def unflatten(cls, values: list[float], v_spec: VectorSpec) -> Self:
        """Rebuild a Vector of this type from `flatten`'s output.

        Raises
        ------
        KeyError
            If `v_spec` names another registered Vector type, or lacks the
            shape or dtype of one of its names.
        ValueError
            If the number of values does not match the specs' shapes.
        """
        if v_spec.v_type is not None:
            try:
                registered = access_registered(*v_spec.v_type)
            except KeyError:
                registered = None
            if registered is not None and registered is not cls:
                raise KeyError(f"These specs describe a {v_spec.v_type[0]}, not a {cls.__name__}.")
        missing = [n for n in v_spec.names if n not in v_spec.shapes or n not in v_spec.dtypes]
        if missing:
            raise KeyError(f"Vector specs lack the shape or dtype of {missing}.")
        sizes = [int(np.prod(v_spec.shapes[name], dtype=np.int64)) for name in v_spec.names]
        if len(values) != sum(sizes):
            raise ValueError(
                f"Expected {sum(sizes)} values for these Vector specs, got {len(values)}."
            )
        flat = np.asarray(values, dtype=np.float64)
        arrays: dict[str, np.ndarray] = {}
        start = 0
        for name, size in zip(v_spec.names, sizes, strict=True):
            chunk = flat[start : start + size].reshape(v_spec.shapes[name])
            arrays[name] = chunk.astype(np.dtype(v_spec.dtypes[name]))
            start += size
        return cls.unpack(arrays)

    @staticmethod
    def build_from_specs(values: list[float], v_spec: VectorSpec) -> Vector:
        """Rebuild a Vector from `flatten`'s output, of the type its specs name.

        Raises
        ------
        TypeError
            If `v_spec` is not a VectorSpec, or names a type that is not a Vector.
        KeyError
            If `v_spec` names no type, or an unregistered one.
        """
        if not isinstance(v_spec, VectorSpec):
            raise TypeError(f"'v_spec' must be a VectorSpec, not {type(v_spec).__name__}.")
        if v_spec.v_type is None:
            raise KeyError("These Vector specs do not name their Vector type (v_type is None).")
        try:
            cls = access_registered(*v_spec.v_type)
        except KeyError as exc:
            raise KeyError(f"No registered type {v_spec.v_type} to rebuild a Vector.") from exc
        if not (isinstance(cls, type) and issubclass(cls, Vector)):
            raise TypeError(f"Registered type {v_spec.v_type} is not a Vector subclass.")
        return cls.unflatten(values, v_spec)

    def __repr__(self) -> str:
        if not self._has_specs():
            return f"{type(self).__name__}({self.coefs!r})"
        specs = ", ".join(f"{k}: {self._dtype(v)}{self._shape(v)}" for k, v in self.coefs.items())
        return f"{type(self).__name__}({{{specs}}})"


def as_numpy(value: Any) -> np.ndarray:
    """Return an array of any supported framework (or anything array-like) as a numpy array."""
    try:
        vector_type = _vector_type_for(value)
    except TypeError:
        return np.asarray(value)
    return vector_type._to_numpy(value)


def _vector_type_for(value: Any) -> type[Vector]:
    for typ in type(value).__mro__:
        if typ in _ARRAY_TYPES:
            return _ARRAY_TYPES[typ]
    root = type(value).__module__.split(".", 1)[0]
    if root in _ARRAY_MODULES:
        importlib.import_module(_ARRAY_MODULES[root])
        for typ in type(value).__mro__:
            if typ in _ARRAY_TYPES:
                return _ARRAY_TYPES[typ]
    if isinstance(value, np.generic):
        return _ARRAY_TYPES[np.ndarray]
    raise TypeError(f"No Vector type wraps arrays of type {type(value).__qualname__}.")

"""Type registry: rebuild components from JSON-serializable `(name, config)` specs.

Types are registered under a `group` (usually the name of an API base class,
e.g. "OptiModule") with a unique `name` within that group. A class decorated
with `create_types_registry` opens a group named after itself, and becomes the
default group of its subclasses passed to `register_type`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar, overload

__all__ = [
    "access_registered",
    "access_registration_info",
    "access_types_mapping",
    "create_types_registry",
    "register_from_attr",
    "register_type",
]

T = TypeVar("T", bound=type)

_REGISTRIES: dict[str, dict[str, type]] = {}
"""Group name -> {type name -> registered type}."""
_BASES: dict[str, type] = {}
"""Group name -> base class that all the group's types must inherit."""


@overload
def create_types_registry(base: T, name: str | None = None) -> T: ...


@overload
def create_types_registry(base: None = None, name: str | None = None) -> Callable[[T], T]: ...


def create_types_registry(base: T | None = None, name: str | None = None) -> T | Callable[[T], T]:
    """Open a registry group for subclasses of `base` (usable as a decorator).

    Parameters
    ----------
    base:
        Base class of the types registered in the group.
    name:
        Group name; defaults to `base.__name__`.

    Raises
    ------
    KeyError
        If a group with that name already exists.
    """

    def decorate(cls: T) -> T:
        group = name or cls.__name__
        if group in _BASES:
            raise KeyError(
                f"A types registry named '{group}' already exists "
                f"(for {_BASES[group].__module__}.{_BASES[group].__qualname__})."
            )
        _BASES[group] = cls
        _REGISTRIES.setdefault(group, {})
        return cls

    return decorate if base is None else decorate(base)


def _default_group(cls: type) -> str:
    for parent in cls.__mro__[1:]:
        for group, base in _BASES.items():
            if base is parent:
                return group
    raise TypeError(
        f"No types registry is open for a parent class of '{cls.__name__}': name its group."
    )


@overload
def register_type(
    cls: T, name: str | None = None, group: str | None = None, repl: bool = False
) -> T: ...


@overload
def register_type(
    cls: None = None, name: str | None = None, group: str | None = None, repl: bool = False
) -> Callable[[T], T]: ...


def register_type(
    cls: T | None = None,
    name: str | None = None,
    group: str | None = None,
    repl: bool = False,
) -> T | Callable[[T], T]:
    """Register a type under `(name, group)` (usable as a decorator).

    Parameters
    ----------
    cls:
        Type to register.
    name:
        Name of the type in its group; defaults to `cls.__name__`.
    group:
        Registry group; defaults to the group of the nearest registered base.
    repl:
        Whether to replace a type already registered under that name.

    Raises
    ------
    KeyError
        If the name is taken in the group (and `repl` is False), or the
        group does not exist.
    TypeError
        If `cls` does not inherit the group's base class, or `group` is
        None and no parent class of `cls` opened a group.
    """

    def decorate(typ: T) -> T:
        grp = group or _default_group(typ)
        if grp not in _REGISTRIES:
            raise KeyError(f"No types registry named '{grp}'.")
        base = _BASES[grp]
        if not issubclass(typ, base):
            raise TypeError(f"'{typ.__name__}' does not inherit '{base.__name__}' (group '{grp}').")
        key = name or typ.__name__
        registry = _REGISTRIES[grp]
        if key in registry and not repl:
            raise KeyError(
                f"Name '{key}' is already registered in group '{grp}' "
                f"(by {registry[key].__module__}.{registry[key].__qualname__})."
            )
        registry[key] = typ
        return typ

    return decorate if cls is None else decorate(cls)


def access_registered(name: str, group: str | None = None) -> type:
    """Return the type registered under `name` (in `group`, or any group).

    Raises
    ------
    KeyError
        If no such type is registered; the message lists the names
        registered in that group.
    """
    if group is None:
        for registry in _REGISTRIES.values():
            if name in registry:
                return registry[name]
        raise KeyError(f"No type registered under name '{name}' in any group.")
    if group not in _REGISTRIES:
        raise KeyError(f"No types registry named '{group}'; known: {sorted(_REGISTRIES)}.")
    registry = _REGISTRIES[group]
    if name not in registry:
        raise KeyError(
            f"No '{group}' type registered under name '{name}'; "
            f"registered names: {sorted(registry)}."
        )
    return registry[name]


def register_from_attr(cls: T, attr: str, group: str | None = None, repl: bool = False) -> T:
    """Register `cls` under the name held by its class attribute `attr`.

    Raises
    ------
    TypeError
        If `cls.attr` is not a str; see `register_type` for the rest.
    """
    key = getattr(cls, attr, None)
    if not isinstance(key, str):
        raise TypeError(
            f"Cannot register '{cls.__qualname__}' by its '{attr}' attribute: "
            f"expected a str, found {key!r}."
        )
    return register_type(cls, name=key, group=group, repl=repl)


def access_registration_info(cls: type, group: str | None = None) -> tuple[str, str]:
    """Return the `(name, group)` under which `cls` is registered (in `group`, or any group).

    Raises
    ------
    KeyError
        If `cls` is not registered (in `group`), or `group` does not exist.
    """
    if group is not None and group not in _REGISTRIES:
        raise KeyError(f"No types registry named '{group}'; known: {sorted(_REGISTRIES)}.")
    groups = [group] if group is not None else list(_REGISTRIES)
    for grp in groups:
        for key, typ in _REGISTRIES[grp].items():
            if typ is cls:
                return key, grp
    where = f" in group '{group}'" if group is not None else ""
    raise KeyError(f"Type '{cls.__module__}.{cls.__qualname__}' is not registered{where}.")


def access_types_mapping(group: str) -> dict[str, type]:
    """Return a copy of the `{name: type}` mapping of a registry group.

    Raises
    ------
    KeyError
        If the group does not exist.
    """
    if group not in _REGISTRIES:
        raise KeyError(f"No types registry named '{group}'; known: {sorted(_REGISTRIES)}.")
    return dict(_REGISTRIES[group])


def build_from_spec(spec: Any, group: str) -> Any:
    """Build an object from a registered `(name, config)` spec, a name, or an instance.

    Parameters
    ----------
    spec:
        An instance of the group's base class (returned as is), a registered
        name (built with its defaults), or a `(name, config)` pair.
    group:
        Registry group the type belongs to.

    Raises
    ------
    TypeError
        If `spec` has none of these forms.
    KeyError
        If the name is not registered in `group`.
    """
    base = _BASES.get(group)
    if base is not None and isinstance(spec, base):
        return spec
    config: Any
    if isinstance(spec, str):
        name, config = spec, {}
    elif isinstance(spec, list | tuple) and len(spec) == 2 and isinstance(spec[0], str):
        name, config = spec[0], spec[1] or {}
    else:
        raise TypeError(
            f"Cannot build a '{group}' from {spec!r}: expected an instance, "
            "a registered name or a (name, config) pair."
        )
    if not isinstance(config, dict):
        raise TypeError(f"The config of '{group}' spec '{name}' must be a dict, not {config!r}.")
    cls = access_registered(name, group)
    return cls.from_config(config)  # type: ignore[attr-defined]

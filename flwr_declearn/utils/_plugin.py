"""`RegisteredPlugin`: base of the named plug-in types rebuilt from `(name, config)` specs."""

from __future__ import annotations

from typing import Any, ClassVar, Self

from flwr_declearn.utils._registry import access_registered, register_type

__all__ = ["RegisteredPlugin"]


class RegisteredPlugin:
    """Named plug-in type, registered on declaration and rebuilt from its config.

    An API base class sets `plugin_group` (the registry group, opened with
    `create_types_registry`) and is declared with `register=False`. Its
    concrete subclasses define a unique `name` and are registered under it
    automatically, unless declared with `register=False`. Their constructor's
    keyword arguments are their config (`get_config` / `from_config`).
    """

    name: ClassVar[str] = NotImplemented
    """Unique name of the type within its group, used for registration and configs."""
    plugin_group: ClassVar[str]
    """Registry group of the plug-in family."""

    def __init_subclass__(cls, register: bool = True, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if register:
            if not isinstance(cls.__dict__.get("name"), str):
                raise TypeError(
                    f"{cls.plugin_group} subclass '{cls.__qualname__}' must define a str 'name' "
                    "class attribute (or be declared with register=False)."
                )
            register_type(cls, name=cls.name, group=cls.plugin_group)

    def get_config(self) -> dict[str, Any]:
        """Return the JSON-serializable keyword arguments that rebuild this object."""
        return {}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Self:
        """Build an instance from its `get_config` output.

        Raises
        ------
        TypeError
            If `config` holds unexpected or lacks required parameters.
        """
        try:
            return cls(**config)
        except TypeError as exc:
            raise TypeError(f"Invalid config for {cls.plugin_group} '{cls.name}': {exc}") from exc

    @classmethod
    def from_specs(cls, name: str, config: dict[str, Any]) -> Self:
        """Build the type registered under `name` in this family from its config dict.

        Raises
        ------
        KeyError
            If no type of this family is registered under `name`.
        """
        typ = access_registered(name, group=cls.plugin_group)
        return typ.from_config(config)  # type: ignore[attr-defined, no-any-return]

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"

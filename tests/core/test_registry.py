"""The type registry rebuilds components by name and rejects ambiguity."""

from __future__ import annotations

import pytest

from flwr_declearn.utils import (
    access_registered,
    access_registration_info,
    access_types_mapping,
    build_from_spec,
    create_types_registry,
    register_from_attr,
    register_type,
)


@create_types_registry(name="TestWidget")
class Widget:
    def __init__(self, size: int = 1) -> None:
        self.size = size

    def get_config(self) -> dict:
        return {"size": self.size}

    @classmethod
    def from_config(cls, config: dict) -> Widget:
        return cls(**config)


@register_type(name="big-widget", group="TestWidget")
class BigWidget(Widget):
    pass


def test_registered_type_is_found_by_name_and_reports_its_registration() -> None:
    assert access_registered("big-widget", "TestWidget") is BigWidget
    assert access_registered("big-widget") is BigWidget
    assert access_registration_info(BigWidget) == ("big-widget", "TestWidget")
    assert access_types_mapping("TestWidget") == {"big-widget": BigWidget}


def test_duplicate_name_in_a_group_raises() -> None:
    class Other(Widget):
        pass

    with pytest.raises(KeyError, match="already registered"):
        register_type(Other, name="big-widget", group="TestWidget")
    register_type(Other, name="big-widget", group="TestWidget", repl=True)
    register_type(BigWidget, name="big-widget", group="TestWidget", repl=True)


def test_unknown_name_raises_key_error_listing_registered_names() -> None:
    with pytest.raises(KeyError, match=r"'tiny'.*registered names: \['big-widget'\]"):
        access_registered("tiny", "TestWidget")
    with pytest.raises(KeyError, match="No types registry named 'Nope'"):
        access_registered("x", "Nope")


def test_type_outside_the_group_base_is_refused() -> None:
    class Stranger:
        pass

    with pytest.raises(TypeError, match="does not inherit 'Widget'"):
        register_type(Stranger, name="stranger", group="TestWidget")


def test_unregistered_type_has_no_registration_info() -> None:
    class Unlisted(Widget):
        pass

    with pytest.raises(KeyError, match="is not registered"):
        access_registration_info(Unlisted)


def test_default_group_is_that_of_the_nearest_registered_base() -> None:
    @register_type(name="small-widget")
    class SmallWidget(Widget):
        pass

    assert access_registration_info(SmallWidget) == ("small-widget", "TestWidget")


def test_build_from_spec_accepts_instances_names_and_name_config_pairs() -> None:
    inst = BigWidget(3)
    assert build_from_spec(inst, "TestWidget") is inst
    assert build_from_spec("big-widget", "TestWidget").size == 1
    built = build_from_spec(["big-widget", {"size": 4}], "TestWidget")
    assert isinstance(built, BigWidget) and built.size == 4
    with pytest.raises(TypeError, match="expected an instance"):
        build_from_spec(42, "TestWidget")
    with pytest.raises(TypeError, match="must be a dict"):
        build_from_spec(("big-widget", [1]), "TestWidget")


def test_opening_a_group_twice_raises() -> None:
    class Gadget:
        pass

    create_types_registry(Gadget, "TestGadget")
    with pytest.raises(KeyError, match="'TestGadget' already exists"):
        create_types_registry(Gadget, "TestGadget")


def test_registering_a_taken_name_raises_even_for_the_same_type() -> None:
    @register_type(name="twice", group="TestWidget")
    class Twice(Widget):
        pass

    with pytest.raises(KeyError, match="already registered"):
        register_type(Twice, name="twice", group="TestWidget")


def test_type_without_a_registered_parent_needs_an_explicit_group() -> None:
    class Orphan:
        pass

    with pytest.raises(TypeError, match="name its group"):
        register_type(Orphan, name="orphan")
    with pytest.raises(KeyError, match="No types registry named"):
        register_type(Orphan, name="orphan", group="TestNoSuchGroup")


def test_register_from_attr_uses_the_class_attribute_as_name() -> None:
    class Named(Widget):
        ident = "named-widget"

    class Unnamed(Widget):
        ident = None

    register_from_attr(Named, "ident", group="TestWidget")
    assert access_registered("named-widget", "TestWidget") is Named
    with pytest.raises(TypeError, match="'ident' attribute"):
        register_from_attr(Unnamed, "ident", group="TestWidget")


def test_registration_info_can_be_restricted_to_a_group() -> None:
    assert access_registration_info(BigWidget, group="TestWidget") == ("big-widget", "TestWidget")
    with pytest.raises(KeyError, match="not registered in group 'Vector'"):
        access_registration_info(BigWidget, group="Vector")
    with pytest.raises(KeyError, match="No types registry named 'TestNope'"):
        access_registration_info(BigWidget, group="TestNope")

"""dataclass_from_mapping builds a config dataclass only from its own fields."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flwr_declearn.utils._dataclasses import dataclass_from_mapping


@dataclasses.dataclass(frozen=True)
class _Config:
    size: int = 1
    name: str = "a"


KNOWN = st.fixed_dictionaries({}, optional={"size": st.integers(), "name": st.text(max_size=3)})


@given(config=KNOWN)
def test_known_fields_build_the_dataclass(config: dict[str, object]) -> None:
    assert dataclass_from_mapping(_Config, config) == _Config(**config)  # type: ignore[arg-type]


@given(
    config=KNOWN, extra=st.text(min_size=1, max_size=5).filter(lambda k: k not in ("size", "name"))
)
def test_an_unknown_field_is_rejected_unless_ignored(config: dict[str, object], extra: str) -> None:
    with pytest.raises(ValueError, match=r"Unknown _Config field\(s\)"):
        dataclass_from_mapping(_Config, {**config, extra: 0})
    built = dataclass_from_mapping(_Config, {**config, extra: 0}, ignore=(extra,))
    assert built == _Config(**config)  # type: ignore[arg-type]


@pytest.mark.parametrize("config", [[("size", 2)], "size", None])
def test_a_non_mapping_is_rejected(config: object) -> None:
    with pytest.raises(ValueError, match="must be built from a dict"):
        dataclass_from_mapping(_Config, config)  # type: ignore[arg-type]

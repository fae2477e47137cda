"""Hypothesis strategies shared by the serialisation tests."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st


def nested(leaves: st.SearchStrategy[Any], max_leaves: int) -> st.SearchStrategy[Any]:
    """Trees of `leaves` in lists (up to 3 items), pairs and str-keyed dicts (up to 3 keys)."""
    return st.recursive(
        leaves,
        lambda children: (
            st.lists(children, max_size=3)
            | st.tuples(children, children)
            | st.dictionaries(st.text(max_size=5), children, max_size=3)
        ),
        max_leaves=max_leaves,
    )

"""Test app for the liveness of `DeclearnMessageStrategy` (tests/flower/test_liveness.py)."""

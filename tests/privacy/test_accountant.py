"""PrivacyAccountant: the epsilon of dp-accounting's RDP accountant, with a validated state."""

from __future__ import annotations

import math
from typing import Any

import dp_accounting
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flwr_declearn.privacy import PrivacyAccountant, noise_multiplier_of


def direct_epsilon(events: list[tuple[float, float, int]], delta: float) -> float:
    accountant = dp_accounting.rdp.RdpAccountant()
    for noise, rate, count in events:
        accountant.compose(
            dp_accounting.PoissonSampledDpEvent(rate, dp_accounting.GaussianDpEvent(noise)), count
        )
    return float(accountant.get_epsilon(delta))


def test_epsilon_equals_dp_accounting_called_directly() -> None:
    accountant = PrivacyAccountant(delta=1e-5)
    assert accountant.epsilon() == 0.0
    accountant.step(noise_multiplier=1.1, sample_rate=0.01, count=600)
    accountant.step(noise_multiplier=1.1, sample_rate=0.01)
    accountant.step(noise_multiplier=0.8, sample_rate=0.05, count=10)
    expected = direct_epsilon([(1.1, 0.01, 601), (0.8, 0.05, 10)], 1e-5)
    assert accountant.epsilon() == pytest.approx(expected, rel=1e-12)
    assert accountant.events == [(1.1, 0.01, 601), (0.8, 0.05, 10)]
    assert accountant.n_steps == 611


def test_epsilon_grows_with_steps_and_shrinks_with_more_noise() -> None:
    figures = []
    for steps in (10, 100, 1000):
        accountant = PrivacyAccountant(1e-5)
        accountant.step(1.0, 0.02, steps)
        figures.append(accountant.epsilon())
    assert figures[0] < figures[1] < figures[2]
    by_noise = []
    for noise in (0.7, 1.0, 2.0, 4.0):
        accountant = PrivacyAccountant(1e-5)
        accountant.step(noise, 0.02, 500)
        by_noise.append(accountant.epsilon())
    assert by_noise == sorted(by_noise, reverse=True) and len(set(by_noise)) == 4


def test_no_noise_means_no_privacy() -> None:
    accountant = PrivacyAccountant(1e-5)
    accountant.step(0.0, 0.1)
    assert accountant.epsilon() == math.inf


def test_state_round_trips_and_resumes_the_same_figure() -> None:
    first = PrivacyAccountant(1e-6)
    first.step(1.3, 0.1, 50)
    resumed = PrivacyAccountant(0.5)
    resumed.set_state(first.get_state())
    assert resumed.delta == 1e-6 and resumed.epsilon() == first.epsilon()
    first.step(1.3, 0.1, 50)
    resumed.step(1.3, 0.1, 50)
    assert resumed.epsilon() == first.epsilon()


def test_noise_multiplier_of_a_mean_of_clipped_gradients() -> None:
    assert noise_multiplier_of(std=0.05, max_norm=2.0, batch_size=64) == pytest.approx(1.6)
    with pytest.raises(ValueError, match="max_norm > 0"):
        noise_multiplier_of(0.1, 0.0, 10)


@pytest.mark.parametrize(
    ("args", "match"),
    [
        ((math.nan, 0.1, 1), "finite"),
        ((1.0, math.inf, 1), "finite"),
        ((-1.0, 0.1, 1), ">= 0"),
        ((1.0, 1.5, 1), r"\[0, 1\]"),
        ((1.0, 0.1, -2), "count"),
        ((1.0, 0.1, 1.5), "count"),
        ((True, 0.1, 1), "real number"),
    ],
)
def test_invalid_steps_are_rejected_and_account_nothing(args: tuple[Any, ...], match: str) -> None:
    accountant = PrivacyAccountant(1e-5)
    with pytest.raises((TypeError, ValueError), match=match):
        accountant.step(*args)
    assert accountant.events == []


@pytest.mark.parametrize("delta", [0.0, 1.0, -1e-5, math.nan, "1e-5"])
def test_invalid_deltas_are_rejected(delta: Any) -> None:
    with pytest.raises((TypeError, ValueError), match="delta"):
        PrivacyAccountant(delta)


_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=3),
)
_EVENTS = st.lists(st.one_of(st.lists(_VALUES, max_size=4), _VALUES), max_size=4)


@settings(max_examples=500, deadline=None)
@given(
    state=st.one_of(
        _VALUES,
        st.dictionaries(st.sampled_from(["delta", "events", "x"]), st.one_of(_VALUES, _EVENTS)),
    )
)
def test_set_state_accepts_only_valid_states_and_otherwise_changes_nothing(state: Any) -> None:
    accountant = PrivacyAccountant(1e-5)
    accountant.step(1.0, 0.1, 3)
    before = accountant.get_state()
    try:
        accountant.set_state(state)
    except (TypeError, ValueError):
        assert accountant.get_state() == before
        return
    assert 0 < accountant.delta < 1
    for noise, rate, count in accountant.events:
        assert noise >= 0 and 0 < rate <= 1 and count > 0
    assert accountant.epsilon() >= 0

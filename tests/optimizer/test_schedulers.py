"""Schedulers give declearn 2.9.1's rates over steps and rounds; configs and states round-trip."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flwr_declearn.optimizer import list_rate_schedulers
from flwr_declearn.optimizer.schedulers import CosineAnnealingWarmRestarts, Scheduler, Warmup

CASES: list[tuple[str, dict[str, Any]]] = [
    ("exponential-decay", {"base": 0.1, "rate": 0.9}),
    ("exponential-decay", {"base": 0.1, "rate": 0.5, "step_level": False}),
    ("inverse-scaling", {"base": 0.2, "rate": 0.5}),
    ("inverse-scaling", {"base": 0.2, "rate": 1.5, "step_level": False}),
    ("linear-decay", {"base": 0.1, "rate": 0.07}),
    ("linear-decay", {"base": 0.1, "rate": 0.3, "step_level": False}),
    ("piecewise-decay", {"base": 0.1, "rate": 0.5, "step_size": 3}),
    ("piecewise-decay", {"base": 0.1, "rate": 0.5, "step_size": 2, "step_level": False}),
    ("polynomial-decay", {"base": 0.1, "power": 2, "limit": 15}),
    ("polynomial-decay", {"base": 0.1, "power": 3, "limit": 3, "step_level": False}),
    ("cosine-annealing", {"base": 0.01, "max_lr": 0.1, "duration": 12}),
    ("cosine-annealing", {"base": 0.01, "max_lr": 0.1, "duration": 3, "step_level": False}),
    ("cosine-annealing-warm-restarts", {"base": 0.01, "max_lr": 0.1, "period": 4}),
    ("cosine-annealing-warm-restarts", {"base": 0.0, "max_lr": 1.0, "period": 5, "t_mult": 0.5}),
    ("cyclic-triangular", {"base": 0.01, "max_lr": 0.1, "stepsize": 3}),
    ("cyclic-triangular", {"base": 0.01, "max_lr": 0.1, "stepsize": 2, "decay": True}),
    ("cyclic-exp-range", {"base": 0.01, "max_lr": 0.1, "stepsize": 3, "decay": 0.95}),
    ("warmup", {"base": 0.1, "warmup": 5}),
    ("warmup", {"base": ["exponential-decay", {"base": 0.1, "rate": 0.8}], "warmup": 4}),
    (
        "warmup",
        {"base": ["linear-decay", {"base": 0.1, "rate": 0.2, "step_level": False}], "warmup": 7},
    ),
    ("warmup-rounds", {"base": 0.1, "warmup": 2}),
    (
        "warmup-rounds",
        {"base": ["exponential-decay", {"base": 0.1, "rate": 0.7}], "warmup": 2},
    ),
    (
        "warmup-rounds",
        {
            "base": [
                "polynomial-decay",
                {"base": 1.0, "power": 1, "limit": 4, "step_level": False},
            ],
            "warmup": 1,
        },
    ),
]

ROUND_LENGTHS = [3, 4, 2, 5, 1, 3, 2]  # steps per round: 20 steps over 7 rounds


def _declearn(name: str, config: dict[str, Any]) -> Any:
    from declearn.optimizer.schedulers import Scheduler as DeclearnScheduler

    return DeclearnScheduler.from_specs(name, json.loads(json.dumps(config)))


def _trace(scheduler: Any) -> list[float]:
    rates: list[float] = []
    for length in ROUND_LENGTHS:
        scheduler.on_round_start()
        rates.extend(scheduler.get_next_rate() for _ in range(length))
    return rates


def test_all_eleven_schedulers_are_registered() -> None:
    assert set(list_rate_schedulers()) >= {name for name, _ in CASES}
    assert len({name for name, _ in CASES}) == 11


@pytest.mark.parametrize(("name", "config"), CASES, ids=[f"{n}-{c}" for n, c in CASES])
def test_scheduler_matches_declearn_over_rounds_and_steps(
    name: str, config: dict[str, Any]
) -> None:
    ours = Scheduler.from_specs(name, json.loads(json.dumps(config)))
    expected = _trace(_declearn(name, config))
    assert _trace(ours) == pytest.approx(expected, rel=1e-12, abs=1e-15)


@pytest.mark.parametrize(("name", "config"), CASES, ids=[f"{n}-{c}" for n, c in CASES])
def test_scheduler_config_and_state_round_trip_through_json(
    name: str, config: dict[str, Any]
) -> None:
    ours = Scheduler.from_specs(name, json.loads(json.dumps(config)))
    for length in ROUND_LENGTHS[:3]:
        ours.on_round_start()
        for _ in range(length):
            ours.get_next_rate()
    rebuilt = Scheduler.from_specs(name, json.loads(json.dumps(ours.get_config())))
    rebuilt.set_state(json.loads(json.dumps(ours.get_state())))
    assert rebuilt.get_config() == ours.get_config()
    assert _trace(rebuilt) == _trace(ours)


@pytest.mark.parametrize(("name", "config"), CASES, ids=[f"{n}-{c}" for n, c in CASES])
def test_declearn_scheduler_config_builds_ours_unchanged(name: str, config: dict[str, Any]) -> None:
    declearn_config = json.loads(json.dumps(_declearn(name, config).get_config()))
    ours = Scheduler.from_specs(name, declearn_config)
    assert _trace(ours) == pytest.approx(_trace(_declearn(name, config)), rel=1e-12, abs=1e-15)


def test_current_value_previews_without_advancing() -> None:
    sched = Scheduler.from_specs("exponential-decay", {"base": 1.0, "rate": 0.5})
    assert sched.current_value() == sched.current_value() == 1.0
    assert sched.get_next_rate() == 1.0
    assert sched.current_value() == 0.5


def test_set_state_names_the_missing_counter() -> None:
    sched = Warmup(base=0.1, warmup=3)
    with pytest.raises(KeyError, match="full_warmup_rounds"):
        sched.set_state({"steps": 1, "rounds": 0})
    with pytest.raises(KeyError, match="rounds"):
        Scheduler.from_specs("linear-decay", {"base": 1.0, "rate": 0.1}).set_state({"steps": 2})


def test_bad_configs_raise_clear_errors() -> None:
    with pytest.raises(KeyError, match="no-such-rule"):
        Scheduler.from_specs("no-such-rule", {"base": 0.1})
    with pytest.raises(TypeError, match="exponential-decay"):
        Scheduler.from_specs("exponential-decay", {"base": 0.1})  # lacks 'rate'
    with pytest.raises(ValueError, match="period"):
        CosineAnnealingWarmRestarts(base=0.0, max_lr=1.0, period=0)
    with pytest.raises(TypeError, match="base"):
        Warmup(base="fast", warmup=2)


@settings(max_examples=30, deadline=None)
@given(
    period=st.integers(1, 6),
    t_mult=st.floats(0.1, 2.0),
    rounds=st.lists(st.integers(1, 4), min_size=1, max_size=6),
)
def test_warm_restarts_over_rounds_restart_every_period_rounds(
    period: int, t_mult: float, rounds: list[int]
) -> None:
    # declearn 2.9.1 takes the cycle index from steps even when step_level=False;
    # we count both the cycle and the position in it in rounds.
    sched = CosineAnnealingWarmRestarts(
        base=0.0, max_lr=1.0, period=period, t_mult=t_mult, step_level=False
    )
    for round_, length in enumerate(rounds):
        sched.on_round_start()
        cycle, index = divmod(round_, period)
        if index == 0:
            expected = t_mult**cycle  # restart: peak value for the whole round
            assert all(sched.get_next_rate() == pytest.approx(expected) for _ in range(length))
        else:
            values = {sched.get_next_rate() for _ in range(length)}
            assert len(values) == 1 and values.pop() < t_mult**cycle

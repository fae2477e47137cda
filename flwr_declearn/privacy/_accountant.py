"""`PrivacyAccountant`: Renyi-DP accounting of Poisson-subsampled Gaussian mechanisms.

Each step is one application of the sampled Gaussian mechanism (Abadi et
al., 2016; Mironov et al., 2019): every record joins the step's sample
independently with probability `sample_rate` (Poisson sampling), the sum of
the sample's contributions, each clipped to an L2 norm `C`, receives
Gaussian noise of standard deviation `noise_multiplier * C`. Steps compose
adaptively. Epsilon is computed by `dp_accounting.rdp.RdpAccountant` (Renyi
DP over its default orders, then converted to (epsilon, delta)-DP), under
the add-or-remove-one neighbouring relation.

The accountant keeps only its history of `(noise_multiplier, sample_rate,
count)` events, so that its state is a small JSON-able dict.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from typing import Any

__all__ = ["PrivacyAccountant", "noise_multiplier_of"]

_STATE_KEYS = ("delta", "events")


def _real(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"'{name}' must be a real number, not {value!r}.")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"'{name}' must be finite, not {value!r}.")
    return value


def _check_delta(delta: Any) -> float:
    delta = _real(delta, "delta")
    if not 0.0 < delta < 1.0:
        raise ValueError(f"'delta' must be in (0, 1), not {delta!r}.")
    return delta


def _check_event(noise_multiplier: Any, sample_rate: Any, count: Any) -> tuple[float, float, int]:
    noise = _real(noise_multiplier, "noise_multiplier")
    if noise < 0.0:
        raise ValueError(f"'noise_multiplier' must be >= 0, not {noise!r}.")
    rate = _real(sample_rate, "sample_rate")
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"'sample_rate' must be in [0, 1], not {rate!r}.")
    if isinstance(count, bool) or not isinstance(count, numbers.Integral) or count < 0:
        raise ValueError(f"'count' must be an int >= 0, not {count!r}.")
    return noise, rate, int(count)


def noise_multiplier_of(std: float, max_norm: float, batch_size: float) -> float:
    """Return the noise multiplier of noise `std` added to a mean of clipped gradients.

    A DP-SGD step that averages `batch_size` (expected) sample gradients,
    each clipped to `max_norm`, and adds N(0, std^2) noise to that mean
    adds N(0, (std * batch_size)^2) to their sum, whose sensitivity is
    `max_norm`: the multiplier is `std * batch_size / max_norm`.
    """
    std = _real(std, "std")
    max_norm = _real(max_norm, "max_norm")
    batch_size = _real(batch_size, "batch_size")
    if std < 0 or max_norm <= 0 or batch_size <= 0:
        raise ValueError(
            "noise_multiplier_of needs std >= 0, max_norm > 0 and batch_size > 0, not "
            f"{std!r}, {max_norm!r}, {batch_size!r}."
        )
    return std * batch_size / max_norm


class PrivacyAccountant:
    """Track the (epsilon, delta) spent by Poisson-subsampled Gaussian steps.

    Parameters
    ----------
    delta:
        The delta of the (epsilon, delta)-DP guarantee, in (0, 1); usually
        well below 1 / (number of records).

    Examples
    --------
    >>> accountant = PrivacyAccountant(delta=1e-5)
    >>> accountant.step(noise_multiplier=1.1, sample_rate=0.01, count=1000)
    >>> eps = accountant.epsilon()  # doctest: +SKIP
    """

    def __init__(self, delta: float) -> None:
        self.delta = _check_delta(delta)
        self._events: list[tuple[float, float, int]] = []
        self._cache: float | None = 0.0

    @property
    def events(self) -> list[tuple[float, float, int]]:
        """The `(noise_multiplier, sample_rate, count)` events accounted so far."""
        return list(self._events)

    @property
    def n_steps(self) -> int:
        """Total number of steps accounted so far."""
        return sum(count for _, _, count in self._events)

    def step(self, noise_multiplier: float, sample_rate: float, count: int = 1) -> None:
        """Account for `count` steps of the sampled Gaussian mechanism.

        Parameters
        ----------
        noise_multiplier:
            Noise standard deviation over the contributions' L2 clipping bound (>= 0;
            0 means no privacy: epsilon becomes infinite).
        sample_rate:
            Probability that each record takes part in a step, in [0, 1].
        count:
            Number of such steps.

        Raises
        ------
        TypeError, ValueError
            If an argument is not a finite number in its range; nothing is accounted then.
        """
        noise, rate, count = _check_event(noise_multiplier, sample_rate, count)
        if count == 0 or rate == 0.0:
            return
        if self._events and self._events[-1][:2] == (noise, rate):
            self._events[-1] = (noise, rate, self._events[-1][2] + count)
        else:
            self._events.append((noise, rate, count))
        self._cache = None

    def epsilon(self) -> float:
        """Return the epsilon spent so far at this accountant's delta (`inf` if unbounded).

        Raises
        ------
        ImportError
            If `dp-accounting` is not installed (`pip install flwr-declearn[dp]`).
        """
        if self._cache is None:
            self._cache = _rdp_epsilon(self._events, self.delta)
        return self._cache

    def get_state(self) -> dict[str, Any]:
        """Return the accountant's state as a JSON-able dict (`set_state` restores it)."""
        return {"delta": self.delta, "events": [list(event) for event in self._events]}

    def set_state(self, state: Mapping[str, Any]) -> None:
        """Restore a `get_state` output, after validating it; on error, nothing changes.

        Raises
        ------
        TypeError, ValueError
            If the state is not a dict of a valid delta and valid events.
        """
        if not isinstance(state, Mapping):
            raise TypeError(f"PrivacyAccountant state must be a dict, not {type(state).__name__}.")
        if set(state) != set(_STATE_KEYS):
            raise ValueError(
                f"PrivacyAccountant state must hold exactly {list(_STATE_KEYS)}, not "
                f"{sorted(map(str, state))}."
            )
        delta = _check_delta(state["delta"])
        raw = state["events"]
        if not isinstance(raw, list | tuple):
            raise TypeError("PrivacyAccountant state 'events' must be a list.")
        events = []
        for i, event in enumerate(raw):
            if not isinstance(event, list | tuple) or len(event) != 3:
                raise ValueError(
                    f"PrivacyAccountant event #{i} must be [noise_multiplier, sample_rate, count]."
                )
            events.append(_check_event(*event))
        self.delta = delta
        self._events = [event for event in events if event[2] and event[1]]
        self._cache = None

    def __repr__(self) -> str:
        return f"PrivacyAccountant(delta={self.delta!r}, steps={self.n_steps})"


def _rdp_epsilon(events: list[tuple[float, float, int]], delta: float) -> float:
    try:
        import dp_accounting
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            "Privacy accounting needs Google's dp-accounting: pip install 'flwr-declearn[dp]'."
        ) from exc
    accountant = dp_accounting.rdp.RdpAccountant()
    for noise, rate, count in events:
        event = dp_accounting.PoissonSampledDpEvent(rate, dp_accounting.GaussianDpEvent(noise))
        accountant.compose(event, count)
    return float(accountant.get_epsilon(delta))

"""Metric API: evaluation metrics accumulated over batches into summable states.

A `Metric` turns `(y_true, y_pred, s_wght)` batches into a `MetricState`
(a dataclass of counts and sums). States of several batches, or of several
clients, aggregate with `+`, so a server can merge clients' states (in clear,
or through secure aggregation of their summable fields) before computing the
global metric with `get_result`.
"""

from __future__ import annotations

import copy
import dataclasses
from abc import ABCMeta, abstractmethod
from collections.abc import Iterable
from typing import Any, ClassVar, Generic, Self, TypeVar

import numpy as np

from flwr_declearn.utils import build_from_spec, create_types_registry
from flwr_declearn.utils._plugin import RegisteredPlugin

__all__ = ["Metric", "MetricSet", "MetricState", "build_metric"]


@dataclasses.dataclass
class MetricState:
    """Summable intermediate state of a Metric (subclasses are dataclasses).

    `a + b` aggregates two states field by field, with `aggregate_<field>`
    where a subclass defines one, else `default_aggregate` (a sum).
    """

    def __add__(self, other: Any) -> Self:
        if not isinstance(other, type(self)) and not isinstance(self, type(other)):
            return NotImplemented
        return type(self)(
            **{
                f.name: getattr(self, f"aggregate_{f.name}", self.default_aggregate)(
                    getattr(self, f.name), getattr(other, f.name)
                )
                for f in dataclasses.fields(self)
            }
        )

    @staticmethod
    def default_aggregate(val_a: Any, val_b: Any) -> Any:
        """Aggregate two values of a field: their sum."""
        return val_a + val_b

    def to_dict(self) -> dict[str, Any]:
        """Return the fields as a dict (values are not copied)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        """Build a state from `to_dict`'s output."""
        return cls(**data)

    def prepare_for_secagg(self) -> tuple[dict[str, Any], dict[str, Any] | None]:
        """Split fields into those summed under secure aggregation and those sent in clear.

        Every field sums by default; a subclass with other fields overrides
        this, or raises NotImplementedError if it cannot be securely aggregated.
        """
        return self.to_dict(), None


StateT = TypeVar("StateT", bound=MetricState)


@create_types_registry(name="Metric")
class Metric(RegisteredPlugin, Generic[StateT], metaclass=ABCMeta, register=False):
    """Metric computed from `(y_true, y_pred, s_wght)` batches, accumulated in a MetricState.

    Subclasses set `name` (their registered name, and the key of their main
    value in `get_result`) and `state_cls`, and implement
    `build_initial_states`, `update` and `get_result`.
    """

    plugin_group: ClassVar[str] = "Metric"
    state_cls: ClassVar[type[MetricState]]
    """Type of the states of this metric."""

    def __init__(self) -> None:
        self._states: StateT = self.build_initial_states()

    @abstractmethod
    def build_initial_states(self) -> StateT:
        """Return the states of a metric that saw no sample."""

    @abstractmethod
    def update(
        self, y_true: np.ndarray, y_pred: np.ndarray, s_wght: np.ndarray | None = None
    ) -> None:
        """Accumulate the states of a batch of predictions.

        Parameters
        ----------
        y_true:
            True labels or values, batched along the first axis.
        y_pred:
            Predictions (scores, labels or values), aligned with `y_true`.
        s_wght:
            Optional 1-d (or squeezable) non-negative sample weights.

        Raises
        ------
        ValueError
            If the inputs' shapes do not match.
        """

    @abstractmethod
    def get_result(self) -> dict[str, float | np.ndarray]:
        """Return the metric value(s) of the accumulated states."""

    def reset(self) -> None:
        """Forget all accumulated states."""
        self._states = self.build_initial_states()

    def get_states(self) -> StateT:
        """Return a copy of the accumulated states."""
        return copy.deepcopy(self._states)

    def set_states(self, states: StateT) -> None:
        """Replace the accumulated states (e.g. with clients' aggregated ones).

        Raises
        ------
        TypeError
            If `states` are not states of this metric.
        """
        if not isinstance(states, self.state_cls):
            raise TypeError(
                f"{type(self).__name__}.set_states expects a {self.state_cls.__name__}, "
                f"not a {type(states).__name__}."
            )
        self._states = copy.deepcopy(states)

    @staticmethod
    def _prepare_sample_weights(s_wght: Any, n_samples: int) -> np.ndarray:
        """Return `s_wght` as a 1-d float array of `n_samples` values (ones if None).

        Raises
        ------
        ValueError
            If the weights do not squeeze to `(n_samples,)`, or are negative.
        """
        if s_wght is None:
            return np.ones(n_samples, dtype=np.float64)
        weights = _squeeze_tail(np.asarray(s_wght, dtype=np.float64))
        if weights.shape != (n_samples,) or np.any(weights < 0):
            raise ValueError(
                f"{np.shape(s_wght)} sample weights for {n_samples} samples: 's_wght' must be "
                "a 1-d (or squeezable) array of one non-negative weight per sample."
            )
        return weights


def squeeze_into_identical_shapes(
    y_true: np.ndarray, y_pred: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Return `y_true` and `y_pred` with the same shape, dropping trailing unit dimensions.

    Raises
    ------
    ValueError
        If their shapes differ otherwise.
    """
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    if y_true.shape != y_pred.shape:
        true, pred = _squeeze_tail(y_true), _squeeze_tail(y_pred)
        if true.shape != pred.shape:
            raise ValueError(f"y_true and y_pred shapes differ: {y_true.shape} vs {y_pred.shape}.")
        return true, pred
    return y_true, y_pred


def _squeeze_tail(array: np.ndarray) -> np.ndarray:
    while array.ndim > 1 and array.shape[-1] == 1:
        array = array[..., 0]
    return array


def build_metric(spec: Metric[Any] | str | tuple[str, dict[str, Any]]) -> Metric[Any]:
    """Build a Metric from an instance, a registered name or a `(name, config)` pair.

    Raises
    ------
    KeyError
        If the name is not that of a registered Metric (e.g. "accuracy", "mse", "r2").
    TypeError
        If `spec` has none of these forms.
    """
    metric = build_from_spec(spec, group="Metric")
    if not isinstance(metric, Metric):  # pragma: no cover - registry guarantees this
        raise TypeError(f"Expected a Metric, got {type(metric).__qualname__}.")
    return metric


MetricInput = Metric[Any] | str | tuple[str, dict[str, Any]]


class MetricSet:
    """Several metrics updated together; results merged into one dict.

    Parameters
    ----------
    metrics:
        Metrics, or specs accepted by `build_metric`.

    Raises
    ------
    ValueError
        If two metrics share a name.
    """

    def __init__(self, metrics: Iterable[MetricInput]) -> None:
        self.metrics = [build_metric(spec) for spec in metrics]
        names = [metric.name for metric in self.metrics]
        if len(set(names)) != len(names):
            raise ValueError(f"MetricSet: duplicate metric names in {names}.")

    @classmethod
    def from_specs(cls, specs: MetricSet | Iterable[MetricInput] | None) -> MetricSet:
        """Return `specs` if a MetricSet, else a MetricSet of them (empty for None).

        Raises
        ------
        TypeError
            If `specs` is a str or not iterable.
        """
        if specs is None:
            return cls([])
        if isinstance(specs, MetricSet):
            return specs
        if isinstance(specs, str | bytes) or not isinstance(specs, Iterable):
            raise TypeError(f"Cannot build a MetricSet from {specs!r}: expected a list of metrics.")
        return cls(specs)

    def get_config(self) -> dict[str, Any]:
        """Return `{"metrics": [(name, config), ...]}`, which `from_config` takes."""
        return {"metrics": [(metric.name, metric.get_config()) for metric in self.metrics]}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> MetricSet:
        """Build a MetricSet from `get_config`'s output."""
        return cls([(name, cfg) for name, cfg in config["metrics"]])

    def reset(self) -> None:
        """Reset every metric."""
        for metric in self.metrics:
            metric.reset()

    def update(
        self, y_true: np.ndarray, y_pred: np.ndarray, s_wght: np.ndarray | None = None
    ) -> None:
        """Update every metric with a batch."""
        for metric in self.metrics:
            metric.update(y_true=y_true, y_pred=y_pred, s_wght=s_wght)

    def get_result(self) -> dict[str, Any]:
        """Return the merged results of every metric (floats, or arrays such as "confusion")."""
        results: dict[str, Any] = {}
        for metric in self.metrics:
            results.update(metric.get_result())
        return results

    def get_states(self) -> dict[str, MetricState]:
        """Return every metric's states, by metric name."""
        return {metric.name: metric.get_states() for metric in self.metrics}

    def set_states(self, states: dict[str, MetricState]) -> None:
        """Set the states of the metrics named in `states`.

        Raises
        ------
        KeyError
            If `states` names a metric that is not in this set.
        """
        by_name = {metric.name: metric for metric in self.metrics}
        unknown = sorted(set(states) - set(by_name))
        if unknown:
            raise KeyError(f"MetricSet has no metrics named {unknown}.")
        for name, state in states.items():
            by_name[name].set_states(state)

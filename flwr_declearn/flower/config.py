"""Training and evaluation configs sent by the server to the clients."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, Self

from flwr_declearn.utils._dataclasses import dataclass_from_mapping

__all__ = ["EvaluationConfig", "TrainingConfig"]


def _check_positive_int(name: str, value: Any, optional: bool = False) -> None:
    if optional and value is None:
        return
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(
            f"'{name}' must be a positive int{' or None' if optional else ''}, not {value!r}."
        )


@dataclasses.dataclass(frozen=True)
class TrainingConfig:
    """Local training effort of a client in one round.

    Training runs `n_epochs` passes over the local data, or `n_steps`
    optimization steps (cycling over epochs), whichever ends first when both
    are set; one epoch when neither is.

    Attributes
    ----------
    batch_size:
        Number of samples per batch (the expected number with `poisson`).
    n_epochs:
        Maximum number of epochs, or None.
    n_steps:
        Maximum number of optimization steps, or None.
    shuffle:
        Whether to shuffle the samples at every epoch.
    drop_remainder:
        Whether to drop an epoch's last batch when it is smaller than `batch_size`.
    poisson:
        Whether to draw batches by Poisson sampling (as DP-SGD accounting assumes).
    sclip:
        Optional per-sample gradient clipping L2 norm (DP-SGD).
    """

    batch_size: int = 32
    n_epochs: int | None = None
    n_steps: int | None = None
    shuffle: bool = True
    drop_remainder: bool = False
    poisson: bool = False
    sclip: float | None = None

    def __post_init__(self) -> None:
        _check_positive_int("batch_size", self.batch_size)
        _check_positive_int("n_epochs", self.n_epochs, optional=True)
        _check_positive_int("n_steps", self.n_steps, optional=True)
        for name in ("shuffle", "drop_remainder", "poisson"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"'{name}' must be a bool, not {getattr(self, name)!r}.")
        if self.sclip is not None and (
            isinstance(self.sclip, bool)
            or not isinstance(self.sclip, int | float)
            or not self.sclip > 0
        ):
            raise ValueError(f"'sclip' must be a positive float or None, not {self.sclip!r}.")

    @property
    def epochs(self) -> int | None:
        """Number of epochs to run: `n_epochs`, 1 if neither limit is set, else None."""
        if self.n_epochs is None and self.n_steps is None:
            return 1
        return self.n_epochs

    def to_dict(self) -> dict[str, Any]:
        """Return the config as a dict of plain values."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, config: Mapping[str, Any]) -> Self:
        """Build from a dict, rejecting unknown or invalid fields with a ValueError."""
        return dataclass_from_mapping(cls, config)


@dataclasses.dataclass(frozen=True)
class EvaluationConfig:
    """Evaluation settings of a client.

    Attributes
    ----------
    batch_size:
        Number of samples per inference batch.
    """

    batch_size: int = 256

    def __post_init__(self) -> None:
        _check_positive_int("batch_size", self.batch_size)

    def to_dict(self) -> dict[str, Any]:
        """Return the config as a dict of plain values."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, config: Mapping[str, Any]) -> Self:
        """Build from a dict, rejecting unknown or invalid fields with a ValueError."""
        return dataclass_from_mapping(cls, config)

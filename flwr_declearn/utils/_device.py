"""Global device-placement policy, consulted by Model and Vector classes."""

from __future__ import annotations

import dataclasses

__all__ = ["DevicePolicy", "get_device_policy", "set_device_policy"]


@dataclasses.dataclass(frozen=True)
class DevicePolicy:
    """Device-placement policy.

    Attributes
    ----------
    gpu:
        Whether to place data and computations on a GPU when one is available
        (falling back to the CPU otherwise).
    idx:
        Index of the GPU to use; None picks the first one.
    """

    gpu: bool
    idx: int | None

    def __post_init__(self) -> None:
        if not isinstance(self.gpu, bool):
            raise TypeError(f"DevicePolicy.gpu must be a bool, not {type(self.gpu).__name__}.")
        if self.idx is not None and (not isinstance(self.idx, int) or self.idx < 0):
            raise TypeError(
                f"DevicePolicy.idx must be None or a non-negative int, not {self.idx!r}."
            )


_POLICY = DevicePolicy(gpu=False, idx=None)


def get_device_policy() -> DevicePolicy:
    """Return the current global device-placement policy."""
    return _POLICY


def set_device_policy(gpu: bool, idx: int | None = None) -> None:
    """Set the global device-placement policy.

    Existing Model instances keep their placement until their
    `update_device_policy` method is called.

    Parameters
    ----------
    gpu:
        Whether to use a GPU when one is available.
    idx:
        Index of the GPU to use; None picks the first one.
    """
    global _POLICY
    _POLICY = DevicePolicy(gpu=gpu, idx=idx)

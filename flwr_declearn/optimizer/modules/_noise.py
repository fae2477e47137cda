"""Noise-addition modules (e.g. for DP-SGD), with a cryptographically secure sampler."""

from __future__ import annotations

import math
import os
import warnings
from abc import abstractmethod
from typing import Any, ClassVar

import numpy as np

from flwr_declearn.model.api import Vector
from flwr_declearn.model.numpy import NumpyVector
from flwr_declearn.optimizer._checks import check_positive, required_state
from flwr_declearn.optimizer.modules._api import OptiModule

__all__ = ["GaussianNoiseModule", "NoiseModule", "secure_standard_normal", "secure_uniform"]


def secure_uniform(size: int) -> np.ndarray:
    """Return `size` float64 values uniform on (0, 1], from the OS CSPRNG (`os.urandom`).

    Each value uses 53 random bits: `(k + 1) / 2**53` with `k` uniform on
    `[0, 2**53)`.
    """
    bits = np.frombuffer(os.urandom(8 * size), dtype=np.uint64)
    values = (bits >> np.uint64(11)).astype(np.float64)
    values += 1.0
    values *= 2.0**-53
    return values


def secure_standard_normal(size: int) -> np.ndarray:
    """Return `size` float64 standard normal values from the OS CSPRNG.

    Box-Muller transform of `secure_uniform` values:
    `sqrt(-2 ln u1) * (cos(2 pi u2), sin(2 pi u2))`.
    """
    half = (size + 1) // 2
    uniform = secure_uniform(2 * half)
    radius = np.sqrt(-2.0 * np.log(uniform[:half]))
    angle = (2.0 * math.pi) * uniform[half:]
    out = np.empty(2 * half, dtype=np.float64)
    np.multiply(radius, np.cos(angle), out=out[:half])
    np.multiply(radius, np.sin(angle), out=out[half:])
    return out[:size]


def _numpy_dtype(name: str) -> np.dtype:
    try:
        return np.dtype(name)
    except TypeError:
        return np.dtype(object)


class NoiseModule(OptiModule, register=False):
    """Add noise sampled independently for each gradient coordinate.

    Parameters
    ----------
    safe_mode:
        Whether to sample from the operating system's cryptographically
        secure generator (`os.urandom`), as differential privacy requires.
        Otherwise, use numpy's (fast, predictable) default generator.
    seed:
        Seed of numpy's generator when `safe_mode` is False (ignored
        otherwise). With a seed, noise is reproducible; the generator's
        position is part of `get_state`.
    """

    def __init__(self, safe_mode: bool = True, seed: int | None = None) -> None:
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise TypeError(f"'seed' must be an int or None, not {seed!r}.")
        self.safe_mode = bool(safe_mode)
        self.seed = seed
        self._rng = None if self.safe_mode else np.random.default_rng(seed)

    @abstractmethod
    def _sample_noise(self, shape: tuple[int, ...]) -> np.ndarray:
        """Sample a float64 noise array of a given shape."""

    def run(self, gradients: Vector) -> Vector:
        dtypes = gradients.dtypes()
        for key, dtype in dtypes.items():
            if not np.issubdtype(_numpy_dtype(dtype), np.floating):
                raise TypeError(
                    f"{type(self).__name__} cannot add noise to '{key}' of dtype {dtype}."
                )
        noise = {
            key: self._sample_noise(shape).astype(dtypes[key], copy=False)
            for key, shape in gradients.shapes().items()
        }
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", ".*densif.*")  # sparse tf gradients
            return gradients + NumpyVector(noise)

    def get_state(self) -> dict[str, Any]:
        return {"rng": None if self._rng is None else self._rng.bit_generator.state}

    def set_state(self, state: dict[str, Any]) -> None:
        (rng_state,) = required_state(state, ("rng",), type(self).__name__)
        if rng_state is None or self._rng is None:
            return
        if not isinstance(rng_state, dict):
            raise TypeError(f"{type(self).__name__}: state 'rng' must be a dict or None.")
        self._rng.bit_generator.state = rng_state


class GaussianNoiseModule(NoiseModule):
    """Add centered Gaussian noise of standard deviation `std` (>= 0) to gradients.

        out = g + N(0, std**2 I)

    In safe mode, noise comes from `secure_standard_normal`; otherwise
    from `numpy.random.default_rng(seed).normal` (same draws as declearn's
    module for the same seed). `safe_mode` and `seed`: see `NoiseModule`.
    """

    name: ClassVar[str] = "gaussian-noise"

    def __init__(self, std: float = 1.0, safe_mode: bool = True, seed: int | None = None) -> None:
        self.std = check_positive(std, "std", strict=False)
        super().__init__(safe_mode=safe_mode, seed=seed)

    def _sample_noise(self, shape: tuple[int, ...]) -> np.ndarray:
        if self._rng is None:
            noise = secure_standard_normal(math.prod(shape)).reshape(shape)
            noise *= self.std
            return noise
        # Same draws as `normal(scale=std)` (which computes 0.0 + std * z), but faster.
        noise = self._rng.standard_normal(size=shape)
        noise *= self.std
        return noise  # type: ignore[no-any-return]

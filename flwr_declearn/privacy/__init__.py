"""Differential-privacy accounting (optional extra `dp`: Google's `dp-accounting`).

- `PrivacyAccountant`: (epsilon, delta) spent by Poisson-subsampled Gaussian
  steps (DP-SGD on clients, client-level DP on the server), through Renyi DP.
- `noise_multiplier_of`: the noise multiplier of a DP-SGD step whose noise is
  added to the mean of clipped sample gradients.

`dp_accounting` is imported only when an epsilon is computed.
"""

from flwr_declearn.privacy._accountant import PrivacyAccountant, noise_multiplier_of

__all__ = ["PrivacyAccountant", "noise_multiplier_of"]

"""Former home of the optimizer's kernels; `zeros_like` now lives in `_arrays.py`.

Kept only for `flower/client.py`'s import; remove once it imports from `_arrays`.
"""

from flwr_declearn.optimizer._arrays import zeros_like

__all__ = ["zeros_like"]

"""Shim: declearn's `declearn.optimizer.schedulers` re-exporting flwr_declearn."""

from declearn._shim import reexport

__getattr__ = reexport(__name__, globals(), "flwr_declearn.optimizer.schedulers")

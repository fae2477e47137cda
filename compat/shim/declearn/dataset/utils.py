"""Shim: declearn's `declearn.dataset.utils` re-exporting flwr_declearn."""

from declearn._shim import reexport

__getattr__ = reexport(__name__, globals(), "flwr_declearn.data.utils", "flwr_declearn.data")

"""Shim: declearn's `declearn.data_info` re-exporting flwr_declearn."""

from declearn._shim import reexport

__getattr__ = reexport(__name__, globals(), "flwr_declearn.data.data_info", "flwr_declearn.data")

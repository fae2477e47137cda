"""Shim: declearn's `declearn.model.haiku.utils` re-exporting flwr_declearn."""

from declearn._shim import reexport

__getattr__ = reexport(
    __name__, globals(), "flwr_declearn.model.haiku.utils", "flwr_declearn.model.haiku"
)

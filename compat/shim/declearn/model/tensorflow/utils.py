"""Shim: declearn's `declearn.model.tensorflow.utils` re-exporting flwr_declearn."""

from declearn._shim import reexport

__getattr__ = reexport(
    __name__, globals(), "flwr_declearn.model.tensorflow.utils", "flwr_declearn.model.tensorflow"
)

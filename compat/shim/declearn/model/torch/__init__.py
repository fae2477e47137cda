"""Shim: declearn's `declearn.model.torch` re-exporting flwr_declearn."""

from declearn._shim import reexport

__getattr__ = reexport(
    __name__,
    globals(),
    "flwr_declearn.model.torch",
    elsewhere={"TorchOptiModule": "flwr_declearn.optimizer.modules"},
)

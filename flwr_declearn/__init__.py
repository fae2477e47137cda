"""flwr_declearn: declearn-style modular federated optimization for Flower.

Framework-specific parts (`flwr_declearn.model.torch`, `.tensorflow`, `.haiku`)
and the Flower layer (`flwr_declearn.flower`) are imported on demand.
"""

from flwr_declearn import data, model, utils

__version__ = "0.1.0"

__all__ = ["__version__", "data", "model", "utils"]

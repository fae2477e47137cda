"""Numpy backend: the framework-neutral `NumpyVector`."""

from flwr_declearn.model.numpy._vector import NumpyVector

__all__ = ["NumpyVector"]

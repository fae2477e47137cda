"""Models and Vectors: `api` plus one subpackage per framework, imported lazily.

`flwr_declearn.model.torch`, `.tensorflow` and `.haiku` need their framework's
extra; importing one without it raises an ImportError naming the extra.
"""

from flwr_declearn.model import api, numpy

__all__ = ["api", "numpy"]

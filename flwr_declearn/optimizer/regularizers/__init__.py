"""Loss-regularization plug-ins (registry group "Regularizer").

`FedProxRegularizer` ("fedprox"), `LassoRegularizer` ("lasso"),
`RidgeRegularizer` ("ridge").
"""

from flwr_declearn.optimizer.regularizers._api import Regularizer
from flwr_declearn.optimizer.regularizers._base import (
    FedProxRegularizer,
    LassoRegularizer,
    RidgeRegularizer,
)

__all__ = ["FedProxRegularizer", "LassoRegularizer", "Regularizer", "RidgeRegularizer"]

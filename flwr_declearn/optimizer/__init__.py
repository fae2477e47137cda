"""Framework-agnostic optimizers built from plug-ins, declearn-compatible.

* `Optimizer`: gradient descent made of regularizers, modules and rate schedulers.
* `SupportsUpdates`: what an Optimizer needs of a model (weights in, updates out).
* `modules`: gradient transformations (Adam, momentum, clipping, noise, SCAFFOLD...).
* `regularizers`: loss-regularization terms (FedProx, Lasso, Ridge).
* `schedulers`: learning / weight-decay rate schedules.
* `PerClientAuxVar`, `split_server_aux_var`, `merge_client_aux_var`: routing of
  auxiliary variables between a server and its clients.

Names, arguments and configs follow declearn 2.9.1, so that declearn
Optimizer configs build an equivalent `Optimizer` here.
"""

from flwr_declearn.optimizer import modules, regularizers, schedulers
from flwr_declearn.optimizer._aux import (
    PerClientAuxVar,
    merge_client_aux_var,
    split_server_aux_var,
)
from flwr_declearn.optimizer._optimizer import Optimizer, SupportsUpdates
from flwr_declearn.optimizer.modules import OptiModule
from flwr_declearn.optimizer.regularizers import Regularizer
from flwr_declearn.optimizer.schedulers import Scheduler
from flwr_declearn.utils import access_types_mapping

__all__ = [
    "OptiModule",
    "Optimizer",
    "PerClientAuxVar",
    "Regularizer",
    "Scheduler",
    "SupportsUpdates",
    "list_optim_modules",
    "list_optim_regularizers",
    "list_rate_schedulers",
    "merge_client_aux_var",
    "modules",
    "regularizers",
    "schedulers",
    "split_server_aux_var",
]


def list_optim_modules() -> dict[str, type[OptiModule]]:
    """Return the registered OptiModule types, by name."""
    return access_types_mapping("OptiModule")


def list_optim_regularizers() -> dict[str, type[Regularizer]]:
    """Return the registered Regularizer types, by name."""
    return access_types_mapping("Regularizer")


def list_rate_schedulers() -> dict[str, type[Scheduler]]:
    """Return the registered Scheduler types, by name."""
    return access_types_mapping("Scheduler")

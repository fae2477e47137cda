"""Time-based schedulers for learning and weight-decay rates (registry group "Scheduler").

Decay: `ExponentialDecay` ("exponential-decay"), `InverseScaling`
("inverse-scaling"), `LinearDecay` ("linear-decay"), `PiecewiseDecay`
("piecewise-decay"), `PolynomialDecay` ("polynomial-decay"),
`CosineAnnealing` ("cosine-annealing").
Cyclic: `CosineAnnealingWarmRestarts` ("cosine-annealing-warm-restarts"),
`CyclicTriangular` ("cyclic-triangular"), `CyclicExpRange` ("cyclic-exp-range").
Warmup: `Warmup` ("warmup", over steps), `WarmupRounds` ("warmup-rounds").
"""

from flwr_declearn.optimizer.schedulers._api import ConstantScheduler, Scheduler
from flwr_declearn.optimizer.schedulers._cosine import CosineAnnealing, CosineAnnealingWarmRestarts
from flwr_declearn.optimizer.schedulers._cyclic import CyclicExpRange, CyclicTriangular
from flwr_declearn.optimizer.schedulers._decay import (
    ExponentialDecay,
    InverseScaling,
    LinearDecay,
    PiecewiseDecay,
    PolynomialDecay,
)
from flwr_declearn.optimizer.schedulers._warmup import Warmup, WarmupRounds

__all__ = [
    "ConstantScheduler",
    "CosineAnnealing",
    "CosineAnnealingWarmRestarts",
    "CyclicExpRange",
    "CyclicTriangular",
    "ExponentialDecay",
    "InverseScaling",
    "LinearDecay",
    "PiecewiseDecay",
    "PolynomialDecay",
    "Scheduler",
    "Warmup",
    "WarmupRounds",
]

"""Plug-in gradients-transformation modules (registry group "OptiModule").

Adaptive step sizes: `AdaGradModule` ("adagrad"), `RMSPropModule` ("rmsprop"),
`AdamModule` ("adam"), `YogiModule` ("yogi").
Momentum: `MomentumModule` ("momentum"), `EWMAModule` ("ewma"),
`YogiMomentumModule` ("yogi-momentum").
Clipping: `L2Clipping` ("l2-clipping"), `L2GlobalClipping` ("l2-global-clipping").
Noise: `GaussianNoiseModule` ("gaussian-noise").
SCAFFOLD: `ScaffoldClientModule` ("scaffold-client"), `ScaffoldServerModule`
("scaffold-server"), sharing the aux_name "scaffold".
Native optimizers: `TorchOptiModule` ("torch-optim"), `TensorflowOptiModule`
("tensorflow-optim").
"""

from flwr_declearn.optimizer.modules._adaptive import (
    AdaGradModule,
    AdamModule,
    RMSPropModule,
    YogiModule,
)
from flwr_declearn.optimizer.modules._api import OptiModule
from flwr_declearn.optimizer.modules._clipping import L2Clipping, L2GlobalClipping
from flwr_declearn.optimizer.modules._momentum import (
    EWMAModule,
    MomentumModule,
    YogiMomentumModule,
)
from flwr_declearn.optimizer.modules._native import TensorflowOptiModule, TorchOptiModule
from flwr_declearn.optimizer.modules._noise import (
    GaussianNoiseModule,
    NoiseModule,
    secure_standard_normal,
    secure_uniform,
)
from flwr_declearn.optimizer.modules._scaffold import ScaffoldClientModule, ScaffoldServerModule

__all__ = [
    "AdaGradModule",
    "AdamModule",
    "EWMAModule",
    "GaussianNoiseModule",
    "L2Clipping",
    "L2GlobalClipping",
    "MomentumModule",
    "NoiseModule",
    "OptiModule",
    "RMSPropModule",
    "ScaffoldClientModule",
    "ScaffoldServerModule",
    "TensorflowOptiModule",
    "TorchOptiModule",
    "YogiModule",
    "YogiMomentumModule",
    "secure_standard_normal",
    "secure_uniform",
]

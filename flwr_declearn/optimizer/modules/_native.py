"""A framework's own optimizer used as an OptiModule: `TorchOptiModule`, `TensorflowOptiModule`.

Both run the native optimizer on zero-valued stand-in parameters with a
learning rate of 1, and return the opposite of the parameters it moved:
its update direction for the input gradients. The Optimizer holding the
module applies the learning rate and weight decay, as for any module. Hence
the native optimizer must not read the parameters' values (their weight
decay, EMA and the like are switched off or meaningless). Torch and Keras
framework code is imported when a module is built, not with this file.
"""

from __future__ import annotations

from typing import Any, ClassVar, Self

import numpy as np

from flwr_declearn.model.api import Vector
from flwr_declearn.optimizer._checks import required_state
from flwr_declearn.optimizer.modules._api import OptiModule

__all__ = ["TensorflowOptiModule", "TorchOptiModule"]


def _check_names(module: OptiModule, gradients: Vector, params: dict[str, Any]) -> None:
    if gradients.coefs.keys() != params.keys():
        raise KeyError(
            f"{type(module).__name__}: gradients named {sorted(gradients.coefs)} differ from "
            f"those of its first step {sorted(params)} (call `reset` to start anew)."
        )


class TorchOptiModule(OptiModule):
    """A `torch.optim.Optimizer` class run as an OptiModule (TorchVector gradients only).

    Parameters
    ----------
    optim_cls:
        The optimizer class, or its import path (e.g. "torch.optim.Adam").
    validate:
        Whether an import path must lie in the `torch` package. Paths to
        other packages need `validate=False` (declearn asks interactively
        instead); `from_config` always validates, as configs may come
        from the network.
    **kwargs:
        Keyword arguments of `optim_cls` ("lr" is forced to 1.0).
    """

    name: ClassVar[str] = "torch-optim"

    def __init__(self, optim_cls: type | str, validate: bool = True, **kwargs: Any) -> None:
        import torch

        if isinstance(optim_cls, str):
            module, _, attr = optim_cls.rpartition(".")
            if validate and module.split(".")[0] != "torch":
                raise RuntimeError(
                    f"TorchOptiModule imports only from torch with validate=True, not "
                    f"'{optim_cls}'; pass the class itself or validate=False to allow it."
                )
            try:
                optim_cls = getattr(__import__(module, fromlist=[attr]), attr)
            except (ImportError, AttributeError, ValueError) as exc:
                raise RuntimeError(f"TorchOptiModule cannot load '{optim_cls}': {exc}") from exc
        if not (isinstance(optim_cls, type) and issubclass(optim_cls, torch.optim.Optimizer)):
            raise TypeError(f"'optim_cls' must be a torch Optimizer class, not {optim_cls!r}.")
        self.optim_cls = optim_cls
        self.kwargs = {**kwargs, "lr": 1.0}
        self.reset()

    def reset(self) -> None:
        """Forget the optimizer's state and the gradients' names and shapes."""
        self._params: dict[str, Any] = {}
        self._optim: Any = None

    def _build(self, specs: dict[str, tuple[tuple[int, ...], Any, Any]]) -> None:
        import torch

        self._params = {
            key: torch.nn.Parameter(torch.zeros(shape, dtype=dtype, device=device))
            for key, (shape, dtype, device) in specs.items()
        }
        self._optim = self.optim_cls(list(self._params.values()), **self.kwargs)

    def run(self, gradients: Vector) -> Vector:
        import torch

        from flwr_declearn.model.torch import TorchVector

        if not isinstance(gradients, TorchVector):
            raise TypeError(f"TorchOptiModule takes TorchVector gradients, not {gradients!r}.")
        if self._optim is None:
            self._build({k: (g.shape, g.dtype, g.device) for k, g in gradients.coefs.items()})
        _check_names(self, gradients, self._params)
        for key, param in self._params.items():
            with torch.no_grad():
                param.zero_()
            param.grad = -gradients.coefs[key].to(param.device)  # w = 0 - step(-g) = step(g)
        self._optim.step()
        return TorchVector(
            {k: p.detach().clone().to(gradients.coefs[k].device) for k, p in self._params.items()}
        )

    def get_config(self) -> dict[str, Any]:
        path = f"{self.optim_cls.__module__}.{self.optim_cls.__name__}"
        return {"optim_cls": path, "kwargs": dict(self.kwargs)}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Self:
        if not isinstance(config, dict) or "optim_cls" not in config:
            raise TypeError("TorchOptiModule config needs an 'optim_cls' entry.")
        kwargs = {k: v for k, v in dict(config.get("kwargs") or {}).items() if k != "validate"}
        return cls(config["optim_cls"], validate=True, **kwargs)

    def get_state(self) -> dict[str, Any]:
        """`{"specs": {name: (shape, dtype)}, "state": [(index, {key: array or value})]}`."""
        specs = {
            k: (list(p.shape), str(p.dtype).removeprefix("torch.")) for k, p in self._params.items()
        }
        states = {} if self._optim is None else self._optim.state_dict()["state"]
        state = [
            (idx, {k: v.cpu().numpy().copy() if hasattr(v, "cpu") else v for k, v in group.items()})
            for idx, group in states.items()
        ]
        return {"specs": specs, "state": state}

    def set_state(self, state: dict[str, Any]) -> None:
        import torch

        specs, groups = required_state(state, ("specs", "state"), "TorchOptiModule")
        self.reset()
        if not groups:
            return
        self._build(
            {k: (tuple(shape), getattr(torch, dtype), "cpu") for k, (shape, dtype) in specs.items()}
        )
        sdict = self._optim.state_dict()
        sdict["state"] = {
            int(idx): {
                k: torch.from_numpy(np.asarray(v)) if isinstance(v, np.ndarray | list) else v
                for k, v in group.items()
            }
            for idx, group in groups
        }
        self._optim.load_state_dict(sdict)


class TensorflowOptiModule(OptiModule):
    """A Keras optimizer run as an OptiModule (TensorflowVector gradients only).

    Parameters
    ----------
    optim:
        A Keras optimizer, or its name or config (anything
        `keras.optimizers.get` takes); a copy is used, with learning rate
        1.0, no weight decay and no EMA.
    """

    name: ClassVar[str] = "tensorflow-optim"

    def __init__(self, optim: Any) -> None:
        from tensorflow import keras

        base = keras.optimizers.get(optim)
        config = base.get_config()
        config.update(weight_decay=None, use_ema=False)
        if "learning_rate" in config:
            config["learning_rate"] = 1.0
        self.optim = base.from_config(config)
        self._vars: dict[str, Any] = {}

    def reset(self) -> None:
        """Forget the optimizer's state and the gradients' names and shapes."""
        self._vars = {}
        self.optim = self.optim.from_config(self.optim.get_config())

    def _build(self, specs: dict[str, tuple[Any, Any]]) -> None:
        import tensorflow as tf

        self._vars = {k: tf.Variable(tf.zeros(s, d), name=k) for k, (s, d) in specs.items()}
        self.optim.build(list(self._vars.values()))

    def run(self, gradients: Vector) -> Vector:
        from flwr_declearn.model.tensorflow import TensorflowVector

        if not isinstance(gradients, TensorflowVector):
            raise TypeError(
                f"TensorflowOptiModule takes TensorflowVector gradients, not {gradients!r}."
            )
        if not self._vars:
            self._build({k: (g.shape, g.dtype) for k, g in gradients.coefs.items()})
        _check_names(self, gradients, self._vars)
        import tensorflow as tf

        for var in self._vars.values():
            var.assign(tf.zeros_like(var), read_value=False)
        self.optim.apply_gradients([(gradients.coefs[k], v) for k, v in self._vars.items()])
        return TensorflowVector({k: -v.value() for k, v in self._vars.items()})

    def get_config(self) -> dict[str, Any]:
        from tensorflow import keras

        return {"optim": keras.optimizers.serialize(self.optim)}

    def _optimizer_variables(self) -> list[Any]:
        return [getattr(v, "value", v) for v in self.optim.variables]

    def get_state(self) -> dict[str, Any]:
        """`{"specs": {name: (shape, dtype)}, "state": TensorflowVector of its variables}`."""
        from flwr_declearn.model.tensorflow import TensorflowVector

        specs = {k: (v.shape.as_list(), v.dtype.name) for k, v in self._vars.items()}
        values = {str(i): v.read_value() for i, v in enumerate(self._optimizer_variables())}
        return {"specs": specs, "state": TensorflowVector(values)}

    def set_state(self, state: dict[str, Any]) -> None:
        specs, values = required_state(state, ("specs", "state"), "TensorflowOptiModule")
        self.reset()
        self._build({k: (tuple(shape), dtype) for k, (shape, dtype) in specs.items()})
        variables = self._optimizer_variables()
        for i, var in enumerate(variables):
            var.assign(values.coefs[str(i)], read_value=False)

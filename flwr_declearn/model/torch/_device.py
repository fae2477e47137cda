"""`AutoDeviceModule`: the module `TorchModel.get_wrapped_model` returns (as declearn does)."""

from __future__ import annotations

from typing import Any

import torch

__all__ = ["AutoDeviceModule"]


class AutoDeviceModule(torch.nn.Module):
    """A torch module wrapped with its device: `forward` moves inputs there first.

    As declearn's wrapper of the same name, the user's module is `.module`; unlike
    it, weights keep the module's own names (`state_dict`, `named_parameters`
    and `load_state_dict` are the module's, without a "module." prefix), and
    other attributes are looked up on the module.
    """

    def __init__(self, module: torch.nn.Module, device: torch.device) -> None:
        super().__init__()
        self.module = module
        self.device = device

    def forward(self, *inputs: Any, **kwargs: Any) -> Any:
        moved = [x.to(self.device) if isinstance(x, torch.Tensor) else x for x in inputs]
        return self.module(*moved, **kwargs)

    def set_device(self, device: torch.device) -> None:
        """Move the module to `device` (in place)."""
        self.module.to(device)
        self.device = device

    def state_dict(self, *args: Any, **kwargs: Any) -> Any:
        return self.module.state_dict(*args, **kwargs)

    def load_state_dict(self, *args: Any, **kwargs: Any) -> Any:
        return self.module.load_state_dict(*args, **kwargs)

    def named_parameters(self, *args: Any, **kwargs: Any) -> Any:
        return self.module.named_parameters(*args, **kwargs)

    def named_buffers(self, *args: Any, **kwargs: Any) -> Any:
        return self.module.named_buffers(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self._modules["module"], name)

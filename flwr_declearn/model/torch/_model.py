"""Model wrapping a `torch.nn.Module` and a sample-wise loss."""

from __future__ import annotations

import copy
import io
from collections.abc import Callable
from typing import Any, Self

import numpy as np
import torch

from flwr_declearn.data import Batch
from flwr_declearn.model._clipping import clip_and_average
from flwr_declearn.model._model_utils import require_pickle_permission, split_batch
from flwr_declearn.model.api import Model
from flwr_declearn.model.torch._device import AutoDeviceModule
from flwr_declearn.model.torch._naming import canonical_names as build_canonical_names
from flwr_declearn.model.torch._naming import permute
from flwr_declearn.model.torch._samplewise import (
    TORCH_CLIP_OPS,
    LossFn,
    samplewise,
    samplewise_grads_fn,
)
from flwr_declearn.model.torch._vector import TorchVector, select_device
from flwr_declearn.utils import DevicePolicy, get_device_policy, register_type

__all__ = ["TorchModel"]

TorchBatch = tuple[tuple[torch.Tensor, ...], torch.Tensor | None, torch.Tensor | None]


class TorchModel(Model[TorchVector]):
    """Model wrapping a `torch.nn.Module` and its loss.

    Weights are named as in the module's `state_dict`. Trainable weights are
    the parameters with `requires_grad=True`; `get_weights()` also returns the
    frozen parameters and the persistent buffers (e.g. batch-norm statistics).

    Device placement: the module and the loss are moved to the device of the
    global `DevicePolicy` at instantiation (and by `update_device_policy`);
    batches are moved there; gradients and updates stay there.

    Inputs: numpy arrays or tensors. Floating-point inputs, targets and sample
    weights are cast to the dtype of the module's floating-point parameters.

    Parameters
    ----------
    model:
        The torch module; `model(*inputs)` returns predictions.
    loss:
        Callable `loss(y_pred, y_true)` returning sample-wise loss values (a
        tensor whose first axis is the batch one; other axes are averaged).
        A torch loss module with a `reduction` attribute is copied and set to
        `reduction="none"`.
    canonical_names:
        Exchange weights under canonical names and layouts (`"dense_0/kernel"`
        shaped `(in, out)`...), so that Keras, haiku and JAX clients of one
        architecture train together (see `flwr_declearn.model._canonical`);
        the module's `state_dict` names and layouts otherwise.
    """

    _vector_type = TorchVector

    def __init__(self, model: torch.nn.Module, loss: LossFn, canonical_names: bool = False) -> None:
        if not isinstance(model, torch.nn.Module):
            raise TypeError(f"'model' must be a torch.nn.Module, not {type(model).__name__}.")
        if not callable(loss):
            raise TypeError(f"'loss' must be callable, not {type(loss).__name__}.")
        if isinstance(loss, torch.nn.Module) and getattr(loss, "reduction", "none") != "none":
            loss = copy.copy(loss)
            loss.reduction = "none"  # type: ignore[assignment]
        super().__init__(model)
        self._model: torch.nn.Module = model
        self._loss_fn = loss
        self._params = list(model.named_parameters())
        self._dtype = next(
            (p.dtype for _, p in self._params if p.is_floating_point()), torch.get_default_dtype()
        )
        self._samplewise_fns: dict[bool, Callable[..., Any]] = {}
        self._canon = build_canonical_names(model) if canonical_names else None
        self._device = torch.device("cpu")
        self._wrapped: AutoDeviceModule | None = None
        self.update_device_policy()

    # -- properties and setup --------------------------------------------------------------------

    @property
    def device_policy(self) -> DevicePolicy:
        if self._device.type == "cuda":
            return DevicePolicy(gpu=True, idx=self._device.index)
        return DevicePolicy(gpu=False, idx=None)

    @property
    def required_data_info(self) -> set[str]:
        return set()

    def initialize(self, data_info: dict[str, Any]) -> None:
        """Do nothing: torch modules are built when instantiated."""

    def update_device_policy(self, policy: DevicePolicy | None = None) -> None:
        if policy is None:
            policy = get_device_policy()
        device = select_device(policy.gpu, policy.idx)
        self._model.to(device)  # in place: parameter objects are kept
        if isinstance(self._loss_fn, torch.nn.Module):
            self._loss_fn.to(device)
        self._device = device
        if self._wrapped is not None:
            self._wrapped.device = device

    def get_wrapped_model(self) -> AutoDeviceModule:
        """Return the module wrapped with its device (`.module` is the module itself).

        As in declearn, the wrapper moves inputs to the model's device; its
        `state_dict` and parameters are the module's (same names).
        """
        if self._wrapped is None:
            self._wrapped = AutoDeviceModule(self._model, self._device)
        return self._wrapped

    # -- config ----------------------------------------------------------------------------------

    def get_config(self, allow_bin: bool = False) -> dict[str, Any]:
        """Return a JSON-serializable config, holding the pickled module and loss.

        The pickled parts are for local persistence only: `from_config` loads them
        only with `allow_pickle=True`, and they must never be sent over the network.
        With `allow_bin` (declearn's argument) they are bytes rather than hex strings.

        Raises
        ------
        TypeError
            If the module or the loss cannot be pickled (e.g. a lambda).
        """
        return {
            "typekey": "TorchModel",
            "serialization": "pickle",
            "model": _torch_dump(self._model, "torch module", allow_bin),
            "loss": _torch_dump(self._loss_fn, "loss function", allow_bin),
            "canonical_names": self._canon is not None,
        }

    @classmethod
    def from_config(
        cls, config: dict[str, Any], allow_pickle: bool = False, allow_bin: bool = False
    ) -> Self:
        """Rebuild a TorchModel from `get_config`'s output (`allow_pickle=True` required).

        The module and loss are pickled, and unpickling runs arbitrary code:
        load only configs you stored yourself. `allow_bin` (declearn's) is
        ignored: bytes and hex strings are both read.

        Raises
        ------
        ValueError
            If `allow_pickle` is False.
        KeyError
            If the config lacks the "model" or "loss" entries.
        """
        require_pickle_permission("torch module and loss", allow_pickle)
        cls._require_config_entries(config, "model", "loss")
        policy = get_device_policy()
        device = select_device(policy.gpu, policy.idx)
        model = _torch_load(config["model"], device)
        loss = _torch_load(config["loss"], device)
        return cls(model, loss, canonical_names=bool(config.get("canonical_names", False)))

    # -- weights ---------------------------------------------------------------------------------

    def _trainable(self) -> list[tuple[str, torch.nn.Parameter]]:
        return [(name, param) for name, param in self._params if param.requires_grad]

    def get_weight_names(self, trainable: bool = False) -> list[str]:
        """Return the ordered names of the weights (only the trainable ones if `trainable`)."""
        return list(self._targets(trainable))

    def _targets(self, trainable: bool) -> dict[str, torch.Tensor]:
        """The weights (tensors, not copies) by exchanged name, in their exchanged layout."""
        if trainable:
            targets: dict[str, torch.Tensor] = dict(self._trainable())
        else:
            targets = self._model.state_dict(keep_vars=True)
        if self._canon is not None:
            targets = self._canon.to_canonical(targets, permute)
        return targets

    def get_weights(self, trainable: bool = False) -> TorchVector:
        targets = self._targets(trainable)
        return TorchVector(
            {n: t.detach().clone(memory_format=torch.contiguous_format) for n, t in targets.items()}
        )

    def set_weights(self, weights: TorchVector, trainable: bool = False) -> None:
        targets = self._targets(trainable)
        context = "the trainable weights" if trainable else "the weights"
        self._check_vector(weights, TorchVector(targets), context)
        with torch.no_grad():
            for name, tensor in targets.items():
                tensor.copy_(weights.coefs[name])  # (a view of the weight in canonical layout)

    # -- training --------------------------------------------------------------------------------

    def compute_batch_gradients(self, batch: Batch, max_norm: float | None = None) -> TorchVector:
        inputs, y_true, s_wght = self._unpack_batch(batch)
        if not self._model.training:
            self._model.train()
        max_norm = self._check_max_norm(max_norm)
        if max_norm is not None:
            return self._compute_clipped_gradients(inputs, y_true, s_wght, max_norm)
        trainable = self._trainable()
        for _, param in trainable:
            param.grad = None
        s_loss = samplewise(self._loss_fn(self._model(*inputs), y_true))
        loss = (s_loss * s_wght).mean() if s_wght is not None else s_loss.mean()
        loss.backward()
        self._loss_history.append(loss.detach())
        grads = {}
        for name, param in trainable:
            grad = param.grad
            param.grad = None  # hand the tensor over: no later backward writes into it
            grads[name] = torch.zeros_like(param) if grad is None else grad
        if self._canon is not None:
            grads = self._canon.to_canonical(grads, permute)
        return TorchVector(grads)

    def _compute_clipped_gradients(
        self,
        inputs: tuple[torch.Tensor, ...],
        y_true: torch.Tensor | None,
        s_wght: torch.Tensor | None,
        max_norm: float,
    ) -> TorchVector:
        """Average sample-wise gradients, each clipped to an L2 norm of `max_norm`."""
        trainable = dict(self._trainable())
        frozen = {n: p.detach() for n, p in self._params if not p.requires_grad} | dict(
            self._model.named_buffers()
        )
        params = {n: p.detach() for n, p in trainable.items()}
        with_y = y_true is not None
        grads_fn = self._samplewise_fns.get(with_y)
        if grads_fn is None:
            grads_fn = samplewise_grads_fn(self._model, self._loss_fn, with_y)
            self._samplewise_fns[with_y] = grads_fn
        try:
            grads, s_loss = grads_fn(params, frozen, inputs, y_true)
        except (RuntimeError, ValueError) as exc:
            raise type(exc)(
                "Sample-wise gradients run the model on one sample at a time (torch.func.vmap): "
                "layers that mix samples or update state in place, such as batch normalization "
                f"in training mode, do not support 'max_norm'. Original error: {exc}"
            ) from exc
        with torch.no_grad():
            out, loss = clip_and_average(grads, s_loss, s_wght, max_norm, TORCH_CLIP_OPS)
            self._loss_history.append(loss)
        if self._canon is not None:
            out = self._canon.to_canonical(out, permute)
        return TorchVector(out)

    def apply_updates(self, updates: TorchVector, scale: float = 1.0) -> None:
        """Add `scale * updates` to the trainable weights, in place.

        `scale` lets an optimizer apply `-lrate * direction` in the same pass.
        """
        if self._canon is not None:
            targets = self._targets(trainable=True)
            self._check_vector(updates, TorchVector(targets), "the updates")
            coefs = self._canon.to_native({name: updates.coefs[name] for name in targets}, permute)
            trainable = self._trainable()
        else:
            trainable = self._trainable()
            self._check_vector(updates, TorchVector(dict(trainable)), "the updates")
            coefs = updates.coefs
        checked = [coefs[name] for name, _ in trainable]
        params: list[torch.Tensor] = []
        values: list[torch.Tensor] = []
        for (_, param), value in zip(trainable, checked, strict=True):
            if value.device != param.device:
                value = value.to(param.device)
            params.append(param)
            values.append(value)
        with torch.no_grad():
            if scale == 1.0:
                torch._foreach_add_(params, values)  # type: ignore[arg-type]
            else:
                torch._foreach_add_(params, values, alpha=scale)  # type: ignore[arg-type]

    # -- inference -------------------------------------------------------------------------------

    def _predict(self, inputs: Any) -> torch.Tensor:
        inputs, _, _ = self._unpack_batch((inputs, None, None))
        training = self._model.training
        self._model.eval()
        try:
            with torch.inference_mode():
                return self._model(*inputs)  # type: ignore[no-any-return]
        finally:
            self._model.train(training)

    def loss_function(self, y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            s_loss = self._loss_fn(self._tensor(y_pred), self._tensor(y_true))
            return samplewise(s_loss).cpu().numpy()

    # -- internals -------------------------------------------------------------------------------

    def _tensor(self, data: Any) -> torch.Tensor:
        """Turn an array into a tensor on the model's device (zero-copy where possible)."""
        if isinstance(data, torch.Tensor):
            tensor = data
        else:
            array = np.asarray(data)
            if not array.flags.writeable:
                array = array.copy()
            tensor = torch.from_numpy(array)
        if tensor.is_floating_point() and tensor.dtype != self._dtype:
            tensor = tensor.to(self._dtype)
        if tensor.device != self._device:
            tensor = tensor.to(self._device, non_blocking=True)
        return tensor

    def _unpack_batch(self, batch: Batch) -> TorchBatch:
        inputs, y_true, s_wght = split_batch(batch)
        if not isinstance(inputs, list | tuple):
            inputs = (inputs,)
        return (
            tuple(self._tensor(x) for x in inputs),
            None if y_true is None else self._tensor(y_true),
            None if s_wght is None else self._tensor(s_wght),
        )


register_type(TorchModel, name="TorchModel", group="Model")


def _torch_dump(obj: Any, what: str, as_bytes: bool = False) -> str | bytes:
    with io.BytesIO() as buffer:
        try:
            torch.save(obj, buffer)
        except (AttributeError, TypeError, RuntimeError) as exc:
            raise TypeError(
                f"Cannot serialize the {what} with pickle ({exc}); define it at module level "
                "so that it is importable."
            ) from exc
        return buffer.getvalue() if as_bytes else buffer.getvalue().hex()


def _torch_load(data: str | bytes, device: torch.device) -> Any:
    raw = data if isinstance(data, bytes) else bytes.fromhex(data)
    with io.BytesIO(raw) as buffer:
        return torch.load(buffer, map_location=device, weights_only=False)

"""`ILQLModel`: a TorchModel whose loss is the ILQL loss, with Polyak-averaged target heads."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Self

import numpy as np
import torch

from flwr_declearn.data import Batch
from flwr_declearn.ilql._batch import ILQLBatch
from flwr_declearn.ilql._config import GPTConfig, ILQLConfig
from flwr_declearn.ilql._decode import decode
from flwr_declearn.ilql._loss import ILQLLoss, ilql_loss
from flwr_declearn.ilql._network import ILQLNetwork
from flwr_declearn.model._model_utils import split_batch
from flwr_declearn.model.torch import TorchModel, TorchVector
from flwr_declearn.utils import register_type

__all__ = ["ILQLModel", "episode_losses"]


def episode_losses(y_pred: torch.Tensor, y_true: torch.Tensor | None) -> torch.Tensor:
    """The TorchModel loss of an `ILQLNetwork`: its output already is the per-episode loss."""
    return y_pred


class ILQLModel(TorchModel):
    """ILQL agent for the Model API: any flwr_declearn Optimizer trains it.

    The wrapped `ILQLNetwork` maps a packed batch of episodes (rows of an
    `InMemoryDataset`, see `ILQLBatch.pack`) to per-episode ILQL losses, so
    that `compute_batch_gradients` differentiates the ILQL loss averaged over
    episodes. Trainable weights: the trunk, policy, V and Q heads.

    Target Q heads are non-trainable weights (`requires_grad=False`): after
    every local step (`apply_updates`, or a fused step) they take one Polyak
    step towards the online Q heads (`ILQLNetwork.soft_update`, rate
    `config.alpha`). They travel with the other weights: Flower strategies
    average them across clients like any non-trainable weight (the server
    Optimizer only updates trainable ones). The average of the clients'
    targets is the Polyak average of the average of their online heads'
    trajectories (the update is linear), so the global targets track the
    global online heads as a centralised run's would.

    Parameters
    ----------
    network:
        An `ILQLNetwork`, or its `net_config` (then `config` and `seed` apply).
    config:
        ILQL hyper-parameters when `network` is a config.
    seed:
        Seed of the initial weights when `network` is a config.
    """

    def __init__(
        self,
        network: ILQLNetwork | GPTConfig | Mapping[str, Any],
        config: ILQLConfig | Mapping[str, Any] | None = None,
        seed: int | None = None,
    ) -> None:
        if not isinstance(network, ILQLNetwork):
            with torch.random.fork_rng(devices=[]):
                if seed is not None:
                    torch.manual_seed(seed)
                network = ILQLNetwork(network, config)
        elif config is not None or seed is not None:
            raise ValueError("Pass `config` and `seed` only with a net_config, not a network.")
        super().__init__(network, episode_losses)
        self.network = network

    # -- config (JSON only: no pickle) -----------------------------------------------------------

    def get_config(self, allow_bin: bool = False) -> dict[str, Any]:
        """Return `{"net_config": ..., "ilql_config": ...}` (JSON; weights are not included).

        `allow_bin` (declearn's argument) changes nothing: the config holds no binary part.
        """
        return {
            "net_config": self.network.net_config.to_dict(),
            "ilql_config": self.network.config.to_dict(),
        }

    @classmethod
    def from_config(
        cls,
        config: dict[str, Any],
        allow_pickle: bool = False,
        allow_bin: bool = False,
        **kwargs: Any,
    ) -> Self:
        """Build a model (fresh weights) from `get_config`'s output; no pickle is involved."""
        for key in ("net_config", "ilql_config"):
            if key not in config:
                raise KeyError(f"ILQLModel config lacks the '{key}' entry.")
        return cls(GPTConfig.from_dict(config["net_config"]), config["ilql_config"])

    # -- training --------------------------------------------------------------------------------

    def compute_batch_gradients(self, batch: Batch, max_norm: float | None = None) -> TorchVector:
        if max_norm is not None:
            raise ValueError(
                "ILQLModel does not support sample-wise gradient clipping ('max_norm' / "
                "TrainingConfig.sclip): its network reads each packed batch's shapes from the "
                "rows' header, which per-sample torch.func.vmap calls cannot do."
            )
        return super().compute_batch_gradients(batch)

    def apply_updates(self, updates: TorchVector, scale: float = 1.0) -> None:
        """Add `scale * updates` to the trainable weights, then Polyak-step the target heads."""
        super().apply_updates(updates, scale)
        self.network.soft_update()

    def run_fused_step(
        self,
        batch: Batch,
        max_norm: float | None,
        rule: Callable[[dict[str, Any], dict[str, Any], Any], tuple[dict[str, Any], Any]],
        args: Any,
    ) -> Any:
        outputs = super().run_fused_step(batch, max_norm, rule, args)
        self.network.soft_update()
        return outputs

    # -- evaluation ------------------------------------------------------------------------------

    def unpack_batch(self, batch: Batch | np.ndarray | ILQLBatch) -> ILQLBatch:
        """Return an `ILQLBatch` on the model's device from packed rows (or a batch)."""
        if isinstance(batch, ILQLBatch):
            return batch.to(self._device, self._dtype)
        if isinstance(batch, tuple):
            batch = split_batch(batch)[0]
        return ILQLBatch.unpack(self._tensor(batch))

    def loss_terms(self, batch: Batch | np.ndarray | ILQLBatch) -> ILQLLoss:
        """Every ILQL loss term on `batch` (eval mode, no gradients), batch-averaged."""
        data = self.unpack_batch(batch)
        training = self.network.training
        self.network.eval()
        try:
            with torch.no_grad():
                return ilql_loss(self.network, data, reduction="token")
        finally:
            self.network.train(training)

    def compute_batch_predictions(
        self, batch: Batch
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """Return `(zeros, per-episode ILQL loss, s_wght)`: the loss is the prediction."""
        inputs, _, s_wght = split_batch(batch)
        data = self.unpack_batch(inputs)
        training = self.network.training
        self.network.eval()
        try:
            with torch.no_grad():
                losses = ilql_loss(self.network, data, reduction="episode").total
        finally:
            self.network.train(training)
        values = losses.cpu().numpy()
        return np.zeros_like(values), values, None if s_wght is None else np.asarray(s_wght)

    def loss_function(self, y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
        return np.asarray(y_pred, dtype=np.float64).reshape(-1)

    # -- decoding --------------------------------------------------------------------------------

    def decode(self, prompts: Any, max_new_tokens: int, **kwargs: Any) -> np.ndarray:
        """Decode from `prompts` (array-like `(B, P)`); see `flwr_declearn.ilql.decode`."""
        tokens = torch.as_tensor(np.asarray(prompts), dtype=torch.long)
        out = decode(self.network, tokens, max_new_tokens, **kwargs)
        return out.cpu().numpy()  # type: ignore[no-any-return]


register_type(ILQLModel, name="ILQLModel", group="Model")

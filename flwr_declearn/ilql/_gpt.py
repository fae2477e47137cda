"""A compact causal GPT trunk (pre-LayerNorm, learned positions) with a KV cache.

Attention is causal in every pass: training, a prompt pass and cached decoding
(a query at absolute position p sees the keys at positions <= p that the
attention mask keeps). Positions count the kept tokens, so left-padded prompts
get the same positions as unpadded ones.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from flwr_declearn.ilql._config import GPTConfig

__all__ = ["GPT", "KVCache"]

KeysValues = tuple[Tensor, Tensor]
"""One layer's attention keys and values, `(batch, n_head, length, head_dim)` each."""


@dataclasses.dataclass
class KVCache:
    """Keys and values of past tokens, per layer, with their padding mask.

    Attributes
    ----------
    keys, values:
        Per layer, `(batch, n_head, past_len, head_dim)` tensors.
    mask:
        `(batch, past_len)` bool: which past tokens may be attended to.
    positions:
        `(batch,)` long: position of each row's next token.
    """

    keys: list[torch.Tensor]
    values: list[torch.Tensor]
    mask: torch.Tensor
    positions: torch.Tensor

    def __len__(self) -> int:
        return int(self.mask.shape[1])


def _activation(name: str) -> nn.Module:
    return {"GELU": nn.GELU, "ReLU": nn.ReLU, "SiLU": nn.SiLU, "Tanh": nn.Tanh}[name]()


class _SelfAttention(nn.Module):
    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.n_head = cfg.n_head
        self.qkv = nn.Linear(cfg.n_embd, 3 * cfg.n_embd, bias=cfg.bias)
        self.proj = nn.Linear(cfg.n_embd, cfg.n_embd, bias=cfg.bias)
        self.dropout = cfg.dropout
        self.resid_drop = nn.Dropout(cfg.dropout)

    def forward(
        self, x: Tensor, allowed: Tensor, past: KeysValues | None
    ) -> tuple[Tensor, KeysValues]:
        batch, length, width = x.shape
        q, k, v = self.qkv(x).split(width, dim=2)
        shape = (batch, length, self.n_head, width // self.n_head)
        q, k, v = (t.view(shape).transpose(1, 2) for t in (q, k, v))
        if past is not None:
            k = torch.cat([past[0], k], dim=2)
            v = torch.cat([past[1], v], dim=2)
        out = F.scaled_dot_product_attention(
            q,
            k,
            v,
            attn_mask=allowed[:, None],
            dropout_p=self.dropout if self.training else 0.0,
        )
        out = out.transpose(1, 2).reshape(batch, length, width)
        return self.resid_drop(self.proj(out)), (k, v)


class _Block(nn.Module):
    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(cfg.n_embd, eps=cfg.layer_norm_eps, bias=cfg.bias)
        self.attn = _SelfAttention(cfg)
        self.ln_2 = nn.LayerNorm(cfg.n_embd, eps=cfg.layer_norm_eps, bias=cfg.bias)
        self.mlp = nn.Sequential(
            nn.Linear(cfg.n_embd, cfg.hidden_ff, bias=cfg.bias),
            _activation(cfg.activation),
            nn.Linear(cfg.hidden_ff, cfg.n_embd, bias=cfg.bias),
            nn.Dropout(cfg.dropout),
        )

    def forward(
        self, x: Tensor, allowed: Tensor, past: KeysValues | None
    ) -> tuple[Tensor, KeysValues]:
        attn, present = self.attn(self.ln_1(x), allowed, past)
        x = x + attn
        return x + self.mlp(self.ln_2(x)), present


class GPT(nn.Module):
    """Causal transformer trunk returning the last layer's (normalized) hidden states."""

    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.config = cfg
        self.wte = nn.Embedding(cfg.vocab_size, cfg.n_embd)
        self.wpe = nn.Embedding(cfg.block_size, cfg.n_embd)
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList([_Block(cfg) for _ in range(cfg.n_layer)])
        self.ln_f = nn.LayerNorm(cfg.n_embd, eps=cfg.layer_norm_eps, bias=cfg.bias)
        self.apply(_init_weights)
        for name, param in self.named_parameters():
            if name.endswith("proj.weight") or name.endswith("mlp.2.weight"):
                nn.init.normal_(param, mean=0.0, std=0.02 / (2 * cfg.n_layer) ** 0.5)

    def forward(
        self,
        tokens: torch.Tensor,
        attn_mask: torch.Tensor | None = None,
        cache: KVCache | None = None,
        use_cache: bool = False,
    ) -> tuple[torch.Tensor, KVCache | None]:
        """Return `(hidden states (batch, len, n_embd), updated cache or None)`.

        Parameters
        ----------
        tokens:
            `(batch, len)` token ids (after the cached ones, if `cache`).
        attn_mask:
            `(batch, len)` mask of the real tokens (1) versus padding (0).
        cache:
            Keys and values of the preceding tokens, from an earlier call.
        use_cache:
            Whether to return the cache extended with these tokens.
        """
        batch, length = tokens.shape
        device = tokens.device
        mask = (
            torch.ones(batch, length, dtype=torch.bool, device=device)
            if attn_mask is None
            else attn_mask.to(device=device, dtype=torch.bool)
        )
        start = (
            torch.zeros(batch, dtype=torch.long, device=device)
            if cache is None
            else cache.positions
        )
        positions = start[:, None] + torch.cumsum(mask.long(), dim=1) - 1
        positions = positions.clamp(min=0)
        past_len = 0 if cache is None else len(cache)
        if int(positions.max()) >= self.config.block_size:
            raise ValueError(
                f"Sequence longer than block_size ({self.config.block_size} positions)."
            )
        keys_mask = mask if cache is None else torch.cat([cache.mask, mask], dim=1)
        # Query i (absolute index past_len + i) sees key j if j <= past_len + i and the key is
        # kept; a query always sees itself, so that padded queries do not yield NaNs.
        q_idx = torch.arange(length, device=device)[:, None] + past_len
        k_idx = torch.arange(past_len + length, device=device)[None, :]
        causal = k_idx <= q_idx
        allowed = (causal[None] & keys_mask[:, None, :]) | (k_idx == q_idx)[None]
        x = self.drop(self.wte(tokens) + self.wpe(positions))
        presents: list[KeysValues] = []
        for idx, block in enumerate(self.blocks):
            past = None if cache is None else (cache.keys[idx], cache.values[idx])
            x, present = block(x, allowed, past)
            presents.append(present)
        hidden = self.ln_f(x)
        if not use_cache:
            return hidden, None
        new_cache = KVCache(
            keys=[k for k, _ in presents],
            values=[v for _, v in presents],
            mask=keys_mask,
            positions=start + mask.long().sum(dim=1),
        )
        return hidden, new_cache


def _init_weights(module: nn.Module) -> None:
    if isinstance(module, nn.Linear):
        nn.init.normal_(module.weight, mean=0.0, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.Embedding):
        nn.init.normal_(module.weight, mean=0.0, std=0.02)

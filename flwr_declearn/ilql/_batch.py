"""Offline token episodes, their padded batch format and its packing into one array.

An episode is a token sequence in which some tokens are actions (emitted by the
agent) and the others are observations (prompt, environment text). Action k,
at token position t_k, is chosen in the state summarized by the hidden state at
t_k - 1; its reward is `rewards[k]`. The state after the last action is the
last token's hidden state; it is terminal when the episode is `done`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
import torch

__all__ = ["Episode", "ILQLBatch", "collate"]

_HEADER = 2  # packed rows start with (seq_len, n_actions)


@dataclasses.dataclass(frozen=True)
class Episode:
    """One offline episode.

    Attributes
    ----------
    tokens:
        Token ids of the whole episode.
    action_mask:
        Per token, whether it is an action (the first token cannot be one).
    rewards:
        One reward per action, in order.
    done:
        Whether the episode ended (True) or was truncated (its last state is
        then bootstrapped with V).
    """

    tokens: Sequence[int]
    action_mask: Sequence[bool]
    rewards: Sequence[float]
    done: bool = True

    def __post_init__(self) -> None:
        n_tokens = len(self.tokens)
        if n_tokens < 2:
            raise ValueError("An episode needs at least 2 tokens (a state and an action).")
        if len(self.action_mask) != n_tokens:
            raise ValueError(
                f"action_mask has {len(self.action_mask)} entries for {n_tokens} tokens."
            )
        if self.action_mask[0]:
            raise ValueError("The first token cannot be an action: no state precedes it.")
        n_actions = int(sum(bool(flag) for flag in self.action_mask))
        if n_actions == 0:
            raise ValueError("An episode needs at least one action token.")
        if len(self.rewards) != n_actions:
            raise ValueError(f"{len(self.rewards)} rewards for {n_actions} actions.")
        if any(int(tok) < 0 for tok in self.tokens):
            raise ValueError("Token ids must be non-negative.")
        if not np.isfinite(np.asarray(self.rewards, dtype=np.float64)).all():
            raise ValueError("Rewards must be finite.")


@dataclasses.dataclass
class ILQLBatch:
    """A padded batch of episodes (B episodes, T tokens, A actions).

    Attributes
    ----------
    tokens:
        `(B, T)` long token ids, right-padded with 0.
    attn_mask:
        `(B, T)` float: 1 for real tokens, 0 for padding.
    state_idxs:
        `(B, A + 1)` long: token position of each action's state, then of the
        state after the last action (0 where padded).
    action_idxs:
        `(B, A)` long: token position whose hidden state chooses each action,
        i.e. the action's own position minus one (0 where padded).
    rewards:
        `(B, A)` float, 0 where padded.
    terminals:
        `(B, A + 1)` float: whether each state is terminal (1 after a finished
        episode's last action, and in padding).
    action_mask:
        `(B, A)` float: 1 for real actions, 0 for padding (a truncated
        episode's padding is not terminal, so terminals alone cannot tell).
    """

    tokens: torch.Tensor
    attn_mask: torch.Tensor
    state_idxs: torch.Tensor
    action_idxs: torch.Tensor
    rewards: torch.Tensor
    terminals: torch.Tensor
    action_mask: torch.Tensor

    @property
    def action_tokens(self) -> torch.Tensor:
        """`(B, A)` long: the token chosen by each action."""
        return torch.gather(self.tokens, 1, self.action_idxs + 1)

    def to(self, device: torch.device | str, dtype: torch.dtype | None = None) -> ILQLBatch:
        """Return the batch on `device`, floats cast to `dtype` if given."""

        def move(t: torch.Tensor) -> torch.Tensor:
            if t.is_floating_point() and dtype is not None:
                return t.to(device=device, dtype=dtype)
            return t.to(device=device)

        return ILQLBatch(*(move(t) for t in dataclasses.astuple(self)))

    def pack(self) -> np.ndarray:
        """Pack into one float32 `(B, 2 + 2T + 5A + 2)` array (see `unpack`).

        Each row is `[T, A, tokens, attn_mask, state_idxs, action_idxs,
        rewards, terminals, action_mask]`, so that an `InMemoryDataset` holds episodes and
        its batches feed `ILQLNetwork.forward`. Token ids must stay below 2**24.
        """
        batch, length = self.tokens.shape
        n_actions = self.action_idxs.shape[1]
        if int(self.tokens.max()) >= 2**24:
            raise ValueError("Token ids >= 2**24 cannot be packed in float32 exactly.")
        header = torch.tensor([length, n_actions], dtype=torch.float32).expand(batch, _HEADER)
        parts = [header, *(t.to(torch.float32).cpu() for t in dataclasses.astuple(self))]
        return torch.cat(parts, dim=1).numpy()

    @staticmethod
    def unpack(packed: torch.Tensor) -> ILQLBatch:
        """Invert `pack` (on the packed tensor's device).

        Raises
        ------
        ValueError
            If the rows' header and width disagree.
        """
        if packed.ndim != 2 or packed.shape[1] < _HEADER:
            raise ValueError(f"Packed ILQL batches are 2-d rows, not shape {tuple(packed.shape)}.")
        length, n_actions = (int(v) for v in packed[0, :_HEADER].tolist())
        width = _HEADER + 2 * length + 5 * n_actions + 2
        if length < 2 or n_actions < 1 or packed.shape[1] != width:
            raise ValueError(
                f"Packed ILQL rows have {packed.shape[1]} columns; their header "
                f"(T={length}, A={n_actions}) implies {width}."
            )
        sizes = [length, length, n_actions + 1, n_actions, n_actions, n_actions + 1, n_actions]
        parts = torch.split(packed[:, _HEADER:], sizes, dim=1)
        as_long = (0, 2, 3)
        tensors = [
            part.round().long() if idx in as_long else part for idx, part in enumerate(parts)
        ]
        return ILQLBatch(*tensors)


def collate(
    episodes: Sequence[Episode],
    max_len: int | None = None,
    max_actions: int | None = None,
) -> ILQLBatch:
    """Pad variable-length episodes into an `ILQLBatch`.

    Parameters
    ----------
    episodes:
        The episodes (at least one).
    max_len, max_actions:
        Pad to these sizes instead of the longest episode's (e.g. to give every
        batch of a dataset the same shapes).

    Raises
    ------
    ValueError
        If an episode is longer than `max_len` or has more actions than `max_actions`.
    """
    if not episodes:
        raise ValueError("Cannot collate an empty list of episodes.")
    lengths = [len(ep.tokens) for ep in episodes]
    counts = [len(ep.rewards) for ep in episodes]
    length = max(lengths) if max_len is None else max_len
    n_actions = max(counts) if max_actions is None else max_actions
    if max(lengths) > length or max(counts) > n_actions:
        raise ValueError(
            f"An episode has {max(lengths)} tokens / {max(counts)} actions: more than "
            f"max_len={length} / max_actions={n_actions}."
        )
    batch = len(episodes)
    tokens = np.zeros((batch, length), dtype=np.int64)
    attn = np.zeros((batch, length), dtype=np.float32)
    s_idx = np.zeros((batch, n_actions + 1), dtype=np.int64)
    a_idx = np.zeros((batch, n_actions), dtype=np.int64)
    rewards = np.zeros((batch, n_actions), dtype=np.float32)
    terminals = np.ones((batch, n_actions + 1), dtype=np.float32)
    valid = np.zeros((batch, n_actions), dtype=np.float32)
    for row, ep in enumerate(episodes):
        n_tok, n_act = lengths[row], counts[row]
        tokens[row, :n_tok] = np.asarray(ep.tokens, dtype=np.int64)
        attn[row, :n_tok] = 1.0
        positions = np.flatnonzero(np.asarray(ep.action_mask, dtype=bool))
        a_idx[row, :n_act] = positions - 1
        s_idx[row, :n_act] = positions - 1
        s_idx[row, n_act] = n_tok - 1
        rewards[row, :n_act] = np.asarray(ep.rewards, dtype=np.float32)
        terminals[row, :n_act] = 0.0
        terminals[row, n_act] = 1.0 if ep.done else 0.0
        valid[row, :n_act] = 1.0
    return ILQLBatch(
        *(torch.from_numpy(arr) for arr in (tokens, attn, s_idx, a_idx, rewards, terminals, valid))
    )

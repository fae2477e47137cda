"""A synthetic offline task where ILQL must beat behaviour cloning: safe vs gamble codes.

An episode is a context token, then a code of `code_len` symbol tokens (the
actions). Each context has a safe code (reward 1) and a gamble code (reward 1
with probability `p_gamble`); any other code earns 0. The reward comes with
the last action. Behaviour data mixes gamble, safe and uniformly random codes
(by default 60% / 15% / 25%): greedy behaviour cloning then emits the gamble
code (expected reward 0.45), while the best code is the safe one (1.0).
Safe and gamble codes of a context differ in their first symbol.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
import torch

from flwr_declearn.data import InMemoryDataset
from flwr_declearn.ilql._batch import Episode, collate
from flwr_declearn.ilql._config import GPTConfig
from flwr_declearn.ilql._decode import decode
from flwr_declearn.ilql._network import ILQLNetwork

__all__ = ["DEFAULT_CLIENT_MIXES", "CodeTask"]

DEFAULT_CLIENT_MIXES: tuple[tuple[float, float], ...] = (
    (0.70, 0.10),
    (0.65, 0.125),
    (0.60, 0.15),
    (0.55, 0.175),
    (0.50, 0.20),
)
"""Per client (gamble share, safe share); the rest is random. Means: 60% / 15% / 25%."""


@dataclasses.dataclass(frozen=True)
class CodeTask:
    """Safe vs gamble codes: `n_contexts` contexts, codes of `code_len` out of `n_symbols`.

    Token ids: contexts are `0 .. n_contexts - 1`, symbols follow.
    """

    n_contexts: int = 20
    n_symbols: int = 8
    code_len: int = 4
    p_gamble: float = 0.45
    seed: int = 0

    def __post_init__(self) -> None:
        if self.n_contexts < 1 or self.code_len < 1 or self.n_symbols < 2:
            raise ValueError("CodeTask needs >= 1 context, >= 1 code token and >= 2 symbols.")
        if not 0.0 <= self.p_gamble <= 1.0:
            raise ValueError("p_gamble must lie in [0, 1].")
        rng = np.random.default_rng(self.seed)
        safe = rng.integers(0, self.n_symbols, size=(self.n_contexts, self.code_len))
        gamble = rng.integers(0, self.n_symbols, size=(self.n_contexts, self.code_len))
        # Different first symbols: the first action decides between the two.
        shift = rng.integers(1, self.n_symbols, size=self.n_contexts)
        gamble[:, 0] = (safe[:, 0] + shift) % self.n_symbols
        object.__setattr__(self, "_safe", safe + self.n_contexts)
        object.__setattr__(self, "_gamble", gamble + self.n_contexts)

    # -- structure -------------------------------------------------------------------------------

    @property
    def vocab_size(self) -> int:
        return self.n_contexts + self.n_symbols

    @property
    def seq_len(self) -> int:
        return 1 + self.code_len

    @property
    def safe_codes(self) -> np.ndarray:
        """`(n_contexts, code_len)` token ids of the safe codes."""
        return self._safe.copy()  # type: ignore[attr-defined,no-any-return]

    @property
    def gamble_codes(self) -> np.ndarray:
        """`(n_contexts, code_len)` token ids of the gamble codes."""
        return self._gamble.copy()  # type: ignore[attr-defined,no-any-return]

    def symbol_mask(self) -> torch.Tensor:
        """`(vocab,)` bool mask of the symbol tokens (what decoding may emit)."""
        mask = torch.zeros(self.vocab_size, dtype=torch.bool)
        mask[self.n_contexts :] = True
        return mask

    def net_config(self, **overrides: object) -> GPTConfig:
        """The tiny trunk of the tests: 2 layers, 64 dims, 4 heads, no dropout."""
        params: dict[str, object] = {
            "vocab_size": self.vocab_size,
            "n_layer": 2,
            "n_head": 4,
            "n_embd": 64,
            "block_size": self.seq_len,
            "dropout": 0.0,
        }
        params.update(overrides)
        return GPTConfig(**params)  # type: ignore[arg-type]

    # -- rewards ---------------------------------------------------------------------------------

    def expected_rewards(self, contexts: np.ndarray, codes: np.ndarray) -> np.ndarray:
        """Expected reward of each `(context, code)` pair: 1 (safe), p_gamble (gamble), 0."""
        contexts = np.asarray(contexts, dtype=np.int64)
        codes = np.asarray(codes, dtype=np.int64)
        safe = (codes == self._safe[contexts]).all(axis=1)  # type: ignore[attr-defined]
        gamble = (codes == self._gamble[contexts]).all(axis=1)  # type: ignore[attr-defined]
        return np.where(safe, 1.0, np.where(gamble, self.p_gamble, 0.0))

    # -- behaviour data --------------------------------------------------------------------------

    def behaviour_episodes(
        self,
        contexts: Sequence[int],
        n_episodes: int,
        gamble_share: float = 0.60,
        safe_share: float = 0.15,
        seed: int = 0,
    ) -> list[Episode]:
        """Draw `n_episodes` behaviour episodes over `contexts` (uniformly), rewards sampled."""
        if gamble_share < 0 or safe_share < 0 or gamble_share + safe_share > 1:
            raise ValueError("Shares must be non-negative and sum to at most 1.")
        rng = np.random.default_rng(seed)
        ctx = rng.choice(np.asarray(contexts, dtype=np.int64), size=n_episodes)
        kind = rng.random(n_episodes)
        random_codes = rng.integers(0, self.n_symbols, size=(n_episodes, self.code_len))
        codes = np.where(
            (kind < gamble_share)[:, None],
            self._gamble[ctx],  # type: ignore[attr-defined]
            np.where(
                (kind < gamble_share + safe_share)[:, None],
                self._safe[ctx],  # type: ignore[attr-defined]
                random_codes + self.n_contexts,
            ),
        )
        expected = self.expected_rewards(ctx, codes)
        rewards = (rng.random(n_episodes) < expected).astype(np.float64)
        mask = [False] + [True] * self.code_len
        return [
            Episode(
                tokens=[int(c), *map(int, code)],
                action_mask=mask,
                rewards=[0.0] * (self.code_len - 1) + [float(r)],
            )
            for c, code, r in zip(ctx, codes, rewards, strict=True)
        ]

    def dataset(self, episodes: Sequence[Episode], seed: int | None = None) -> InMemoryDataset:
        """An `InMemoryDataset` of packed episodes (rows for `ILQLModel`)."""
        packed = collate(episodes, max_len=self.seq_len, max_actions=self.code_len).pack()
        return InMemoryDataset(packed, seed=seed)

    def client_contexts(self, n_clients: int) -> list[list[int]]:
        """Split the contexts into `n_clients` disjoint, contiguous groups."""
        if not 1 <= n_clients <= self.n_contexts:
            raise ValueError(f"n_clients must lie in [1, {self.n_contexts}].")
        return [part.tolist() for part in np.array_split(np.arange(self.n_contexts), n_clients)]

    def client_episodes(
        self,
        client: int,
        n_clients: int,
        n_episodes: int,
        mixes: Sequence[tuple[float, float]] = DEFAULT_CLIENT_MIXES,
        seed: int = 0,
    ) -> list[Episode]:
        """Client `client`'s non-IID data: its own contexts, its own behaviour mix."""
        gamble, safe = mixes[client % len(mixes)]
        return self.behaviour_episodes(
            self.client_contexts(n_clients)[client],
            n_episodes,
            gamble,
            safe,
            seed=seed * 1000 + client,
        )

    # -- evaluation ------------------------------------------------------------------------------

    def evaluate(
        self,
        net: ILQLNetwork,
        beta: float | None = None,
        contexts: Sequence[int] | None = None,
        use_cache: bool = True,
    ) -> dict[str, float]:
        """Greedy-decode a code per context; return its expected reward and diagnostics.

        Returns
        -------
        `expected_reward` (mean over contexts), `safe_rate`, `gamble_rate`,
        `q_safe_first` / `q_gamble_first` (mean target Q of the two first
        symbols after the context), `safe_first_ranked` (share of contexts
        where the safe first symbol has the higher Q), and `v_mean` (mean V
        after the context).
        """
        ctx = np.arange(self.n_contexts) if contexts is None else np.asarray(contexts)
        prompts = torch.as_tensor(ctx, dtype=torch.long)[:, None]
        tokens = (
            decode(
                net,
                prompts,
                self.code_len,
                beta=beta,
                use_cache=use_cache,
                allowed_tokens=self.symbol_mask(),
            )
            .cpu()
            .numpy()
        )
        codes = tokens[:, 1:]
        rewards = self.expected_rewards(ctx, codes)
        safe = (codes == self._safe[ctx]).all(axis=1)  # type: ignore[attr-defined]
        gamble = (codes == self._gamble[ctx]).all(axis=1)  # type: ignore[attr-defined]
        device = next(net.parameters()).device
        training = net.training
        net.eval()
        try:
            with torch.no_grad():
                hidden, _ = net.hidden_states(prompts.to(device))
                q = net.target_values(hidden[:, 0]).cpu().numpy()
                v = net.value(hidden[:, 0]).cpu().numpy()
        finally:
            net.train(training)
        rows = np.arange(len(ctx))
        q_safe = q[rows, self._safe[ctx, 0]]  # type: ignore[attr-defined]
        q_gamble = q[rows, self._gamble[ctx, 0]]  # type: ignore[attr-defined]
        return {
            "expected_reward": float(rewards.mean()),
            "safe_rate": float(safe.mean()),
            "gamble_rate": float(gamble.mean()),
            "q_safe_first": float(q_safe.mean()),
            "q_gamble_first": float(q_gamble.mean()),
            "safe_first_ranked": float((q_safe > q_gamble).mean()),
            "v_mean": float(v.mean()),
        }

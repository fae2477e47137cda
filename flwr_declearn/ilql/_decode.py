"""Decoding with the advantage-perturbed policy `pi(h) + beta * (Q(h) - V(h))`."""

from __future__ import annotations

import torch

from flwr_declearn.ilql._gpt import KVCache
from flwr_declearn.ilql._network import ILQLNetwork

__all__ = ["decode"]


@torch.no_grad()
def decode(
    net: ILQLNetwork,
    prompts: torch.Tensor,
    max_new_tokens: int,
    *,
    prompt_mask: torch.Tensor | None = None,
    beta: float | None = None,
    sample: bool = False,
    temperature: float = 1.0,
    generator: torch.Generator | None = None,
    use_cache: bool = True,
    allowed_tokens: torch.Tensor | None = None,
) -> torch.Tensor:
    """Extend `prompts` by `max_new_tokens` tokens; return `(B, P + max_new_tokens)` tokens.

    Parameters
    ----------
    net:
        The ILQL network (run in eval mode; its mode is restored afterwards).
    prompts:
        `(B, P)` token ids; left-pad prompts of different lengths.
    max_new_tokens:
        Number of tokens to generate.
    prompt_mask:
        `(B, P)` mask of real prompt tokens (1) versus left padding (0).
    beta:
        Advantage weight; None uses `net.config.beta`. 0 decodes the policy
        head alone (behaviour cloning).
    sample:
        Sample from `softmax(logits / temperature)` instead of taking the argmax.
    temperature:
        Sampling temperature (positive).
    generator:
        Random generator for sampling.
    use_cache:
        Reuse the keys and values of earlier tokens (a KV cache); False runs
        the whole sequence at every step. Both give the same tokens.
    allowed_tokens:
        Optional `(vocab,)` bool mask of the tokens that may be generated.
    """
    if max_new_tokens < 0:
        raise ValueError(f"max_new_tokens must be non-negative, not {max_new_tokens}.")
    if sample and not temperature > 0:
        raise ValueError(f"temperature must be positive, not {temperature!r}.")
    device = next(net.parameters()).device
    tokens = prompts.to(device=device, dtype=torch.long)
    mask = (
        torch.ones_like(tokens, dtype=torch.bool)
        if prompt_mask is None
        else prompt_mask.to(device=device, dtype=torch.bool)
    )
    training = net.training
    net.eval()
    try:
        cache: KVCache | None = None
        step_input, step_mask = tokens, mask
        for _ in range(max_new_tokens):
            if use_cache:
                hidden, cache = net.hidden_states(step_input, step_mask, cache, use_cache=True)
            else:
                hidden, _ = net.hidden_states(tokens, mask)
            logits = net.next_token_logits(hidden[:, -1], beta)
            if allowed_tokens is not None:
                logits = logits.masked_fill(~allowed_tokens.to(device), float("-inf"))
            if sample:
                probs = torch.softmax(logits / temperature, dim=-1)
                new = torch.multinomial(probs, 1, generator=generator)
            else:
                new = logits.argmax(dim=-1, keepdim=True)
            tokens = torch.cat([tokens, new], dim=1)
            new_mask = torch.ones_like(new, dtype=torch.bool)
            mask = torch.cat([mask, new_mask], dim=1)
            step_input, step_mask = new, new_mask
    finally:
        net.train(training)
    return tokens

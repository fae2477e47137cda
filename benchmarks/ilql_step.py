"""ILQL local training step: ours (ILQLModel + Optimizer) vs a plain torch loop (vs agilerl).

The same ILQL network (same initial weights) is trained with Adam on the same
batches of "safe vs gamble codes" episodes by:

* plain:   a hand-written torch loop: `loss = net(packed).mean()`, backward,
           `torch.optim.Adam.step()`, `net.soft_update()`, on batches prepared
           beforehand as tensors (the plain loop's best case).
* ours:    `Optimizer(lrate, modules=["adam"]).run_train_step(model, batch)`
           on an `ILQLModel` fed numpy batches (as the Flower client does; the
           conversion is timed), which also takes the Polyak step.
* agilerl: where agilerl is installed (`pip install 'flwr-declearn[agilerl]'`),
           its `ILQL` on the same net_config: `get_loss` + backward + its
           optimizer's step + `soft_update`. Its networks differ from ours
           (a separate policy GPT, MLP heads of its own), so this is
           "the same configuration", not the same computation.

Timings are A/B interleaved: each round runs a block of steps of each variant
in a shuffled order; the per-step median over rounds is reported with the ratio
to the plain loop (goal: ours <= 1.10). Both variants must end on the same
weights (checked).

Run: `python benchmarks/ilql_step.py [--size tiny|small] [--rounds 20] [--steps 10]`.
Single-threaded torch.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from collections.abc import Callable

import torch

from flwr_declearn.ilql import CodeTask, ILQLConfig, ILQLModel, ILQLNetwork
from flwr_declearn.optimizer import Optimizer

SIZES = {
    # The tests' tiny trunk, and a larger one where compute dominates.
    "tiny": {"n_layer": 2, "n_embd": 64, "n_head": 4, "n_symbols": 8, "code_len": 4},
    "small": {"n_layer": 4, "n_embd": 256, "n_head": 8, "n_symbols": 256, "code_len": 31},
}
LRATE = 1e-3

Step = Callable[[int], None]


def build(size: str, batch_size: int, n_batches: int, seed: int = 0):  # type: ignore[no-untyped-def]
    spec = SIZES[size]
    task = CodeTask(n_contexts=16, n_symbols=spec["n_symbols"], code_len=spec["code_len"])
    net_config = task.net_config(
        n_layer=spec["n_layer"], n_embd=spec["n_embd"], n_head=spec["n_head"]
    )
    episodes = task.behaviour_episodes(range(16), batch_size * n_batches, seed=seed)
    dataset = task.dataset(episodes)
    batches = list(dataset.generate_batches(batch_size))
    return task, net_config, batches


def make_ours(net_config, config, batches, adam=True) -> tuple[Step, ILQLModel]:  # type: ignore[no-untyped-def]
    model = ILQLModel(net_config, config, seed=0)
    optim = Optimizer(lrate=LRATE, modules=["adam"] if adam else [])

    def step(i: int) -> None:
        optim.run_train_step(model, batches[i % len(batches)])

    return step, model


def make_plain(net_config, config, batches, adam=True) -> tuple[Step, ILQLNetwork]:  # type: ignore[no-untyped-def]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        net = ILQLNetwork(net_config, config)
    params = [p for p in net.parameters() if p.requires_grad]
    # declearn's Adam defaults: eps 1e-7 (torch's own default is 1e-8).
    optim: torch.optim.Optimizer = (
        torch.optim.Adam(params, lr=LRATE, betas=(0.9, 0.999), eps=1e-7, foreach=True)
        if adam
        else torch.optim.SGD(params, lr=LRATE, foreach=True)
    )
    tensors = [torch.from_numpy(b[0]) for b in batches]

    def step(i: int) -> None:
        optim.zero_grad(set_to_none=True)
        loss = net(tensors[i % len(tensors)]).mean()
        loss.backward()
        optim.step()
        net.soft_update()

    return step, net


def make_agilerl(net_config, batches) -> Step | None:  # type: ignore[no-untyped-def]
    try:
        from agilerl.algorithms.ilql import ILQL  # type: ignore[import-not-found]
    except ImportError:
        return None
    cfg = net_config
    vocab = net_config.vocab_size

    class _Tokenizer:  # agilerl sizes its heads with dataset.tokenizer.num_tokens()
        def num_tokens(self) -> int:
            return vocab

    class _Dataset:
        tokenizer = _Tokenizer()

    agent = ILQL(
        dataset=_Dataset(),
        net_config={
            "arch": "gpt", "vocab_size": cfg.vocab_size, "n_layer": cfg.n_layer,
            "n_embd": cfg.n_embd, "n_head": cfg.n_head, "dim_feedfwd": cfg.hidden_ff,
            "block_size": cfg.block_size, "dropout": cfg.dropout, "activation": "GELU",
            "layer_norm_eps": cfg.layer_norm_eps, "min_layers": 1, "max_layers": 8,
            "bias": cfg.bias,
        },
        lr=LRATE,
    )  # fmt: skip
    from flwr_declearn.ilql import ILQLBatch

    items = []
    for packed, _, _ in batches:
        b = ILQLBatch.unpack(torch.from_numpy(packed))
        items.append(
            {
                "tokens": b.tokens, "attn_mask": b.attn_mask, "state_idxs": b.state_idxs,
                "action_idxs": b.action_idxs, "rewards": b.rewards, "terminals": b.terminals,
            }
        )  # fmt: skip

    def step(i: int) -> None:
        loss, _, _ = agent.get_loss(
            items[i % len(items)], awac_weight=1.0, v_loss_weight=1.0, q_loss_weight=1.0,
            cql_loss_weight=0.01, dm_loss_weight=0.0,
        )  # fmt: skip
        agent.optimizer.zero_grad()
        loss.backward()
        agent.optimizer.step()
        agent.soft_update()

    return step


def timeit(steps: dict[str, Step], rounds: int, n_steps: int) -> dict[str, float]:
    """Per-step median (seconds) of each variant over `rounds` interleaved blocks."""
    for step in steps.values():  # warm-up
        for i in range(3):
            step(i)
    times: dict[str, list[float]] = {name: [] for name in steps}
    counter = 3
    for _ in range(rounds):
        order = list(steps)
        random.shuffle(order)
        for name in order:
            start = time.perf_counter()
            for i in range(n_steps):
                steps[name](counter + i)
            times[name].append((time.perf_counter() - start) / n_steps)
        counter += n_steps
    return {name: statistics.median(vals) for name, vals in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="tiny")
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args()
    torch.set_num_threads(1)
    random.seed(0)
    config = ILQLConfig(alpha=0.1)
    _, net_config, batches = build(args.size, args.batch_size, 8)
    ours, _ = make_ours(net_config, config, batches)
    plain, net = make_plain(net_config, config, batches)
    # Same work: a few steps of each from the same weights end on the same weights (checked
    # with SGD: Adam's m / sqrt(v) amplifies float rounding where gradients are near zero).
    check_ours, check_model = make_ours(net_config, config, batches, adam=False)
    check_plain, check_net = make_plain(net_config, config, batches, adam=False)
    for i in range(3):
        check_ours(i)
        check_plain(i)
    for name, value in check_model.get_weights().coefs.items():
        ref = check_net.state_dict()[name]
        if not torch.allclose(value, ref, rtol=1e-4, atol=1e-5):
            raise AssertionError(f"ours and plain diverged on '{name}'")
    steps: dict[str, Step] = {"plain": plain, "ours": ours}
    agile = make_agilerl(net_config, batches)
    if agile is not None:
        steps["agilerl"] = agile
    medians = timeit(steps, args.rounds, args.steps)
    n_params = sum(p.numel() for p in net.parameters())
    print(
        f"ILQL step, size={args.size} ({n_params / 1e6:.2f}M weights incl. targets), "
        f"batch={args.batch_size}, seq_len={net_config.block_size}"
    )
    for name, value in medians.items():
        ratio = value / medians["plain"]
        print(f"  {name:8s} {value * 1e3:8.2f} ms/step   ratio to plain {ratio:5.3f}")
    if agile is None:
        print("  agilerl  not installed (pip install 'flwr-declearn[agilerl]')")
    print(f"ours / plain = {medians['ours'] / medians['plain']:.3f} (goal <= 1.10)")


if __name__ == "__main__":
    main()

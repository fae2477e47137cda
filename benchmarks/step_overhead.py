"""Training-step overhead of our Models + Optimizer vs a plain framework loop, and vs declearn.

For each framework (torch, haiku, tensorflow) and optimizer (SGD, Adam), the
same MLP (same initial weights) is trained on the same batches by:

* plain:    the framework's own loop: `torch.optim`; a jit-compiled optax step
            (value_and_grad + update + apply_updates in one `jax.jit`); a
            `tf.function` step with a Keras optimizer. Batches are given as
            framework tensors prepared beforehand (the plain loop's best case).
* ours:     `Optimizer.run_train_step(model, batch)` on our TorchModel /
            HaikuModel / TensorflowModel, fed numpy batches (as the Flower
            client does; the conversion is timed).
* declearn: declearn 2.9.1's Model + Optimizer on the same numpy batches.

Timings are interleaved, in two groups: (plain, ours) then (plain,
declearn). Each round runs a block of steps of every variant of a group in a
shuffled order; the per-step median over rounds is reported, with the ratio
to the plain loop of the same group (goal: ours <= 1.10). The table's "plain"
column is that of the first group. With `--baseline REV`, this package as of
git revision `REV` (`benchmarks/_baseline.py`) joins the first group as a
third variant: `ours/base` is the median over rounds of the ratio of the two
blocks of the same round, and `shift` that of `(ours - baseline) / plain`, how
much the reported ratio moved from the baseline's. `--processes N` runs each
framework in N fresh interpreters, one after the other (each with its own
block order), and pools their rounds; the shift of each process is printed
too.

On haiku and tensorflow, `run_train_step` runs gradients, modules and update
as one compiled call (see `flwr_declearn.optimizer._fused`); `--breakdown`
also times the phases of the eager path (ours and, with `--baseline`, the
baseline's, step by step in turn).

Run: `python benchmarks/step_overhead.py [--frameworks torch haiku tensorflow]
[--rounds 30] [--steps 20] [--batch-size 64] [--hidden 256] [--baseline REV]
[--processes 1]`. Frameworks run in
processes of their own (spawned), single-threaded (torch, XLA and TF intra-op).
"""

from __future__ import annotations

import argparse
import importlib
import itertools
import multiprocessing as mp
import os
import random
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from _baseline import extract, use

N_FEATURES = 64
N_CLASSES = 10
ADAM = {"lr": 1e-3, "b1": 0.9, "b2": 0.999, "eps": 1e-7}
SGD_LR = 0.01

Step = Callable[[int], None]
"""Runs one training step on batch number `i`."""
Weights = Callable[[], dict[str, np.ndarray]]
"""Returns a variant's current weights, by name (names shared by the variants)."""


def with_weights(step: Step, weights: Weights) -> Step:
    """Attach a weights getter to a step, to check that all variants did the same work."""
    step.weights = weights  # type: ignore[attr-defined]
    return step


def make_batches(n: int, batch_size: int, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(seed)
    return [
        (
            rng.normal(size=(batch_size, N_FEATURES)).astype("float32"),
            rng.integers(0, N_CLASSES, size=batch_size).astype("int64"),
        )
        for _ in range(n)
    ]


def init_weights(hidden: int, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """Glorot-uniform kernels (in, out) and zero biases of a 64-h-h-10 MLP."""
    rng = np.random.default_rng(seed)
    sizes = [N_FEATURES, hidden, hidden, N_CLASSES]
    layers = []
    for fan_in, fan_out in itertools.pairwise(sizes):
        lim = np.sqrt(6.0 / (fan_in + fan_out))
        kernel = rng.uniform(-lim, lim, size=(fan_in, fan_out)).astype("float32")
        layers.append((kernel, np.zeros(fan_out, dtype="float32")))
    return layers


# -- torch ---------------------------------------------------------------------------------------


def torch_variants(
    opt: str, hidden: int, batches: list[Any], ours: dict[str, str]
) -> dict[str, Step | str]:
    import torch

    torch.set_num_threads(1)
    weights = init_weights(hidden)

    def net() -> torch.nn.Module:
        mods: list[torch.nn.Module] = []
        for i, (kernel, bias) in enumerate(weights):
            lin = torch.nn.Linear(*kernel.shape)
            with torch.no_grad():
                lin.weight.copy_(torch.from_numpy(kernel.T.copy()))
                lin.bias.copy_(torch.from_numpy(bias))
            mods.append(lin)
            if i < len(weights) - 1:
                mods.append(torch.nn.ReLU())
        return torch.nn.Sequential(*mods)

    variants: dict[str, Step | str] = {}
    # plain torch loop
    model = net()
    loss_fn = torch.nn.CrossEntropyLoss()
    if opt == "sgd":
        optim = torch.optim.SGD(model.parameters(), lr=SGD_LR)
    else:
        optim = torch.optim.Adam(
            model.parameters(), lr=ADAM["lr"], betas=(ADAM["b1"], ADAM["b2"]), eps=ADAM["eps"]
        )
    device = "cuda" if torch.cuda.is_available() and _gpu_policy() else "cpu"
    model.to(device)
    tensors = [(torch.from_numpy(x).to(device), torch.from_numpy(y).to(device)) for x, y in batches]

    def plain(i: int) -> None:
        x, y = tensors[i]
        optim.zero_grad(set_to_none=True)
        loss = loss_fn(model(x), y)
        loss.backward()
        optim.step()

    variants["plain"] = with_weights(
        plain, lambda: {k: p.detach().cpu().numpy() for k, p in model.named_parameters()}
    )
    for arm, package in ours.items():  # ours (and the baseline revision's)
        torch_model = importlib.import_module(f"{package}.model.torch").TorchModel
        optimizer = importlib.import_module(f"{package}.optimizer").Optimizer
        model_ = torch_model(net(), torch.nn.CrossEntropyLoss())
        variants[arm] = _api_step(model_, _ours_optimizer(optimizer, opt), batches)
    # declearn
    try:
        from declearn.model.torch import TorchModel as DeclearnTorchModel
        from declearn.optimizer import Optimizer as DeclearnOptimizer

        dl_model = DeclearnTorchModel(net(), torch.nn.CrossEntropyLoss())
        variants["declearn"] = _api_step(dl_model, _ours_optimizer(DeclearnOptimizer, opt), batches)
    except Exception as exc:  # report, do not hide
        variants["declearn"] = f"n/a ({type(exc).__name__}: {exc})"
    return variants


def _to_numpy(array: Any) -> np.ndarray:
    if hasattr(array, "detach"):  # torch
        array = array.detach().cpu()
    return np.array(array)


def _gpu_policy() -> bool:
    from flwr_declearn.utils import get_device_policy

    return get_device_policy().gpu


def _ours_optimizer(cls: Any, opt: str) -> Any:
    if opt == "sgd":
        return cls(lrate=SGD_LR)
    config = {"beta_1": ADAM["b1"], "beta_2": ADAM["b2"], "eps": ADAM["eps"]}
    return cls(lrate=ADAM["lr"], modules=[("adam", config)])


def _api_step(model: Any, optim: Any, batches: list[Any]) -> Step:
    """Step of a (declearn-style) Model API; its weights as numpy arrays, by name."""

    def step(i: int) -> None:
        x, y = batches[i]
        optim.run_train_step(model, (x, y, None))

    def weights() -> dict[str, np.ndarray]:
        coefs = model.get_weights(trainable=True).coefs
        return {  # (declearn's TorchModel prefixes names with "module.")
            k.removeprefix("module."): _to_numpy(v) for k, v in coefs.items()
        }

    step.parts = (model, optim, batches)  # type: ignore[attr-defined]
    return with_weights(step, weights)


# -- haiku ---------------------------------------------------------------------------------------


def haiku_variants(
    opt: str, hidden: int, batches: list[Any], ours: dict[str, str]
) -> dict[str, Step | str]:
    import haiku as hk
    import jax
    import jax.numpy as jnp
    import optax

    weights = init_weights(hidden)
    n_layers = len(weights)

    def mlp(x: jax.Array) -> jax.Array:
        for i in range(n_layers):
            x = hk.Linear(weights[i][0].shape[1], name=f"linear_{i}")(x)
            if i < n_layers - 1:
                x = jax.nn.relu(x)
        return x

    def xent(y_pred: jax.Array, y_true: jax.Array) -> jax.Array:
        return optax.softmax_cross_entropy_with_integer_labels(y_pred, y_true)

    from flwr_declearn.model.haiku import select_device

    device = select_device(_gpu_policy())  # the plain loop runs where ours does
    params0 = jax.device_put(
        {f"linear_{i}": {"w": k, "b": b} for i, (k, b) in enumerate(weights)}, device
    )
    variants: dict[str, Step | str] = {}
    # plain: one jit-compiled optax step
    transformed = hk.transform(mlp)
    if opt == "sgd":
        tx = optax.sgd(SGD_LR)
    else:
        tx = optax.adam(ADAM["lr"], b1=ADAM["b1"], b2=ADAM["b2"], eps=ADAM["eps"])

    @jax.jit
    def train_step(params: Any, state: Any, rng: jax.Array, x: jax.Array, y: jax.Array) -> Any:
        rng, key = jax.random.split(rng)

        def loss_fn(params: Any) -> jax.Array:
            return jnp.mean(xent(transformed.apply(params, key, x), y))

        grads = jax.grad(loss_fn)(params)
        updates, state = tx.update(grads, state, params)
        return optax.apply_updates(params, updates), state, rng

    arrays = [jax.device_put((x, y), device) for x, y in batches]
    rng = jax.device_put(jax.random.PRNGKey(0), device)
    holder = {"params": params0, "state": tx.init(params0), "rng": rng}

    def plain(i: int) -> None:
        x, y = arrays[i]
        holder["params"], holder["state"], holder["rng"] = train_step(
            holder["params"], holder["state"], holder["rng"], x, y
        )

    variants["plain"] = with_weights(
        _jax_synced(plain, lambda: holder["params"]),
        lambda: {
            f"{layer}:{name}": np.asarray(v)
            for layer, d in holder["params"].items()
            for name, v in d.items()
        },
    )
    flat = {f"{layer}:{name}": v for layer, d in params0.items() for name, v in d.items()}
    for arm, package in ours.items():  # ours (and the baseline revision's)
        haiku_module = importlib.import_module(f"{package}.model.haiku")
        optimizer = importlib.import_module(f"{package}.optimizer").Optimizer
        model_ = haiku_module.HaikuModel(mlp, xent, seed=0)
        model_.initialize({"features_shape": [N_FEATURES], "data_type": "float32"})
        model_.set_weights(haiku_module.JaxNumpyVector(flat))
        step = _api_step(model_, _ours_optimizer(optimizer, opt), batches)
        variants[arm] = with_weights(
            _jax_synced(step, lambda m=model_: m.get_weights().coefs),
            step.weights,  # type: ignore[attr-defined]
        )
    # declearn
    try:
        from declearn.model.haiku import HaikuModel as DeclearnHaikuModel
        from declearn.model.haiku import JaxNumpyVector as DeclearnJaxVector
        from declearn.optimizer import Optimizer as DeclearnOptimizer

        dl = DeclearnHaikuModel(mlp, xent, seed=0)
        dl.initialize({"features_shape": [N_FEATURES], "data_type": "float32"})
        dl.set_weights(DeclearnJaxVector(flat))
        dstep = _api_step(dl, _ours_optimizer(DeclearnOptimizer, opt), batches)
        variants["declearn"] = with_weights(
            _jax_synced(dstep, lambda: dl.get_weights().coefs),
            dstep.weights,  # type: ignore[attr-defined]
        )
    except Exception as exc:  # report, do not hide
        variants["declearn"] = f"n/a ({type(exc).__name__}: {exc})"
    return variants


def _jax_synced(step: Step, state: Callable[[], Any]) -> Step:
    """Make the last step of a timed block wait for jax's asynchronous dispatch."""
    import jax

    def synced(i: int) -> None:
        step(i)
        if i < 0:  # called with a negative index by the timer at the end of a block
            jax.block_until_ready(state())

    synced.parts = getattr(step, "parts", None)  # type: ignore[attr-defined]
    return synced


# -- tensorflow ----------------------------------------------------------------------------------


def tensorflow_variants(
    opt: str, hidden: int, batches: list[Any], ours: dict[str, str]
) -> dict[str, Step | str]:
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(1)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:  # already initialized (the env vars then apply)
        pass
    import keras

    weights = init_weights(hidden)

    def net() -> keras.Model:
        layers: list[Any] = [keras.Input((N_FEATURES,))]
        for i, (kernel, _) in enumerate(weights):
            act = "relu" if i < len(weights) - 1 else None
            layers.append(keras.layers.Dense(kernel.shape[1], activation=act))
        model = keras.Sequential(layers)
        model.set_weights([a for pair in weights for a in pair])
        return model

    def keras_opt() -> keras.optimizers.Optimizer:
        if opt == "sgd":
            return keras.optimizers.SGD(SGD_LR)
        return keras.optimizers.Adam(
            ADAM["lr"], beta_1=ADAM["b1"], beta_2=ADAM["b2"], epsilon=ADAM["eps"]
        )

    from flwr_declearn.model.tensorflow import select_device

    device = select_device(_gpu_policy())  # the plain loop runs where ours does
    variants: dict[str, Step | str] = {}
    # plain: tf.function step with a Keras optimizer
    with tf.device(device):
        model = net()
        loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        optim = keras_opt()
        optim.build(model.trainable_variables)
        tensors = [(tf.convert_to_tensor(x), tf.convert_to_tensor(y)) for x, y in batches]

    @tf.function
    def train_step(x: tf.Tensor, y: tf.Tensor) -> None:
        with tf.GradientTape() as tape:
            loss = loss_fn(y, model(x, training=True))
        grads = tape.gradient(loss, model.trainable_variables)
        optim.apply_gradients(zip(grads, model.trainable_variables, strict=True))

    def plain(i: int) -> None:
        with tf.device(device):
            train_step(*tensors[i])

    def keras_weights(model: keras.Model) -> Weights:
        return lambda: {str(i): w for i, w in enumerate(model.get_weights())}

    variants["plain"] = with_weights(plain, keras_weights(model))
    for arm, package in ours.items():  # ours (and the baseline revision's)
        tf_model = importlib.import_module(f"{package}.model.tensorflow").TensorflowModel
        optimizer = importlib.import_module(f"{package}.optimizer").Optimizer
        model_ = tf_model(net(), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        variants[arm] = with_weights(
            _api_step(model_, _ours_optimizer(optimizer, opt), batches),
            keras_weights(model_.get_wrapped_model()),
        )
    # declearn
    try:
        from declearn.model.tensorflow import TensorflowModel as DeclearnTFModel
        from declearn.optimizer import Optimizer as DeclearnOptimizer

        dl = DeclearnTFModel(net(), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        dstep = _api_step(dl, _ours_optimizer(DeclearnOptimizer, opt), batches)
        variants["declearn"] = with_weights(dstep, keras_weights(dl.get_wrapped_model()))
    except Exception as exc:  # report, do not hide
        msg = str(exc).splitlines()[0][:120]
        variants["declearn"] = f"n/a ({type(exc).__name__}: {msg})"
    return variants


# -- timing --------------------------------------------------------------------------------------

BUILDERS = {"torch": torch_variants, "haiku": haiku_variants, "tensorflow": tensorflow_variants}


def time_blocks(
    variants: dict[str, Step | str],
    n_batches: int,
    rounds: int,
    steps: int,
    clock: Callable[[], float] = time.perf_counter,
    seed: int = 0,
) -> dict[str, list[float]]:
    """Return each variant's seconds per step in each round (interleaved blocks of `steps`)."""
    runnable = {k: v for k, v in variants.items() if callable(v)}
    for step in runnable.values():  # warm-up: compilation, caches, allocators
        for i in range(min(n_batches, 2 * steps)):
            step(i)
        step(-1)
    times: dict[str, list[float]] = {k: [] for k in runnable}
    order = list(runnable)
    shuffler = random.Random(seed)
    cursor = 0
    for _ in range(rounds):
        shuffler.shuffle(order)
        idx = [(cursor + j) % n_batches for j in range(steps)]
        cursor += steps
        for name in order:
            step = runnable[name]
            start = clock()
            for i in idx:
                step(i)
            step(-1)  # syncs jax variants; for the others: one more step, in every block
            times[name].append((clock() - start) / (steps + 1))
    return times


def run_framework(framework: str, args: argparse.Namespace, seed: int, queue: Any) -> None:
    """Time every variant of `framework` (blocks in an order drawn from `seed`); queue the times."""
    if args.gpu:  # ours and declearn's Models follow their device policies
        from flwr_declearn.utils import set_device_policy

        set_device_policy(gpu=True)
        try:
            from declearn.utils import set_device_policy as set_declearn_policy

            set_declearn_policy(gpu=True)
        except ImportError:
            pass
    ours = {"ours": "flwr_declearn"}
    if args.baseline_dir:
        ours["baseline"] = use(args.baseline_dir)
    results: dict[str, dict[str, Any]] = {}
    for opt in ("sgd", "adam"):
        batches = make_batches(args.n_batches, args.batch_size)
        variants = BUILDERS[framework](opt, args.hidden, batches, ours)
        if args.gpu:
            variants = {k: _synced(v) if callable(v) else v for k, v in variants.items()}
        for i in range(CHECK_STEPS):  # same steps on the same batches, before timing
            for name, step in list(variants.items()):
                if not callable(step):
                    continue
                try:
                    step(i % len(batches))
                except Exception as exc:  # a baseline that cannot run: report it
                    if name != "declearn":
                        raise
                    msg = str(exc).splitlines()[0][:120]
                    variants[name] = f"n/a ({type(exc).__name__}: {msg})"
        gap = weights_gap(variants)
        clock = time.process_time if args.clock == "cpu" else time.perf_counter
        # Two groups, each interleaved: (plain, ours[, baseline]) and (plain, declearn).
        # Mixing declearn's 10x longer, allocation-heavy steps into the first group's
        # blocks would slow whichever variant runs more Python after them, not measure it.
        group = {k: variants[k] for k in ("plain", *ours)}
        results[opt] = {
            "blocks": time_blocks(group, len(batches), args.rounds, args.steps, clock, seed)
        }
        declearn = variants["declearn"]
        if callable(declearn):
            pair = {"plain": variants["plain"], "declearn": declearn}
            results[opt]["declearn"] = time_blocks(
                pair, len(batches), args.rounds, args.steps, clock, seed
            )
        else:
            results[opt]["declearn"] = declearn
        results[opt]["diff"] = gap
        if args.breakdown:
            arms = {arm: variants[arm] for arm in ours}
            results[opt]["phases"] = time_phases(arms, framework, args, clock)
    queue.put((framework, results))


def _synced(step: Any) -> Step:
    """Wait for asynchronous (GPU) work at the end of each timed block, by reading weights."""

    def synced(i: int) -> None:
        step(i)
        if i < 0:
            step.weights()

    synced.weights = step.weights  # type: ignore[attr-defined]
    synced.parts = getattr(step, "parts", None)  # type: ignore[attr-defined]
    return synced


def time_phases(
    steps: dict[str, Any], framework: str, args: argparse.Namespace, clock: Callable[[], float]
) -> dict[str, dict[str, list[float]]]:
    """Times of each phase of our eager step (gradients, updates, apply; synced for jax).

    With a baseline arm, its phases are timed too, step by step in turn with
    ours, so that the two are measured side by side.
    """
    phases = ("grads", "updates", "apply")
    times = {arm: {k: [] for k in phases} for arm in steps}

    def sync(out: Any) -> None:
        if framework == "haiku":
            import jax

            jax.block_until_ready(out)

    for i in range(args.rounds * args.steps):
        x, y = steps["ours"].parts[2][i % args.n_batches]
        for arm, step in steps.items():
            model, optim, _ = step.parts
            start = clock()
            grads = model.compute_batch_gradients((x, y, None))
            sync(grads.coefs)
            mid = clock()
            updates = optim.compute_updates_from_gradients(model, grads)
            sync(updates.coefs)
            end = clock()
            model.apply_updates(updates)
            for key, spent in zip(phases, (mid - start, end - mid, clock() - end), strict=True):
                times[arm][key].append(spent)
    for step in steps.values():
        step.parts[0].collect_training_losses()
    return times


CHECK_STEPS = 20
"""Steps run by every variant before timing, after which their weights are compared.

(Not after the timed steps: over hundreds of steps, last-bit differences between
implementations, e.g. torch's Adam arithmetic, flip ReLUs and grow chaotically.)"""


def weights_gap(variants: dict[str, Step | str]) -> str:
    """Largest gap between a variant's weights and the plain loop's, relative to the
    largest plain weight, after the same steps on the same batches."""
    plain = variants["plain"].weights()  # type: ignore[union-attr]
    scale = max(float(np.max(np.abs(w))) for w in plain.values())
    gaps = []
    for name in ("ours", "baseline", "declearn"):
        if name not in variants:
            continue
        step = variants[name]
        if not callable(step):
            continue
        other = step.weights()  # type: ignore[attr-defined]
        if set(other) != set(plain):
            gaps.append(f"{name}: names differ")
            continue
        gap = max(float(np.max(np.abs(other[k] - plain[k]))) for k in plain) / scale
        gaps.append(f"{name} {gap:.0e}")
    return ", ".join(gaps)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frameworks", nargs="+", default=["torch", "haiku", "tensorflow"])
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--n-batches", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument(
        "--gpu",
        action="store_true",
        help="set the device policy to GPU (ours, declearn) and run the plain loops on the "
        "framework's default GPU; use the wall clock",
    )
    parser.add_argument(
        "--breakdown",
        action="store_true",
        help="also time each phase of our (and the baseline's) eager path "
        "(compute_batch_gradients, compute_updates_from_gradients, apply_updates), "
        "which run_train_step takes on "
        "torch, or with regularizers or modules without a compiled formula",
    )
    parser.add_argument(
        "--clock",
        choices=["wall", "cpu"],
        default="wall",
        help="wall: elapsed time; cpu: the process' CPU time, steadier on a busy machine "
        "(CPU only: it misses time spent waiting for a GPU)",
    )
    parser.add_argument(
        "--baseline",
        default=None,
        help="git revision of this package to time as a third arm beside ours and plain "
        "(extracted under another name, see benchmarks/_baseline.py)",
    )
    parser.add_argument(
        "--processes",
        type=int,
        default=1,
        help="run each framework in N fresh interpreters, one after the other, and pool their "
        "rounds (the memory layout, hence the timings, changes from one process to the next)",
    )
    parser.add_argument("--baseline-dir", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.baseline:
        args.baseline_dir = extract(args.baseline)
    if args.gpu and args.clock == "cpu":
        parser.error("--gpu needs the wall clock (CPU time misses the GPU's work)")
    # Single-threaded frameworks: 2-core machines, stable timings.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("TF_NUM_INTRAOP_THREADS", "1")
    os.environ.setdefault("TF_NUM_INTEROP_THREADS", "1")
    os.environ.setdefault(
        "XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
    )
    print(
        f"MLP {N_FEATURES}-{args.hidden}-{args.hidden}-{N_CLASSES}, batch {args.batch_size}, "
        f"{args.rounds} interleaved rounds x {args.steps} steps x {args.processes} process(es); "
        f"median {args.clock} time per step.\n"
    )
    header = f"{'framework':<11} {'opt':<5} {'plain':>9} {'ours':>9} {'ratio':>6}  "
    if args.baseline:
        header += f"{'baseline':>9} {'ratio':>6} {'ours/base':>9} {'shift':>6}  "
    header += f"{'declearn':>9} {'ratio':>6}"
    print(header)
    print("-" * len(header))
    ctx = mp.get_context("spawn")
    for framework in args.frameworks:
        runs = []
        for seed in range(args.processes):  # one after the other: no two timed at once
            queue = ctx.Queue()
            proc = ctx.Process(target=run_framework, args=(framework, args, seed, queue))
            proc.start()
            runs.append(queue.get()[1])
            proc.join()
        for opt in runs[0]:
            print_row(framework, opt, [run[opt] for run in runs])


def paired(blocks: dict[str, list[float]]) -> tuple[float, float]:
    """Medians over rounds of ours / baseline and (ours - baseline) / plain, same-round blocks."""
    rounds = list(zip(blocks["ours"], blocks["baseline"], blocks["plain"], strict=True))
    return (
        statistics.median(o / b for o, b, _ in rounds),
        statistics.median((o - b) / p for o, b, p in rounds),
    )


def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Pool the processes' rounds: medians over all rounds, and the shift of each process."""
    pooled: dict[str, list[float]] = {}
    for run in runs:
        for name, times in run["blocks"].items():
            pooled.setdefault(name, []).extend(times)
    res: dict[str, Any] = {k: statistics.median(v) for k, v in pooled.items()}
    if "baseline" in pooled:
        res["ours/baseline"], res["shift"] = paired(pooled)
        res["shifts"] = [paired(run["blocks"])[1] for run in runs]
    declearn = runs[0]["declearn"]
    if isinstance(declearn, str):
        res["declearn"] = declearn
    else:
        both = {k: [t for run in runs for t in run["declearn"][k]] for k in ("plain", "declearn")}
        res["declearn"] = statistics.median(both["declearn"])
        res["declearn_plain"] = statistics.median(both["plain"])
    res["diff"] = runs[0]["diff"]
    if runs[0].get("phases"):
        res["phases"] = {
            arm: {
                key: statistics.median([t for run in runs for t in run["phases"][arm][key]])
                for key in phases
            }
            for arm, phases in runs[0]["phases"].items()
        }
    return res


def print_row(framework: str, opt: str, runs: list[dict[str, Any]]) -> None:
    """Print one (framework, optimizer) row of the table from its processes' timings."""
    res = summarize(runs)
    plain, ours, dl = res["plain"], res["ours"], res["declearn"]
    cells = [f"{framework:<11} {opt:<5} {plain * 1e3:>7.3f}ms"]
    cells.append(f"{ours * 1e3:>7.3f}ms {ours / plain:>6.2f}")
    if "baseline" in res:
        base = res["baseline"]
        cells.append(f" {base * 1e3:>7.3f}ms {base / plain:>6.2f}")
        cells.append(f"{res['ours/baseline']:>9.3f} {res['shift']:>+6.3f}")
    if isinstance(dl, float):
        cells.append(f" {dl * 1e3:>7.3f}ms {dl / res['declearn_plain']:>6.2f}")
    else:
        cells.append(f" {dl}")
    cells.append(f"   (weights vs plain: {res['diff']})")
    print(" ".join(cells))
    if len(runs) > 1 and "shifts" in res:
        shifts = ", ".join(f"{x:+.3f}" for x in res["shifts"])
        print(f"{'':<17} shift in each process: {shifts}")
    for arm, phases in res.get("phases", {}).items():
        spent = ", ".join(f"{key} {t * 1e3:.3f}ms" for key, t in phases.items())
        print(f"{'':<17} eager path, {arm}: {spent}")


if __name__ == "__main__":
    main()

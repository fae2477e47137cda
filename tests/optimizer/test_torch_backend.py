"""The torch backend runs each module's one step as the generic backend does, only faster.

Torch overrides the `Arrays` operators (`_foreach` kernels, fused forms that
write temporaries into their output, in-place augmented assignments); every
step must give what the generic, key-by-key operators give on the same
tensors.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from flwr_declearn.model.torch import TorchVector  # noqa: E402
from flwr_declearn.optimizer._arrays import Arrays, Backend  # noqa: E402
from flwr_declearn.optimizer._backend import backend_for  # noqa: E402
from flwr_declearn.optimizer._backend_torch import TorchBackend  # noqa: E402
from flwr_declearn.optimizer.modules import OptiModule  # noqa: E402

SHAPES = {"w": (7, 5), "b": (5,), "c": (3, 2, 2)}

STEPPED = {
    "adam": {},
    "adam (amsgrad)": {"amsgrad": True},
    "yogi": {},
    "yogi (amsgrad)": {"amsgrad": True},
    "adagrad": {},
    "rmsprop": {},
    "momentum": {},
    "momentum (nesterov)": {"nesterov": True},
    "ewma": {},
    "yogi-momentum": {},
    "l2-clipping": {"max_norm": 1.5},
    "l2-global-clipping": {"max_norm": 3.0},
    "scaffold-client": {},
}


def _generic() -> Backend:
    """The generic backend (key-by-key operators) on torch tensors; 0-d results stay tensors."""
    backend = Backend(TorchVector)
    backend.ops.cast = lambda scalar, like: (  # type: ignore[method-assign]
        scalar if type(scalar) in (int, float) else scalar.to(like.dtype)
    )
    return backend


def _tensors(gen: torch.Generator, scale: float = 1.0) -> dict[str, Any]:
    return {k: torch.randn(s, generator=gen) * scale for k, s in SHAPES.items()}


def _clone(coefs: dict[str, Any]) -> dict[str, Any]:
    return {k: v.clone() for k, v in coefs.items()}


def _assert_equal(got: dict[str, Any], expected: dict[str, Any]) -> None:
    assert list(got) == list(expected)
    for key, value in expected.items():
        np.testing.assert_allclose(got[key].numpy(), value.numpy(), rtol=2e-6, atol=1e-7)


def test_torch_vectors_get_the_torch_backend() -> None:
    assert isinstance(backend_for(TorchVector), TorchBackend)


@pytest.mark.parametrize("label", sorted(STEPPED))
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_torch_step_equals_generic_step(label: str, seed: int) -> None:
    module = OptiModule.from_specs(label.split(" ")[0], STEPPED[label])
    assert module.step is not None
    gen = torch.Generator().manual_seed(seed)
    states = [_tensors(gen).copy() for _ in module.state_names]
    for state in states:  # second moments and maxima are non-negative
        for key, value in state.items():
            state[key] = value.abs() if len(states) > 1 or label == "adagrad" else value
    grads = _tensors(gen, scale=3.0)
    hyper = module.hyper()
    generic = _generic()
    fast = backend_for(TorchVector)
    want_states, want = generic.apply(module.step, tuple(map(_clone, states)), _clone(grads), hyper)
    got_states, got = fast.apply(module.step, tuple(map(_clone, states)), _clone(grads), hyper)
    _assert_equal(got, want)
    for got_state, want_state in zip(got_states, want_states, strict=True):
        _assert_equal(got_state, want_state)


@pytest.mark.parametrize("seed", [0, 1])
def test_torch_operators_equal_generic_operators(seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    a, b, c = (_tensors(gen) for _ in range(3))

    def formulas(x: Arrays, y: Arrays, z: Arrays) -> list[Arrays]:
        return [
            x + y,
            x - 2.0,
            2.0 - x,
            x * y,
            3.0 / (z * z + 1.0),
            -x,
            (y * y).sqrt(),
            x.sign(),
            x.maximum(y),
            x.maximum(0.5),
            x / (x.norms() / 0.5).maximum(1.0),
            x.clip_each(0.5),
            x.clip_each(100.0),
            x.clip_all(2.0),
            x.clip_all(100.0),
            x.ewma(y, 0.9),
            x.ewma_squares(y, 0.99),
            (x * x).yogi_ewma(y * y, 0.99),
            x.axpy(0.9, y),
            x.addcmul(y, z, -0.5),
            x.adaptive_scale(z * z, 1e-7),
            x.adaptive_scale(z * z, 1e-3, 0.1, 0.01),
        ]

    def run(backend: Backend) -> list[dict[str, Any]]:
        x, y, z = (backend.arrays(_clone(t)) for t in (a, b, c))
        out = [f.data for f in formulas(x, y, z)]
        acc = backend.arrays(_clone(a))
        acc += backend.arrays(_clone(b))
        acc *= 2.0
        acc -= 1.0
        acc /= backend.arrays(_clone(c))
        return [*out, acc.data, {"norm": x.norm()}]

    for got, want in zip(run(backend_for(TorchVector)), run(_generic()), strict=True):
        _assert_equal(got, want)


def test_torch_in_place_assignment_leaves_its_operand_alone() -> None:
    gen = torch.Generator().manual_seed(3)
    a, b = _tensors(gen), _tensors(gen)
    backend = backend_for(TorchVector)
    before = _clone(b)
    acc = backend.arrays(_clone(a))
    acc += backend.arrays(b)
    _assert_equal(b, before)

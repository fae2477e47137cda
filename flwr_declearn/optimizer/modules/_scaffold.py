"""SCAFFOLD (Karimireddy et al., 2020) as a client/server pair of modules.

Control variates follow the paper's option II. Notation: `c_i` is client
i's control variate, `c` the server's (the average of the last known `c_i`
of every client seen so far, so that clients may skip rounds).

Exchanges (aux_name "scaffold"):

- server -> every client: `{"state": c}` (`0.0` before any client reported);
- client i -> server: `{"delta": c_i_new - c_i}` after its local steps.
"""

from __future__ import annotations

import numbers
import warnings
from typing import Any, ClassVar

from flwr_declearn.model.api import Vector
from flwr_declearn.optimizer._arrays import Arrays, Hyper
from flwr_declearn.optimizer._checks import required_state, vector_or_none
from flwr_declearn.optimizer.modules._api import OptiModule

__all__ = ["ScaffoldClientModule", "ScaffoldServerModule"]


def _aux_vector(aux_var: Any, key: str, owner: str) -> Vector | None:
    """Return `aux_var[key]` as a Vector, or None for a conventional zero."""
    if not isinstance(aux_var, dict):
        raise TypeError(f"{owner}: aux-vars must be a dict, not {type(aux_var).__qualname__}.")
    if key not in aux_var:
        raise KeyError(f"{owner}: missing aux-var '{key}' (received {sorted(aux_var)}).")
    value = aux_var[key]
    if isinstance(value, Vector):
        return value
    if isinstance(value, numbers.Real) and not isinstance(value, bool) and value == 0:
        return None
    raise TypeError(
        f"{owner}: aux-var '{key}' must be a Vector (or 0.0), not {type(value).__qualname__}."
    )


def scaffold_client(states: tuple[Arrays, ...], g: Arrays, h: Hyper) -> Any:
    acc, delta = states
    acc += g  # in place where the backend can: the running sum is private to the module
    return (acc, delta), g - delta


class ScaffoldClientModule(OptiModule):
    """Client side of SCAFFOLD: correct gradients by `c - c_i`, update `c_i` (option II).

    Over a round of K local steps with raw gradients `g_k`:

        out_k = g_k - (c_i - c)
        c_i_new = (1 / K) * sum_k g_k

    which equals the paper's option II, `c_i - c + (x - y_i) / (K * lr)`,
    when the learning rate is constant over the round. Use it first among
    the client's modules (it must see raw gradients).

    A client rebuilt every round restores `c_i` with `set_state` (before or
    after `process_aux_var`: a `c` received this way is never overwritten by
    the saved one, which only serves if no fresh `c` arrives).
    """

    name: ClassVar[str] = "scaffold-client"
    aux_name: ClassVar[str | None] = "scaffold"
    step = staticmethod(scaffold_client)
    state_names = ("_grads", "delta")  # sum of the round's raw gradients; c_i - c (None: 0)

    def __init__(self) -> None:
        self.state: Vector | None = None  # c_i (None: zero)
        self.sglob: Vector | None = None  # c (None: zero)
        self._sglob_received = False
        self.delta: Vector | None = None
        self._grads: Vector | None = None
        self._steps = 0

    def advance(self, states: tuple[Vector, ...]) -> None:
        super().advance(states)
        self._steps += 1

    def collect_aux_var(self) -> dict[str, Any] | None:
        """Set `c_i` to the mean of the round's raw gradients; return `{"delta": c_i_new - c_i}`.

        Returns None (with a RuntimeWarning) if no step was run since the last
        `process_aux_var`.
        """
        if not self._steps or self._grads is None:
            warnings.warn(
                "ScaffoldClientModule: no training step since the last aux-vars were "
                "processed; no control-variate update is sent.",
                RuntimeWarning,
                stacklevel=2,
            )
            return None
        state = self._grads / self._steps
        update = state if self.state is None else state - self.state
        self.state = state
        return {"delta": update}

    def process_aux_var(self, aux_var: dict[str, Any]) -> None:
        """Receive `{"state": c}` from the server; set the correction to `c_i - c`."""
        self.sglob = _aux_vector(aux_var, "state", type(self).__name__)
        self._sglob_received = True
        self._reset_correction()

    def _reset_correction(self) -> None:
        if self.sglob is None:
            self.delta = self.state
        elif self.state is None:
            self.delta = -self.sglob
        else:
            self.delta = self.state - self.sglob
        self._grads, self._steps = None, 0

    def get_state(self) -> dict[str, Any]:
        return {"state": self.state, "sglob": self.sglob}

    def set_state(self, state: dict[str, Any]) -> None:
        owner = type(self).__name__
        local, sglob = required_state(state, ("state", "sglob"), owner)
        self.state = vector_or_none(local, "state", owner)
        sglob = vector_or_none(sglob, "sglob", owner)
        if not self._sglob_received:
            self.sglob = sglob
        self._reset_correction()


class ScaffoldServerModule(OptiModule):
    """Server side of SCAFFOLD: keep `c`, the mean of the clients' last known `c_i`.

    The module sums clients' updates `c_i_new - c_i` into `S = sum_i c_i`
    over every client seen so far (N of them), and sends `c = S / N`:

        on {client_id: {"delta": d_i}}:  S += sum_i d_i ; seen |= client ids
        send: {"state": S / N}           (0.0 while N == 0)

    `run` leaves gradients unchanged: with server learning rate 1 on the
    averaged pseudo-gradient, the paper's global update is FedAvg's.
    """

    name: ClassVar[str] = "scaffold-server"
    aux_name: ClassVar[str | None] = "scaffold"

    def __init__(self) -> None:
        self.s_state: Vector | None = None
        self.clients: set[str] = set()

    def run(self, gradients: Vector) -> Vector:
        return gradients

    def collect_aux_var(self) -> dict[str, Any]:
        if not self.clients or self.s_state is None:
            return {"state": 0.0}
        return {"state": self.s_state / len(self.clients)}

    def process_aux_var(self, aux_var: dict[str, Any]) -> None:
        """Receive `{client_id: {"delta": c_i_new - c_i}}` from the clients of a round."""
        owner = type(self).__name__
        if not isinstance(aux_var, dict):
            raise TypeError(
                f"{owner}: expected {{client_id: aux-vars}}, not {type(aux_var).__qualname__}."
            )
        deltas = []
        for client, client_aux in aux_var.items():
            if not isinstance(client, str):
                raise TypeError(f"{owner}: client ids must be str, not {client!r}.")
            delta = _aux_vector(client_aux, "delta", f"{owner} (client '{client}')")
            if delta is not None:
                deltas.append(delta)
        for delta in deltas:
            self.s_state = delta if self.s_state is None else self.s_state + delta
        self.clients.update(aux_var)

    def get_state(self) -> dict[str, Any]:
        return {"s_state": self.s_state, "clients": sorted(self.clients)}

    def set_state(self, state: dict[str, Any]) -> None:
        owner = type(self).__name__
        s_state, clients = required_state(state, ("s_state", "clients"), owner)
        if not isinstance(clients, list | tuple | set) or not all(
            isinstance(c, str) for c in clients
        ):
            raise TypeError(f"{owner}: state 'clients' must be a list of str.")
        self.s_state = vector_or_none(s_state, "s_state", owner)
        self.clients = set(clients)

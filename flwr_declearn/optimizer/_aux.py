"""Routing of auxiliary variables between a server Optimizer and its clients' Optimizers.

Shapes of the data (`aux_name` is the routing key of a module pair):

- client `Optimizer.collect_aux_var()` -> `{aux_name: dict}`;
- server `Optimizer.collect_aux_var()` -> `{aux_name: dict | PerClientAuxVar}`,
  turned into one payload per client by `split_server_aux_var`;
- client payloads are regrouped by `merge_client_aux_var` into
  `{aux_name: {client_id: dict}}` for the server's `process_aux_var`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["PerClientAuxVar", "merge_client_aux_var", "split_server_aux_var"]


def _check_client(cid: Any, value: Any, what: str) -> None:
    """Raise a TypeError unless `cid` is a str and `value` (`what`, of that client) a dict."""
    if not isinstance(cid, str):
        raise TypeError(f"Client ids must be str, not {cid!r}.")
    if not isinstance(value, Mapping):
        raise TypeError(f"{what} of client '{cid}' must be a dict, not {type(value).__qualname__}.")


class PerClientAuxVar(dict[str, dict[str, Any]]):
    """Server aux-vars with distinct values per client: `{client_id: aux_dict}`.

    Parameters
    ----------
    values:
        Mapping from client id (str) to that client's aux-var dict.
    default:
        Aux-var dict for clients absent from `values` (e.g. first-time
        participants); None makes an absent client an error.
    """

    def __init__(
        self,
        values: Mapping[str, dict[str, Any]] | None = None,
        default: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(values or {})
        for key, val in self.items():
            _check_client(key, val, "PerClientAuxVar value")
        if default is not None and not isinstance(default, dict):
            raise TypeError(f"PerClientAuxVar default must be a dict or None, not {default!r}.")
        self.default = default

    def for_client(self, client_id: str) -> dict[str, Any]:
        """Return the aux-vars for `client_id` (the default if it is not listed).

        Raises
        ------
        KeyError
            If `client_id` is not listed and there is no default.
        """
        if client_id in self:
            return dict(self[client_id])
        if self.default is None:
            raise KeyError(f"No auxiliary variables for client '{client_id}' and no default.")
        return dict(self.default)

    def __repr__(self) -> str:
        return f"PerClientAuxVar({dict.__repr__(self)}, default={self.default!r})"


def split_server_aux_var(
    aux_by_name: Mapping[str, dict[str, Any] | None], client_ids: Iterable[str]
) -> dict[str, dict[str, dict[str, Any]]]:
    """Turn a server Optimizer's aux-vars into one `{aux_name: dict}` payload per client.

    A plain dict is copied (shallowly) to every client, a `PerClientAuxVar`
    gives each client its own entry, None is dropped. Every client in
    `client_ids` gets a payload, possibly empty.

    Raises
    ------
    KeyError
        If a `PerClientAuxVar` has no entry (and no default) for a client.
    TypeError
        If an aux-var is neither None nor a dict, or a client id is not a str.
    """
    clients = list(client_ids)
    for cid in clients:
        if not isinstance(cid, str):
            raise TypeError(f"Client ids must be str, not {cid!r}.")
    out: dict[str, dict[str, dict[str, Any]]] = {cid: {} for cid in clients}
    for name, aux in aux_by_name.items():
        if aux is None:
            continue
        if isinstance(aux, PerClientAuxVar):
            for cid in clients:
                try:
                    out[cid][name] = aux.for_client(cid)
                except KeyError as exc:
                    raise KeyError(f"Aux-vars '{name}': {exc.args[0]}") from None
        elif isinstance(aux, dict):
            for cid in clients:
                out[cid][name] = dict(aux)
        else:
            raise TypeError(
                f"Aux-vars '{name}' must be a dict, a PerClientAuxVar or None, "
                f"not {type(aux).__qualname__}."
            )
    return out


def merge_client_aux_var(
    aux_by_client: Mapping[str, Mapping[str, dict[str, Any]]],
) -> dict[str, dict[str, dict[str, Any]]]:
    """Regroup clients' `{client_id: {aux_name: dict}}` into `{aux_name: {client_id: dict}}`.

    Raises
    ------
    TypeError
        If a client id is not a str, or a client's aux-vars are not dicts.
    """
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for cid, payload in aux_by_client.items():
        _check_client(cid, payload, "Aux-vars")
        for name, aux in payload.items():
            if not isinstance(aux, dict):
                raise TypeError(
                    f"Aux-vars '{name}' of client '{cid}' must be a dict, "
                    f"not {type(aux).__qualname__}."
                )
            out.setdefault(name, {})[cid] = aux
    return out

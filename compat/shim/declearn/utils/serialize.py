"""Shim: declearn's `declearn.utils.serialize` over flwr_declearn's JSON codec.

MessagePack serialization is not carried by flwr_declearn (Flower records
carry arrays natively): its functions are placeholders that raise.
"""

import json
from typing import Any

from declearn._shim import missing
from flwr_declearn.utils import from_jsonable, to_jsonable

__all__ = ["json_deserialize", "json_serialize", "msgpack_deserialize", "msgpack_serialize"]


def json_serialize(obj: Any, **kwargs: Any) -> str:
    """Dump `obj` to a JSON string, arrays and Vectors included."""
    return json.dumps(to_jsonable(obj), **kwargs)


def json_deserialize(string: str, **kwargs: Any) -> Any:
    """Load an object dumped by `json_serialize`."""
    return from_jsonable(json.loads(string, **kwargs))


msgpack_serialize = missing("declearn.utils.serialize.msgpack_serialize")
msgpack_deserialize = missing("declearn.utils.serialize.msgpack_deserialize")

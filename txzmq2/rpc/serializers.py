"""
Serializers: how RPC values become the payload frame and back.

Only plain data crosses the wire: nil, booleans, integers, floats, strings, byte strings
(msgpack only), arrays and maps. Nothing received is unpickled, evaluated or turned into an
object of a class named by the sender, so a hostile peer can make a call fail, never run
code.
"""

from __future__ import annotations

import gc
import json
from typing import Any, Protocol, runtime_checkable

import msgpack

__all__ = ["BUILTIN_SERIALIZERS", "JSONSerializer", "MsgpackSerializer", "Serializer"]


@runtime_checkable
class Serializer(Protocol):
    """
    What :class:`~txzmq2.rpc.RPCServer` and :class:`~txzmq2.rpc.RPCClient` need to encode
    payloads. Both ends of a call must use serializers of the same :attr:`name`.
    """

    name: str
    """The token naming this encoding in every message header (ASCII, no spaces)."""

    def dumps(self, value: Any) -> bytes:
        """Encode ``value``; raise (any exception) when it cannot be encoded."""

    def loads(self, data: bytes) -> Any:
        """Decode ``data``; raise (any exception) when it is not a valid encoding."""


def _refuseExtension(code: int, data: bytes) -> Any:
    raise ValueError(f"msgpack extension type {code} is not accepted")


class MsgpackSerializer:
    """
    msgpack (the default): compact, and carries ``bytes`` as well as ``str``.

    Extension types are refused on decoding (the one exception is msgpack's own timestamp,
    type -1, which decodes to an inert ``msgpack.Timestamp``). Map keys must be strings or
    byte strings: msgpack's ``strict_map_key`` rule, which keeps a hostile peer from filling a
    dict with keys whose hashes collide. Tuples encode as arrays and decode as lists.
    """

    name = "msgpack"

    def __init__(self) -> None:
        # One packer, reused: the reactor thread is the only caller, and packb would build a
        # new one for every value. On an error the packer resets its buffer itself.
        self._pack = msgpack.Packer(use_bin_type=True, datetime=False).pack

    def dumps(self, value: Any) -> bytes:
        """Encode ``value``; ``TypeError``, ``ValueError`` or ``OverflowError`` when it cannot."""
        data: bytes = self._pack(value)
        return data

    def loads(self, data: bytes) -> Any:
        """Decode one msgpack value; ``ValueError`` (or a subclass) when ``data`` is not one."""
        # A payload of many tiny containers (a hostile one: 400 KB of nested empty arrays is
        # 400,000 lists) makes the cyclic collector run over and over while they are built:
        # 270 ms instead of 80. Decoding makes no cycles, so it runs with the collector off.
        collecting = gc.isenabled()
        gc.disable()
        try:
            return msgpack.unpackb(data, raw=False, ext_hook=_refuseExtension)
        finally:
            if collecting:
                gc.enable()


def _refuseConstant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


class JSONSerializer:
    """
    JSON (UTF-8 text), for peers that have no msgpack. It cannot carry ``bytes``, NaN or
    infinities (encoding them fails); tuples become arrays, and map keys become strings
    (``json`` module rules).
    """

    name = "json"

    def __init__(self) -> None:
        self._encode = json.JSONEncoder(
            ensure_ascii=False, allow_nan=False, separators=(",", ":")
        ).encode

    def dumps(self, value: Any) -> bytes:
        """Encode ``value``; ``TypeError`` or ``ValueError`` when it cannot."""
        return self._encode(value).encode("utf-8")

    def loads(self, data: bytes) -> Any:
        """Decode UTF-8 JSON text; raises (``ValueError``, ``RecursionError``) when it is not."""
        return json.loads(data.decode("utf-8"), parse_constant=_refuseConstant)


BUILTIN_SERIALIZERS: dict[str, type[MsgpackSerializer] | type[JSONSerializer]] = {
    MsgpackSerializer.name: MsgpackSerializer,
    JSONSerializer.name: JSONSerializer,
}
"""The serializers every client knows by name, so it can read an error reply from a
server using the other one."""

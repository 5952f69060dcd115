"""
The RPC wire format, shared by both ends. ``docs/rpc.md`` describes it for implementers in
other languages; this module is the reference.

After the request-reply envelope (everything up to and including the empty delimiter frame,
which the server returns untouched), every RPC message is exactly two frames::

    header    b"txzmq2-rpc/<version> <kind> <serializer>"   ASCII, single spaces
    payload   the serializer's encoding of the body

    kind     sent by   body
    call     client    [method, args, kwargs]   (string, array, map with string keys)
    notify   client    the same; never answered
    reply    server    the method's result
    error    server    {"type": string, "message": string, "traceback": string or nil}
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

from txzmq2._echo import boundedRepr, describeError
from txzmq2.errors import RemoteError, ZmqError, ZmqProtocolError
from txzmq2.rpc.serializers import BUILTIN_SERIALIZERS, Serializer

PROTOCOL = "txzmq2-rpc"
VERSION = "1"

CALL = "call"
NOTIFY = "notify"
REPLY = "reply"
ERROR = "error"

# The remoteType of each refusal: a call the server answers with an error without running
# a method (docs/rpc.md lists them).
NO_SUCH_METHOD = "NoSuchMethod"
BAD_ARGUMENTS = "BadArguments"
BAD_MESSAGE = "BadMessage"
BAD_PAYLOAD = "BadPayload"
BAD_SERIALIZER = "BadSerializer"
BAD_VERSION = "BadVersion"
UNSERIALIZABLE_RESULT = "UnserializableResult"

_MAX_HEADER = 128
"""Longer first frames are not headers."""


def header(kind: str, serializerName: str, version: str = VERSION) -> bytes:
    """The header frame of a message of ``kind`` encoded with ``serializerName``."""
    return f"{PROTOCOL}/{version} {kind} {serializerName}".encode("ascii")


def checkSerializerName(name: str) -> None:
    """
    :raises ValueError: when ``name`` cannot be a header token (not ASCII, or has spaces).
    """
    if not name or not name.isascii() or not name.isprintable() or " " in name:
        raise ValueError(f"a serializer name is printable ASCII without spaces, not {name!r}")


class Header(NamedTuple):
    """A parsed header frame."""

    version: str
    kind: str
    serializer: str


def parseHeader(frame: bytes) -> Header | None:
    """Read a header frame of any version; ``None`` when ``frame`` is not one."""
    if len(frame) > _MAX_HEADER or not frame.isascii():
        return None
    tokens = frame.decode("ascii").split(" ")
    if len(tokens) != 3:
        return None
    protocol, slash, version = tokens[0].partition("/")
    if protocol != PROTOCOL or not slash or not version:
        return None
    return Header(version, tokens[1], tokens[2])


class Refusal(ZmqError):
    """
    A request refused before any method ran; the server answers it (if it is a call) with
    an error reply of this ``remoteType``.
    """

    def __init__(self, remoteType: str, message: str) -> None:
        super().__init__(remoteType, message)
        self.remoteType = remoteType
        self.message = message


def decodeCall(payload: bytes, serializer: Serializer) -> tuple[str, list[Any], dict[str, Any]]:
    """
    Decode the body of a call or notify.

    :raises Refusal: ``BadPayload`` when the payload does not decode, ``BadMessage`` when it
        is not ``[method, args, kwargs]``.
    """
    try:
        body = serializer.loads(payload)
    except Exception as error:
        raise Refusal(
            BAD_PAYLOAD,
            # The decoder's message may quote the payload (a custom serializer's may).
            f"the payload is not valid {serializer.name}: {type(error).__name__}: "
            + describeError(error),
        ) from None
    if type(body) is list and len(body) == 3:
        method, args, kwargs = body
        if type(method) is str and type(args) is list and type(kwargs) is dict:
            if kwargs and not all(type(key) is str for key in kwargs):
                raise Refusal(BAD_MESSAGE, "keyword argument names must be strings")
            return method, args, kwargs
    raise Refusal(
        BAD_MESSAGE,
        "the body of a call is [method (string), args (array), kwargs (map)], not "
        + boundedRepr(body),
    )


def diagnose(parts: Sequence[bytes], serializerName: str) -> tuple[Refusal, bool]:
    """
    Say why a request whose frames are not a well-formed call or notify is refused.

    :return: the refusal, and whether it may be answered: a notify is never answered.
    """
    parsed = parseHeader(parts[0]) if parts else None
    if parsed is None:
        first = boundedRepr(parts[0]) if parts else "nothing"
        refusal = Refusal(BAD_MESSAGE, f"not a {PROTOCOL} header: {first}")
        return refusal, True
    answerable = parsed.kind != NOTIFY
    if parsed.version != VERSION:
        refusal = Refusal(
            BAD_VERSION,
            f"this server speaks {PROTOCOL} version {VERSION}, not {boundedRepr(parsed.version)}",
        )
    elif parsed.kind not in (CALL, NOTIFY):
        refusal = Refusal(
            BAD_MESSAGE, f"a server takes call or notify, not {boundedRepr(parsed.kind)}"
        )
    elif parsed.serializer != serializerName:
        refusal = Refusal(
            BAD_SERIALIZER,
            f"this server uses {serializerName}, not {boundedRepr(parsed.serializer)}",
        )
    elif len(parts) != 2:
        refusal = Refusal(
            BAD_MESSAGE,
            f"expected 2 frames after the envelope (header, payload), not {len(parts)}",
        )
    else:
        # A header that reads like one of the server's own is one of them: the server
        # takes those before it ever asks for a diagnosis.
        refusal = Refusal(BAD_MESSAGE, f"unexpected header {boundedRepr(parts[0])}")
    return refusal, answerable


def encodeError(
    serializer: Serializer, remoteType: str, message: str, traceback: str | None
) -> bytes:
    """The payload of an error reply."""
    return serializer.dumps({"type": remoteType, "message": message, "traceback": traceback})


def decodeError(payload: bytes, serializer: Serializer) -> RemoteError | ZmqProtocolError:
    """The exception an error reply stands for."""
    try:
        body = serializer.loads(payload)
    except Exception as error:
        return ZmqProtocolError(
            f"an error reply is not valid {serializer.name}: {describeError(error)}"
        )
    if type(body) is dict:
        remoteType, message = body.get("type"), body.get("message")
        traceback = body.get("traceback")
        if type(remoteType) is str and type(message) is str:
            if traceback is None or type(traceback) is str:
                return RemoteError(remoteType, message, traceback)
    return ZmqProtocolError(
        f"an error reply is a map of type, message, traceback; not {boundedRepr(body)}"
    )


def unexpectedReply(frames: Sequence[bytes], serializer: Serializer) -> Exception:
    """
    The exception for a reply that matched neither of the client's own reply headers: an
    error reply in the other built-in serializer, or a protocol error.
    """
    if len(frames) != 2:
        return ZmqProtocolError(
            f"a reply has 2 frames after the envelope (header, payload), not {len(frames)}"
        )
    parsed = parseHeader(frames[0])
    if parsed is None:
        return ZmqProtocolError(
            f"the reply has no {PROTOCOL} header (is the server an RPC server?): "
            + boundedRepr(frames[0])
        )
    if parsed.version != VERSION:
        return ZmqProtocolError(
            f"the reply is {PROTOCOL} version {boundedRepr(parsed.version)}; "
            f"this client speaks {VERSION}"
        )
    if parsed.kind not in (REPLY, ERROR):
        return ZmqProtocolError(
            f"a reply is of kind reply or error, not {boundedRepr(parsed.kind)}"
        )
    if parsed.kind == ERROR:
        # A refusal from a server using another serializer (BadSerializer, typically) is
        # still worth reading: it says what is wrong.
        other = BUILTIN_SERIALIZERS.get(parsed.serializer)
        if other is not None:
            return decodeError(frames[1], other())
    return ZmqProtocolError(
        f"the server encodes with {boundedRepr(parsed.serializer)}, this client with "
        f"{serializer.name!r}"
    )

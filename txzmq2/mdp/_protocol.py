"""
The frames of 7/MDP (Majordomo Protocol 0.1) and 8/MMI, as the RFCs define them: constants,
builders, and parsers that turn a frame list into a command or say why it is not one.

Every message on the broker's side of the wire starts with an empty frame and a protocol
header (``MDPC01`` for clients, ``MDPW01`` for workers); the ROUTER's identity frame in front
of it is not part of the command and never reaches these functions.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from txzmq2.errors import ZmqProtocolError

__all__ = [
    "CLIENT",
    "DEFAULT_HEARTBEAT_INTERVAL",
    "DEFAULT_HEARTBEAT_LIVENESS",
    "DISCONNECT",
    "HEARTBEAT",
    "MMI_FOUND",
    "MMI_NAMESPACE",
    "MMI_NOT_FOUND",
    "MMI_NOT_IMPLEMENTED",
    "MMI_SERVICE",
    "READY",
    "REPLY",
    "REQUEST",
    "WORKER",
    "Malformed",
    "WorkerCommand",
    "clientMessage",
    "commandName",
    "parseClientMessage",
    "parseWorkerCommand",
    "serviceName",
    "workerCommand",
]

CLIENT = b"MDPC01"
"""Frame 1 of every MDP/Client command (MDP/Client v0.1)."""
WORKER = b"MDPW01"
"""Frame 1 of every MDP/Worker command (MDP/Worker v0.1)."""

# MDP/Worker command bytes (frame 2).
READY = b"\x01"
REQUEST = b"\x02"
REPLY = b"\x03"
HEARTBEAT = b"\x04"
DISCONNECT = b"\x05"

_COMMAND_NAMES = {
    READY: "READY",
    REQUEST: "REQUEST",
    REPLY: "REPLY",
    HEARTBEAT: "HEARTBEAT",
    DISCONNECT: "DISCONNECT",
}

MMI_NAMESPACE = b"mmi."
"""8/MMI: services in this namespace are the broker's own; workers may not register them."""
MMI_SERVICE = b"mmi.service"
"""8/MMI: is at least one worker registered for the service named in the request body?"""
MMI_FOUND = b"200"
MMI_NOT_FOUND = b"404"
MMI_NOT_IMPLEMENTED = b"501"

# 7/MDP asks for "regular and agreed-upon intervals" and a liveness of "usually 3-5" without
# fixing numbers; these are the values of the RFC's reference implementation (the Guide).
DEFAULT_HEARTBEAT_INTERVAL = 2.5
"""Seconds between heartbeats."""
DEFAULT_HEARTBEAT_LIVENESS = 3
"""Heartbeat intervals of silence after which a peer is taken for disconnected."""


class Malformed(ZmqProtocolError):
    """A frame list that is not a valid MDP command; ``str()`` says what is wrong with it."""


class WorkerCommand(NamedTuple):
    """
    One MDP/Worker command, parsed.

    :ivar command: the command byte (:data:`READY` ... :data:`DISCONNECT`).
    :ivar service: the service name of a READY, else ``b""``.
    :ivar client: the client address of a REQUEST or REPLY, else ``b""``.
    :ivar body: the body frames of a REQUEST or REPLY (at least one), else empty.
    """

    command: bytes
    service: bytes
    client: bytes
    body: list[bytes]


def commandName(command: bytes) -> str:
    """The RFC's name of a command byte, for log lines (``"0x07"`` for an unknown one)."""
    return _COMMAND_NAMES.get(command) or (f"0x{command.hex()}" if command else "an empty frame")


def serviceName(service: bytes | str) -> bytes:
    """
    A service name as it travels: ``str`` is encoded as UTF-8.

    :raises ValueError: for an empty name (the RFC's service name is a printable string).
    :raises TypeError: for anything but ``bytes`` or ``str``.
    """
    if isinstance(service, str):
        service = service.encode()
    elif not isinstance(service, bytes):
        raise TypeError(f"a service name is bytes or str, not {type(service).__name__}")
    if not service:
        raise ValueError("a service name cannot be empty")
    return service


def clientMessage(service: bytes, body: Sequence[bytes]) -> list[bytes]:
    """A REQUEST (client to broker) or REPLY (broker to client): the two look the same."""
    return [b"", CLIENT, service, *body]


def workerCommand(command: bytes, *frames: bytes) -> list[bytes]:
    """An MDP/Worker command: ``[b"", MDPW01, command, *frames]``."""
    return [b"", WORKER, command, *frames]


def parseClientMessage(frames: Sequence[bytes]) -> tuple[bytes, list[bytes]]:
    """
    Check an MDP/Client REQUEST or REPLY (4 or more frames) and take it apart.

    :return: the service name and the body frames (at least one).
    :raises Malformed: when the frames are not such a command.
    """
    if len(frames) < 4:
        raise Malformed(f"an MDP/Client command has 4 or more frames, not {len(frames)}")
    if frames[0] != b"" or frames[1] != CLIENT:
        raise Malformed("an MDP/Client command starts with an empty frame and MDPC01")
    if not frames[2]:
        raise Malformed("the service name is empty")
    return frames[2], list(frames[3:])


def parseWorkerCommand(frames: Sequence[bytes]) -> WorkerCommand:
    """
    Check an MDP/Worker command (either direction) and take it apart. Only the shape is
    checked here; whether the command is expected from that peer now is the caller's call.

    :raises Malformed: when the frames are not an MDP/Worker command.
    """
    if len(frames) < 3 or frames[0] != b"" or frames[1] != WORKER:
        raise Malformed("an MDP/Worker command starts with an empty frame, MDPW01, a command")
    command = frames[2]
    name = commandName(command)
    if command in (HEARTBEAT, DISCONNECT):
        if len(frames) != 3:
            raise Malformed(f"{name} has 3 frames, not {len(frames)}")
        return WorkerCommand(command, b"", b"", [])
    if command == READY:
        if len(frames) != 4:
            raise Malformed(f"READY has 4 frames, not {len(frames)}")
        if not frames[3]:
            raise Malformed("READY names an empty service")
        return WorkerCommand(command, frames[3], b"", [])
    if command in (REQUEST, REPLY):
        # Precisely one client address frame, then the empty delimiter, then the body.
        if len(frames) < 6:
            raise Malformed(f"{name} has 6 or more frames, not {len(frames)}")
        if frames[4] != b"":
            raise Malformed(f"{name} has no empty frame after the client address")
        return WorkerCommand(command, b"", frames[3], list(frames[5:]))
    raise Malformed(f"unknown command {name}")

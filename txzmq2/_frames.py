"""
Frames and messages: the types ``send`` takes and receivers get, and turning what a user passed
into a list of ``bytes`` frames that belongs to us (it may wait in a queue after ``send``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeAlias, cast

import zmq

__all__ = ["Frame", "Message", "MessageLike", "ownFrames", "toFrames"]

Frame: TypeAlias = "bytes | bytearray | memoryview"
"""One frame as accepted by ``send``; frames received are always ``bytes``."""
Message: TypeAlias = "list[bytes]"
"""A whole multipart message as received: its frames, in order."""
MessageLike: TypeAlias = "Frame | Sequence[Frame]"
"""What ``send`` accepts: one frame, or a sequence of frames."""


def toFrames(message: MessageLike) -> list[bytes]:
    """
    Normalise what a user passed to ``send`` into a fresh list of ``bytes`` frames.

    Mutable buffers (``bytearray``, ``memoryview``) are copied here: the frame may wait in
    the outbound queue, or go to libzmq without a copy, after ``send`` has returned and the
    caller has reused its buffer.

    :raises TypeError: for ``str`` (ZeroMQ carries bytes; encode first) or non-bytes frames.
    :raises ValueError: for an empty sequence (a message has at least one frame).
    """
    if type(message) is bytes:
        return [message]
    if isinstance(message, (bytes, bytearray, memoryview)):
        return [bytes(message)]
    if isinstance(cast(object, message), str):
        raise TypeError("ZeroMQ frames are bytes, not str: encode the message first")
    return ownFrames(list(message))


def ownFrames(frames: list[Any]) -> list[bytes]:
    """
    :func:`toFrames` for a list the caller has just built and hands over: its frames are
    checked, and converted to ``bytes`` where needed, in place.
    """
    for frame in frames:
        if type(frame) is not bytes:
            break
    else:
        if frames:
            return frames  # the hot path: all bytes already
    if not frames:
        raise ValueError("a message needs at least one frame")
    for index, frame in enumerate(frames):
        if type(frame) is not bytes:
            if isinstance(frame, zmq.Frame):
                frames[index] = frame.bytes  # txZMQ passed these through
            elif isinstance(frame, (bytes, bytearray, memoryview)):
                frames[index] = bytes(frame)
            else:
                raise TypeError(f"ZeroMQ frames are bytes, not {type(frame).__name__}")
    return frames

"""
Which path the hot loops take: the native extension (``txzmq2._speedups``, compiled when
txzmq2 was installed where a C compiler was) or the pure-Python code beside it.

The native path is used when the extension imports, unless ``TXZMQ2_PURE_PYTHON=1`` is in
the environment when txzmq2 is imported (the switch the test suite uses to run on both
paths). :data:`reason` says why the pure path was chosen.
"""

from __future__ import annotations

import importlib
import os
from typing import TYPE_CHECKING, Any, Protocol

import zmq

if TYPE_CHECKING:
    from txzmq2._frames import Message

__all__ = [
    "ENVIRONMENT_VARIABLE",
    "FrameMetadata",
    "NativeSocket",
    "native",
    "nativeSocket",
    "reason",
]

ENVIRONMENT_VARIABLE = "TXZMQ2_PURE_PYTHON"
"""Set to ``1`` to force the pure-Python path."""


# What this code calls on the extension's NativeSocket (the NativeSocket protocol below).
_NEEDED = ("get", "readBatch", "sendFrames", "sendMany", "sendOne")


def _load() -> tuple[Any, str | None]:
    if os.environ.get(ENVIRONMENT_VARIABLE, "") not in ("", "0"):
        return None, f"{ENVIRONMENT_VARIABLE} is set"
    try:
        module = importlib.import_module("txzmq2._speedups")
    except ImportError as error:
        return None, f"the native extension does not import ({error})"
    # An editable install keeps the extension it was built with when the code moves on:
    # one from an older checkout would fail at every connection, so it is not used.
    missing = [name for name in _NEEDED if not hasattr(module.NativeSocket, name)]
    if missing:
        return None, (
            f"the native extension is older than this code (no NativeSocket.{missing[0]}): "
            "rebuild it (python setup.py build_ext --inplace, or reinstall)"
        )
    return module, None


_module, reason = _load()
native: bool = _module is not None
"""Whether the native path is in use."""


class FrameMetadata(Protocol):
    """A received frame's metadata, read as ``zmq.Frame.get`` reads it (``messageProperty``)."""

    def get(self, name: str) -> str: ...


class NativeSocket(FrameMetadata, Protocol):
    """What the engine and the connection call on the native path (``_speedups.pyx``)."""

    def readBatch(
        self,
        engine: object,
        connection: object,
        deliver: object,
        limit: int,
        deadline: float,
        probe: bool,
        count: int,
        longFrames: int,
    ) -> int | None: ...

    def sendFrames(self, frames: Message) -> None: ...

    def sendOne(self, frame: bytes) -> bool: ...

    def sendMany(self, messages: list[Any], index: int, outbound: Any) -> int: ...

    def events(self) -> int: ...


def nativeSocket(socket: zmq.Socket[Any]) -> NativeSocket | None:
    """``socket``'s native view, or None on the pure-Python path."""
    if _module is None:
        return None
    view: NativeSocket = _module.NativeSocket(socket)
    return view

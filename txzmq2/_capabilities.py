"""
What the installed pyzmq and libzmq can do: transports, security mechanisms, draft API.

Answered once per process (a loaded libzmq cannot change), from ``zmq.has()``, whose
answers differ between libzmq releases: 4.3.4 knows websockets only as ``"WS"``/``"WSS"``
in upper case, and no release answers for tcp, inproc, epgm or udp, which follow from
others here.
"""

from __future__ import annotations

import platform
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache

import zmq

import twisted
from txzmq2.errors import ZmqUnsupportedError

__all__ = ["ZmqCapabilities", "capabilities", "creatingSocketOfType"]

# Every transport txzmq2 knows, in the order ``txzmq2 info`` lists them.
TRANSPORTS = ("tcp", "ipc", "inproc", "ws", "wss", "pgm", "epgm", "norm", "tipc", "vmci", "udp")
# Every security mechanism libzmq knows.
MECHANISMS = ("null", "plain", "curve", "gssapi")
# The draft socket types, by name (pyzmq defines the constants with or without the draft API).
_DRAFT_TYPES = {
    int(getattr(zmq, name)): name
    for name in (
        "SERVER",
        "CLIENT",
        "RADIO",
        "DISH",
        "GATHER",
        "SCATTER",
        "DGRAM",
        "PEER",
        "CHANNEL",
    )
    if hasattr(zmq, name)
}


@dataclass(frozen=True)
class ZmqCapabilities:
    """
    Versions, and what this process's libzmq (through pyzmq) supports.

    :ivar txzmq2: txzmq2's version.
    :ivar pyzmq: pyzmq's version.
    :ivar libzmq: the version of the libzmq pyzmq is linked with.
    :ivar twisted: Twisted's version.
    :ivar python: the Python version.
    :ivar transports: the transports that libzmq has, from ``tcp``, ``ipc``, ``inproc``,
        ``ws``, ``wss``, ``pgm``, ``epgm``, ``norm``, ``tipc``, ``vmci`` and ``udp`` (tipc
        also needs the kernel's TIPC module loaded; udp carries only the draft RADIO and
        DISH types, so it is listed only with the draft API).
    :ivar mechanisms: the security mechanisms that libzmq has, from ``null``, ``plain``,
        ``curve`` and ``gssapi``.
    :ivar draftAPI: whether the draft socket types (CLIENT, SERVER, RADIO, DISH, SCATTER,
        GATHER) can be used: libzmq built with drafts *and* pyzmq built with its draft API.
    """

    txzmq2: str
    pyzmq: str
    libzmq: str
    twisted: str
    python: str
    transports: tuple[str, ...]
    mechanisms: tuple[str, ...]
    draftAPI: bool

    def asDict(self) -> dict[str, object]:
        """The same as a plain dictionary (tuples as lists), ready for ``json.dumps``."""
        return {
            "txzmq2": self.txzmq2,
            "pyzmq": self.pyzmq,
            "libzmq": self.libzmq,
            "twisted": self.twisted,
            "python": self.python,
            "transports": list(self.transports),
            "mechanisms": list(self.mechanisms),
            "draftAPI": self.draftAPI,
        }


def _has(name: str) -> bool:
    # libzmq 4.3.4 compares "WS" and "WSS" in upper case; later releases may fix the case.
    return bool(zmq.has(name) or zmq.has(name.upper()))


@cache
def capabilities() -> ZmqCapabilities:
    """
    Report txzmq2's, pyzmq's, libzmq's, Twisted's and Python's versions and which
    transports, security mechanisms and draft API this libzmq has: the data ``txzmq2
    info`` prints.

    :return: a :class:`ZmqCapabilities`, the same object on every call.
    """
    from txzmq2 import __version__

    draft = bool(zmq.DRAFT_API) and _has("draft")
    present = {
        "tcp": True,
        "inproc": True,
        "ipc": _has("ipc"),
        "ws": _has("ws"),
        "wss": _has("wss"),
        "pgm": _has("pgm"),
        # libzmq builds pgm and epgm (PGM over UDP) together, from OpenPGM.
        "epgm": _has("pgm"),
        "norm": _has("norm"),
        "tipc": _has("tipc"),
        "vmci": _has("vmci"),
        "udp": draft,
    }
    mechanisms = {"null": True, "plain": True, "curve": _has("curve"), "gssapi": _has("gssapi")}
    return ZmqCapabilities(
        txzmq2=__version__,
        pyzmq=zmq.pyzmq_version(),
        libzmq=zmq.zmq_version(),
        twisted=twisted.__version__,
        python=platform.python_version(),
        transports=tuple(name for name in TRANSPORTS if present[name]),
        mechanisms=tuple(name for name in MECHANISMS if mechanisms[name]),
        draftAPI=draft,
    )


# pyzmq warns that it emulates ZMQ_FD for thread-safe (draft) sockets, which libzmq gives no
# FD; that emulation is what lets the reactor watch them at all.
_FD_WARNING: type[Warning] = getattr(zmq.error, "DraftFDWarning", RuntimeWarning)


@contextmanager
def creatingSocketOfType(socketType: int) -> Iterator[None]:
    """
    Wrap the making of a connection's socket: refuse a draft socket type unless pyzmq and
    libzmq both have the draft API (a libzmq built without drafts aborts the whole process
    when such a socket meets a tcp peer, so the refusal comes before any socket exists),
    and silence pyzmq's warning about the FD it emulates for draft types.

    :raises ZmqUnsupportedError: saying what is missing.
    """
    name = _DRAFT_TYPES.get(int(socketType))
    if name is None:
        yield
        return
    if not capabilities().draftAPI:
        missing = "pyzmq's draft API (build pyzmq with ZMQ_DRAFT_API=1)"
        if zmq.DRAFT_API:
            missing = f"a libzmq built with drafts (this one, {zmq.zmq_version()}, has none)"
        raise ZmqUnsupportedError(
            f"the {name} socket type is a draft: it needs {missing}; see docs/transports.md"
        )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", _FD_WARNING)
        yield

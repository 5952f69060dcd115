"""Unique test addresses on every transport."""

from __future__ import annotations

import itertools
import os
import shutil
import tempfile

__all__ = ["AddressFactory"]

_TRANSPORTS = ("inproc", "ipc", "tcp")


class AddressFactory:
    """
    Makes addresses no other test uses: ``inproc`` names, ``ipc`` files in a private temporary
    directory (short, to stay under the 107-byte socket path limit), and ``tcp`` on
    127.0.0.1 with a port the OS picks at bind time (read the bound address back from
    ``connection.lastEndpoint``).

    Call :meth:`cleanup` when done: it removes the ipc directory.
    """

    _counter = itertools.count(1)

    def __init__(self) -> None:
        self._directory: str | None = None

    def __call__(self, transport: str = "tcp") -> str:
        """
        A fresh bindable address on ``transport`` (``"inproc"``, ``"ipc"`` or ``"tcp"``).

        :raises ValueError: for another transport.
        """
        number = next(self._counter)
        if transport == "inproc":
            return f"inproc://txzmq2-test-{os.getpid()}-{number}"
        if transport == "ipc":
            if self._directory is None:
                self._directory = tempfile.mkdtemp(prefix="txzmq2-")
            return f"ipc://{self._directory}/{number}.sock"
        if transport == "tcp":
            return "tcp://127.0.0.1:*"
        raise ValueError(f"transport must be one of {', '.join(_TRANSPORTS)}, not {transport!r}")

    def cleanup(self) -> None:
        """Remove the ipc directory, if one was made."""
        if self._directory is not None:
            shutil.rmtree(self._directory, ignore_errors=True)
            self._directory = None

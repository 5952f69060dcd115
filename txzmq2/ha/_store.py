"""
The Titanic store: requests and replies in one SQLite file, every call run on one thread
of its own so that the reactor never waits on the disk.

Each write is one transaction, committed (``synchronous=FULL``: on the disk, not only in
the page cache) before its Deferred fires, which is before any client hears of it.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import Any, NamedTuple, TypeVar

from twisted.internet.defer import Deferred, fail
from twisted.internet.threads import deferToThreadPool
from twisted.python.threadpool import ThreadPool

from txzmq2.errors import ZmqConnectionClosed

__all__ = ["StoredRequest", "TitanicStore", "packFrames", "unpackFrames"]

T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS titanic (
    id TEXT PRIMARY KEY,
    service BLOB NOT NULL,
    request BLOB NOT NULL,
    reply BLOB
)
"""


def packFrames(frames: list[bytes]) -> bytes:
    """Frames as one blob: each one's length (4 bytes, big-endian), then its bytes."""
    return b"".join(len(frame).to_bytes(4, "big") + frame for frame in frames)


def unpackFrames(blob: bytes) -> list[bytes]:
    """The frames :func:`packFrames` packed."""
    frames = []
    offset = 0
    while offset < len(blob):
        size = int.from_bytes(blob[offset : offset + 4], "big")
        frames.append(blob[offset + 4 : offset + 4 + size])
        offset += 4 + size
    return frames


class StoredRequest(NamedTuple):
    """A request waiting for its reply: its id, the service asked, the body frames."""

    id: str
    service: bytes
    body: list[bytes]


class TitanicStore:
    """
    Requests and replies by request id, in the SQLite file ``path`` (made if missing).

    Every method returns a Deferred firing on the reactor thread once the work is done
    (and, for a write, committed); after :meth:`close` they fail with
    :class:`~txzmq2.errors.ZmqConnectionClosed`.
    """

    def __init__(self, reactor: Any, path: str) -> None:
        self._reactor = reactor
        # One thread: SQLite serialises writers anyway, and one thread keeps them in order.
        self._pool = ThreadPool(1, 1, name="txzmq2-titanic-store")
        self._closed = False
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        try:
            # WAL: a commit appends to the log instead of rewriting pages; FULL: and it is
            # on the disk before the commit returns.
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute(_SCHEMA)
        except BaseException:
            self._db.close()
            raise
        self._pool.start()

    def close(self) -> None:
        """Finish the work already asked for, stop the thread, close the file. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._pool.stop()
        self._db.close()

    def _run(self, work: Callable[..., T], *args: Any) -> Deferred[T]:
        if self._closed:
            return fail(ZmqConnectionClosed("the Titanic store is closed"))
        return deferToThreadPool(self._reactor, self._pool, work, *args)

    # -- the operations (each runs on the store's thread) ------------------------------------

    def add(self, requestId: str, service: bytes, body: list[bytes]) -> Deferred[None]:
        """Store a new request."""
        return self._run(self._add, requestId, service, packFrames(body))

    def _add(self, requestId: str, service: bytes, request: bytes) -> None:
        with self._db:
            self._db.execute("BEGIN")
            self._db.execute(
                "INSERT INTO titanic (id, service, request) VALUES (?, ?, ?)",
                (requestId, service, request),
            )

    def answer(self, requestId: str, reply: list[bytes]) -> Deferred[bool]:
        """Store the reply to a request; False when the request is gone (closed)."""
        return self._run(self._answer, requestId, packFrames(reply))

    def _answer(self, requestId: str, reply: bytes) -> bool:
        with self._db:
            self._db.execute("BEGIN")
            cursor = self._db.execute(
                "UPDATE titanic SET reply = ? WHERE id = ? AND reply IS NULL", (reply, requestId)
            )
        return cursor.rowcount > 0

    def lookup(self, requestId: str) -> Deferred[tuple[bool, list[bytes] | None]]:
        """Whether the request is known, and its reply (``None`` while it has none)."""
        return self._run(self._lookup, requestId)

    def _lookup(self, requestId: str) -> tuple[bool, list[bytes] | None]:
        row = self._db.execute("SELECT reply FROM titanic WHERE id = ?", (requestId,)).fetchone()
        if row is None:
            return False, None
        return True, None if row[0] is None else unpackFrames(row[0])

    def forget(self, requestId: str) -> Deferred[None]:
        """Delete a request and its reply (nothing happens for an unknown id)."""
        return self._run(self._forget, requestId)

    def _forget(self, requestId: str) -> None:
        with self._db:
            self._db.execute("BEGIN")
            self._db.execute("DELETE FROM titanic WHERE id = ?", (requestId,))

    def unanswered(self) -> Deferred[list[StoredRequest]]:
        """Every request without a reply, oldest first."""
        return self._run(self._unanswered)

    def _unanswered(self) -> list[StoredRequest]:
        rows = self._db.execute(
            "SELECT id, service, request FROM titanic WHERE reply IS NULL ORDER BY rowid"
        ).fetchall()
        return [StoredRequest(row[0], bytes(row[1]), unpackFrames(row[2])) for row in rows]

"""
Titanic (9/TSP over 7/MDP): requests stored on disk, answered later, across restarts.

:class:`TitanicService` is both a Majordomo worker (of the services ``titanic.request``,
``titanic.reply`` and ``titanic.close``) and a Majordomo client (of the services the stored
requests name). Its invariant: a request is in the SQLite file before its id reaches the
client, and its reply is before ``titanic.reply`` can return it; whatever restarts, a
stored request without a reply is sent to its service until it has one or is closed.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from twisted.internet.defer import CancelledError, Deferred
from twisted.python.failure import Failure

from txzmq2._logging import RateLimitedLogger
from txzmq2._reactor import ReactorLike
from txzmq2.connection import Frame, Message, ZmqSecurity
from txzmq2.endpoint import ZmqEndpoint, ZmqEndpointType
from txzmq2.errors import RemoteError, ZmqProtocolError, ZmqUnknownRequestError
from txzmq2.factory import ZmqFactory
from txzmq2.ha._endpoints import asEndpoint
from txzmq2.ha._store import StoredRequest, TitanicStore
from txzmq2.mdp import MajordomoClient, MajordomoWorker
from txzmq2.mdp._protocol import DEFAULT_HEARTBEAT_INTERVAL, serviceName

if TYPE_CHECKING:
    from twisted.internet.base import DelayedCall

__all__ = [
    "CLOSE",
    "REPLY",
    "REQUEST",
    "STATUS_ERROR",
    "STATUS_OK",
    "STATUS_PENDING",
    "STATUS_UNKNOWN",
    "TitanicClient",
    "TitanicService",
]

REQUEST = b"titanic.request"
"""9/TSP: store a request, answer its id."""
REPLY = b"titanic.reply"
"""9/TSP: the reply to a request id, if there is one yet."""
CLOSE = b"titanic.close"
"""9/TSP: forget a request and its reply."""

STATUS_OK = b"200"
"""9/TSP: done (for ``titanic.reply``: here is the reply)."""
STATUS_PENDING = b"300"
"""9/TSP: no reply yet; ask again later."""
STATUS_UNKNOWN = b"400"
"""9/TSP: no such request id (never stored, or closed); do not ask again."""
STATUS_ERROR = b"500"
"""9/TSP: the service failed (its store); the text after it says how; retry later."""

# 9/TSP: 32 hexadecimal characters.
_REQUEST_ID = re.compile(rb"[0-9A-Fa-f]{32}")


class TitanicService:
    """
    The Titanic services behind a Majordomo broker, storing in the SQLite file
    ``database``.

    - ``titanic.request`` ``[service, *body]``: stores the request (committed), answers
      ``[b"200", id]`` with a fresh 32-hex-digit id, and dispatches the request.
    - ``titanic.reply`` ``[id]``: ``[b"200", *reply]`` once the service has answered,
      ``[b"300"]`` while it has not, ``[b"400"]`` for an id it does not know (never
      stored, or closed). It may be asked any number of times.
    - ``titanic.close`` ``[id]``: forgets the request and its reply, answers ``[b"200"]``
      (also for an unknown id).

    Each stored request without a reply is sent to its service through the broker, at
    most ``maxInFlight`` at a time; one unanswered after ``dispatchTimeout`` seconds is
    sent again ``retryDelay`` seconds later, until it is answered or closed. On start,
    every request stored without a reply is dispatched again. A request may thus reach
    its service more than once (at-least-once): the first reply is the one stored.

    :param factory: the factory giving the context and the reactor.
    :param broker: the Majordomo broker's address (a string is connected).
    :param database: the SQLite file (made if missing).
    :param dispatchTimeout: seconds a dispatched request waits for its service's reply.
    :param retryDelay: seconds before an unanswered request is dispatched again.
    :param maxInFlight: most requests dispatched and not yet answered at once.
    :param heartbeatInterval: the broker's heartbeat interval (for the three workers).
    :param security: CURVE or PLAIN set-up (:class:`~txzmq2.ZmqSecurity`) for every socket.
    :raises sqlite3.Error: when the database cannot be opened.
    """

    _log = RateLimitedLogger()

    def __init__(
        self,
        factory: ZmqFactory,
        broker: str | ZmqEndpoint,
        database: str,
        *,
        dispatchTimeout: float = 5.0,
        retryDelay: float = 1.0,
        maxInFlight: int = 16,
        heartbeatInterval: float = DEFAULT_HEARTBEAT_INTERVAL,
        security: ZmqSecurity | None = None,
    ) -> None:
        if dispatchTimeout <= 0 or retryDelay < 0 or maxInFlight < 1:
            raise ValueError(
                "need dispatchTimeout > 0, retryDelay >= 0, maxInFlight >= 1, not"
                f" {dispatchTimeout}, {retryDelay}, {maxInFlight}"
            )
        self.factory = factory
        self.broker = asEndpoint(broker, ZmqEndpointType.connect)
        self.dispatchTimeout = dispatchTimeout
        self.retryDelay = retryDelay
        self.maxInFlight = maxInFlight
        self._reactor: ReactorLike = factory.reactor
        self._closed = False
        # Stored, not answered, not being dispatched: in the order they came.
        self._waiting: dict[str, StoredRequest] = {}
        self._inFlight: dict[str, Deferred[Message]] = {}
        self._retries: dict[str, DelayedCall] = {}
        self._store = TitanicStore(self._reactor, database)
        self._client = MajordomoClient(factory, self.broker, security=security)
        self._workers: list[MajordomoWorker] = []
        services: list[tuple[bytes, Callable[..., Any]]] = [
            (REQUEST, self._onRequest),
            (REPLY, self._onReply),
            (CLOSE, self._onClose),
        ]
        for service, handler in services:
            self._workers.append(
                MajordomoWorker(
                    factory,
                    self.broker,
                    service,
                    handler,
                    heartbeatInterval=heartbeatInterval,
                    security=security,
                )
            )
        self._store.unanswered().addCallbacks(self._restored, self._storeFailed)
        factory.addShutdownHook(self.shutdown)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} at {self.broker.address}>"

    @property
    def unanswered(self) -> int:
        """How many stored requests have no reply yet (waiting or dispatched)."""
        return len(self._waiting) + len(self._inFlight) + len(self._retries)

    def shutdown(self) -> None:
        """
        Unregister the services, stop dispatching and close the database (requests it
        holds are dispatched again by the next service on it). Idempotent.
        """
        if self._closed:
            return
        self._closed = True
        self.factory.removeShutdownHook(self.shutdown)
        for worker in self._workers:
            worker.shutdown()
        self._client.shutdown()  # fails what is in flight; _unanswered ignores it now
        for call in self._retries.values():
            if call.active():
                call.cancel()
        self._retries.clear()
        self._waiting.clear()
        self._store.close()

    # -- the three services ------------------------------------------------------------------

    async def _onRequest(self, *frames: bytes) -> list[bytes]:
        if len(frames) < 2 or not frames[0]:
            return [STATUS_ERROR + b" a request is a service name and a body"]
        requestId = uuid.uuid4().hex
        stored = StoredRequest(requestId, frames[0], list(frames[1:]))
        try:
            await self._store.add(stored.id, stored.service, stored.body)
        except Exception:
            self._log.failure("{service}: could not store a request", service=self)
            return [STATUS_ERROR + b" could not store the request"]
        self._waiting[requestId] = stored
        self._dispatch()
        return [STATUS_OK, requestId.encode("ascii")]

    async def _onReply(self, *frames: bytes) -> list[bytes]:
        if len(frames) != 1 or not _REQUEST_ID.fullmatch(frames[0]):
            return [STATUS_UNKNOWN]
        try:
            known, reply = await self._store.lookup(frames[0].decode("ascii").lower())
        except Exception:
            self._log.failure("{service}: could not read a reply", service=self)
            return [STATUS_ERROR + b" could not read the store"]
        if not known:
            return [STATUS_UNKNOWN]
        if reply is None:
            return [STATUS_PENDING]
        return [STATUS_OK, *reply]

    async def _onClose(self, *frames: bytes) -> list[bytes]:
        if len(frames) != 1 or not _REQUEST_ID.fullmatch(frames[0]):
            return [STATUS_OK]  # idempotent: an id it cannot know is closed already
        requestId = frames[0].decode("ascii").lower()
        self._waiting.pop(requestId, None)
        retry = self._retries.pop(requestId, None)
        if retry is not None and retry.active():
            retry.cancel()
        inFlight = self._inFlight.pop(requestId, None)
        if inFlight is not None:
            inFlight.cancel()
        try:
            await self._store.forget(requestId)
        except Exception:
            self._log.failure("{service}: could not forget a request", service=self)
            return [STATUS_ERROR + b" could not update the store"]
        return [STATUS_OK]

    # -- dispatching -------------------------------------------------------------------------

    def _restored(self, stored: list[StoredRequest]) -> None:
        if self._closed:
            return
        for request in stored:
            self._waiting.setdefault(request.id, request)
        if stored:
            self._log.info(
                "{service}: {count} stored request(s) without a reply; dispatching",
                service=self,
                count=len(stored),
            )
        self._dispatch()

    def _dispatch(self) -> None:
        while self._waiting and len(self._inFlight) < self.maxInFlight and not self._closed:
            requestId = next(iter(self._waiting))
            request = self._waiting.pop(requestId)
            answer = self._client.request(
                request.service, *request.body, timeout=self.dispatchTimeout
            )
            self._inFlight[requestId] = answer
            answer.addCallbacks(
                self._answered,
                self._unanswered,
                callbackArgs=(request,),
                errbackArgs=(request,),
            )
            answer.addErrback(self._storeFailed)

    def _answered(self, reply: Message, request: StoredRequest) -> Deferred[None] | None:
        if self._inFlight.pop(request.id, None) is None or self._closed:
            return None  # closed meanwhile
        # Dispatch the next one only once this reply is stored: the store's queue, like
        # the broker's, stays as long as maxInFlight at most.
        stored = self._store.answer(request.id, reply).addErrback(self._storeFailed)
        return stored.addCallback(self._stored)

    def _stored(self, _: object) -> None:
        self._dispatch()

    def _unanswered(self, failure: Failure, request: StoredRequest) -> None:
        if isinstance(failure.value, CancelledError) or self._closed:
            return  # closed, or shutting down
        self._inFlight.pop(request.id, None)
        self._log.info(
            "{service}: no reply from {name!r} to {id} ({why}); again in {delay} s",
            service=self,
            name=request.service,
            id=request.id,
            why=failure.getErrorMessage(),
            delay=self.retryDelay,
        )
        self._retries[request.id] = self._reactor.callLater(self.retryDelay, self._retry, request)
        self._dispatch()

    def _retry(self, request: StoredRequest) -> None:
        del self._retries[request.id]
        self._waiting[request.id] = request
        self._dispatch()

    def _storeFailed(self, failure: Failure) -> None:
        if not self._closed:
            self._log.failure("{service}: a store operation failed", failure, service=self)


class TitanicClient:
    """
    A Titanic (9/TSP) client: hands requests to a :class:`TitanicService` through a
    Majordomo broker and collects their replies later, by id.

    Every call is one Majordomo request to the service, with the client's ``timeout`` and
    ``retries`` (a retried :meth:`submit` may store the request twice, under two ids; only
    the id returned is the caller's to collect and close).

    :param factory: the factory giving the context and the reactor.
    :param broker: the Majordomo broker's address (a string is connected).
    :param timeout: seconds each call waits for the service (``None``: forever).
    :param retries: times a call is sent again after a timeout.
    :param security: CURVE or PLAIN set-up (:class:`~txzmq2.ZmqSecurity`).
    """

    def __init__(
        self,
        factory: ZmqFactory,
        broker: str | ZmqEndpoint,
        *,
        timeout: float | None = 5.0,
        retries: int = 2,
        security: ZmqSecurity | None = None,
    ) -> None:
        self.timeout = timeout
        self.retries = retries
        self._client = MajordomoClient(
            factory, asEndpoint(broker, ZmqEndpointType.connect), security=security
        )

    def __repr__(self) -> str:
        return f"<{type(self).__name__} of {self._client.endpoint.address}>"

    def submit(self, service: bytes | str, *frames: Frame) -> Deferred[str]:
        """
        Have Titanic store a request of ``frames`` for ``service``.

        :return: a Deferred firing with the request's id (32 hex digits) once the request
            is stored; failing with :class:`~txzmq2.errors.RemoteError` (type ``"500"``)
            when the service could not store it, or as ``MajordomoClient.request`` fails.
        :raises ValueError: for no frames or an empty service name.
        """
        if not frames:
            raise ValueError("a request needs at least one frame")
        answer = self._call(REQUEST, serviceName(service), *frames)
        return answer.addCallback(self._requestId)

    def reply(self, requestId: str) -> Deferred[list[bytes] | None]:
        """
        Ask for the reply to the request ``requestId``.

        :return: a Deferred firing with the reply frames, or ``None`` while the service
            has not answered yet; failing with
            :class:`~txzmq2.errors.ZmqUnknownRequestError` for an id Titanic does not know
            (never submitted, or closed), :class:`~txzmq2.errors.RemoteError` for a
            ``500``, or as ``MajordomoClient.request`` fails.
        """
        return self._call(REPLY, requestId.encode("ascii")).addCallback(self._replyOf, requestId)

    def close(self, requestId: str) -> Deferred[None]:
        """
        Tell Titanic the reply to ``requestId`` is no longer needed: it forgets both.

        :return: a Deferred firing with ``None`` once forgotten (also for an unknown id).
        """
        return self._call(CLOSE, requestId.encode("ascii")).addCallback(self._closed)

    def shutdown(self) -> None:
        """Close the client's sockets; calls still waiting fail. Idempotent."""
        self._client.shutdown()

    def _call(self, service: bytes, *frames: Frame) -> Deferred[Message]:
        return self._client.request(service, *frames, timeout=self.timeout, retries=self.retries)

    @staticmethod
    def _requestId(frames: Message) -> str:
        _status(frames, "titanic.request")
        if len(frames) != 2 or not _REQUEST_ID.fullmatch(frames[1]):
            raise ZmqProtocolError(f"titanic.request answered no request id: {frames!r:.200}")
        return frames[1].decode("ascii")

    @staticmethod
    def _closed(frames: Message) -> None:
        _status(frames, "titanic.close")

    @staticmethod
    def _replyOf(frames: Message, requestId: str) -> list[bytes] | None:
        code = frames[0][:3]
        if code == STATUS_PENDING:
            return None
        if code == STATUS_UNKNOWN:
            raise ZmqUnknownRequestError(f"Titanic does not know the request {requestId}")
        _status(frames, "titanic.reply")
        return frames[1:]


def _status(frames: Message, service: str) -> None:
    """Check that a TSP reply says 200.

    :raises RemoteError: for a 500, with the text that came with it.
    :raises ZmqProtocolError: for any other status.
    """
    code = frames[0][:3] if frames else b""
    if code == STATUS_OK:
        return
    text = frames[0][4:].decode(errors="replace") if frames else ""
    if code == STATUS_ERROR:
        raise RemoteError("500", f"{service}: {text or 'error'}")
    raise ZmqProtocolError(f"{service} answered an unexpected status {frames[:1]!r:.100}")

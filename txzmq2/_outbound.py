"""
The outbound side of a connection: what libzmq refused for now, and everything that hangs on it.

Invariant: every message given to :meth:`_Outbound.send` is, at any moment, exactly one of
handed to libzmq, waiting here (once, in order per destination), or counted in ``dropped``.
This object alone changes the queue, so the queue's length, the drain waiters and the
producer's pacing can never disagree (a request that ends while queued leaves through
:meth:`_Outbound.remove`, which wakes the waiters too).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from itertools import islice
from typing import TYPE_CHECKING, Any, cast

import zmq
from twisted.internet.defer import Deferred, succeed
from twisted.internet.defer import TimeoutError as DeferredTimeout
from twisted.python.failure import Failure

from txzmq2._frames import toFrames
from txzmq2.errors import (
    ZmqConnectionClosed,
    ZmqSendQueueFull,
    ZmqStateError,
    ZmqTimeoutError,
    ZmqUnroutableError,
)

if TYPE_CHECKING:
    from twisted.internet.base import DelayedCall
    from twisted.internet.interfaces import IReactorTime

    from txzmq2.connection import ZmqConnection

__all__: list[str] = []

# Backoff of flush retries while a destination stays full although the socket says POLLOUT
# (a ROUTER's other peers, or an XPUB, which always says POLLOUT) (seconds).
RETRY_MIN = 0.001
RETRY_MAX = 0.05
# Most queued messages a flush hands the native run loop in one list.
RUN_SLICE = 1024


class _Outbound:
    """
    Messages libzmq refused (EAGAIN), kept in order per destination and bounded, with their
    flush, retry backoff, drain waiters and producer pacing.

    Most sockets have one destination as far as EAGAIN goes. A ROUTER (with
    ``ROUTER_MANDATORY``; without it libzmq drops instead) refuses per peer: a full peer
    must not hold back the others, so its queue is kept per identity (the first frame).

    Each queued message has a token, so a request that ends while still queued leaves in
    O(1) (``OrderedDict``: O(1) removal anywhere and O(1) access to the oldest).

    :param limit: most messages queued per destination (``None``: no bound).
    :param dropWhenFull: past ``limit``, drop and count (a ROUTER, as libzmq's own ROUTER
        drops at its high-water mark) instead of raising :class:`ZmqSendQueueFull`.
    """

    __slots__ = (
        "_connection",
        "_destinations",
        "_drainWaiters",
        "_nextToken",
        "_producer",
        "_producerPaused",
        "_producerStreaming",
        "_pullCall",
        "_retryCall",
        "_retryDelay",
        "_sendFrames",
        "_sendRun",
        "afterEmpty",
        "dropWhenFull",
        "dropped",
        "fruitless",
        "length",
        "limit",
        "routed",
        "sent",
    )

    def __init__(
        self,
        connection: ZmqConnection,
        sendFrames: Callable[[list[bytes]], None],
        sendRun: Callable[[list[Any], int, _Outbound], int] | None,
        routed: bool,
        limit: int | None,
        dropWhenFull: bool,
    ) -> None:
        self._connection = connection
        self._sendFrames = sendFrames
        # The connection's loop that hands libzmq a run of messages in one call (see
        # ZmqConnection.sendMany), or None where every message takes sendFrames.
        self._sendRun = sendRun
        self.routed = routed
        self.limit = limit
        self.dropWhenFull = dropWhenFull
        self._destinations: dict[bytes | None, OrderedDict[int, list[bytes]]] = {}
        self.length = 0
        self._nextToken = 0
        self.sent = 0
        """Messages handed to libzmq."""
        self.dropped = 0
        """Messages dropped: past the bound, to a vanished peer, or left at shutdown."""
        self.fruitless = 0
        """Consecutive flushes that sent nothing while messages waited."""
        self._retryCall: DelayedCall | None = None
        self._retryDelay = RETRY_MIN
        self._drainWaiters: list[Deferred[None]] = []
        self.afterEmpty = False
        """Whether :meth:`afterPass` has work once the queue is empty (a backoff to reset,
        drain waiters to fire): the engine skips the call otherwise."""
        # An IPushProducer or IPullProducer (zope interfaces are opaque to mypy).
        self._producer: Any = None
        self._producerStreaming = False
        self._producerPaused = False
        self._pullCall: DelayedCall | None = None

    # -- sending -----------------------------------------------------------------------------

    def send(self, frames: list[bytes]) -> int | None:
        """
        Hand ``frames`` to libzmq, or queue them when it refuses or earlier messages to the
        same destination still wait.

        :return: the token of the queued message (for :meth:`remove`), or ``None`` when it
            left at once or was dropped.
        :raises ZmqSendQueueFull: past ``limit`` when ``dropWhenFull`` is False.
        :raises ZmqUnroutableError: a ROUTER with ``ROUTER_MANDATORY`` has no such peer.
        """
        if (frames[0] if self.routed else None) in self._destinations:
            # Keep order: nothing overtakes what is already queued for its destination.
            return self.enqueue(frames)
        try:
            self._sendFrames(frames)
        except zmq.Again:
            return self.enqueue(frames)
        self.sent += 1
        return None

    def enqueue(self, frames: list[bytes]) -> int | None:
        """Queue ``frames`` (libzmq refused them); the token, or ``None`` if dropped."""
        key = frames[0] if self.routed else None
        queue = self._destinations.get(key)
        if queue is None:
            queue = self._destinations[key] = OrderedDict()
        elif self.limit is not None and len(queue) >= self.limit:
            if not self.dropWhenFull:
                raise self._full(queue)
            self.dropped += 1
            self._connection._log.warn(
                "{connection}: peer {peer!r} does not read; message dropped past "
                "sendQueueLimit={limit}",
                connection=self._connection,
                peer=key,
                limit=self.limit,
            )
            return None
        self._nextToken += 1
        token = self._nextToken
        queue[token] = frames
        self.length += 1
        if self._producer is not None:
            self._pauseProducerIfHigh()
        return token

    def enqueueRest(self, messages: list[Any], start: int) -> None:
        """
        Queue ``messages[start:]``, each made frames by ``toFrames``, in order behind those
        waiting: ``sendMany`` on a socket with one destination once any wait, where
        :meth:`send` would queue each anyway. Stops at a message with the error ``send``
        raises for it (a frame that is not bytes, ``ZmqSendQueueFull``), or with
        ``ZmqConnectionClosed`` when a producer paused here shut the connection down.
        """
        queue = self._destinations[None]
        limit = self.limit
        connection = self._connection
        for index in range(start, len(messages)):
            if connection._closed:
                connection._checkOpen()  # raises ZmqConnectionClosed
            frames = toFrames(messages[index])
            if limit is not None and len(queue) >= limit:
                raise self._full(queue)
            self._nextToken += 1
            queue[self._nextToken] = frames
            self.length += 1
            if self._producer is not None:
                self._pauseProducerIfHigh()

    def _full(self, queue: OrderedDict[int, list[bytes]]) -> ZmqSendQueueFull:
        return ZmqSendQueueFull(
            f"{self._connection!r}: {len(queue)} messages already wait for libzmq "
            f"(sendQueueLimit={self.limit})"
        )

    def _pauseProducerIfHigh(self) -> None:
        if (
            self._producerStreaming
            and not self._producerPaused
            and self.length > self._connection.sendQueueHighWater
        ):
            self._producerPaused = True
            self._callProducer("pauseProducing", self._producer)

    def holds(self, frames: list[bytes], token: int) -> bool:
        """True while the message queued under ``token`` still waits."""
        queue = self._destinations.get(frames[0] if self.routed else None)
        return queue is not None and token in queue

    def remove(self, frames: list[bytes], token: int) -> bool:
        """
        Take the message queued under ``token`` out, if it still waits (a request that
        ended before it could leave). O(1). True if it was there.
        """
        key = frames[0] if self.routed else None
        queue = self._destinations.get(key)
        if queue is None or queue.pop(token, None) is None:
            return False
        self.length -= 1
        if not queue:
            del self._destinations[key]
        if not self.length:
            # The queue emptied behind the engine's back: a pass fires the drain waiters.
            self._connection._schedulePass()
        self._paceProducer()
        return True

    def flush(self) -> int:
        """
        Hand queued messages to libzmq until each destination refuses (``zmq.Again``).

        :return: how many left (sent or dropped because their peer vanished).
        """
        dropped = 0
        sentBefore = self.sent
        send = self._sendFrames
        sendRun = self._sendRun
        try:
            for key, queue in list(self._destinations.items()):
                if sendRun is not None:
                    self._flushRuns(queue, sendRun)
                while queue:
                    token = next(iter(queue))
                    try:
                        send(queue[token])
                    except zmq.Again:
                        break
                    except ZmqUnroutableError:
                        dropped += len(queue)
                        queue.clear()
                        break
                    del queue[token]
                    self.sent += 1
                if not queue:
                    del self._destinations[key]
        finally:
            # Also when a send failed outright (a terminated context): what left is gone
            # from the queues, and the count follows them.
            self.length = sum(len(queue) for queue in self._destinations.values())
        sent = self.sent - sentBefore
        self.fruitless = 0 if sent + dropped or not self.length else self.fruitless + 1
        if sent + dropped:
            # Progress: the backoff is for a socket that takes nothing. A flood that keeps
            # the queue from emptying would otherwise climb to RETRY_MAX and stay there,
            # idling up to that long at every high-water mark.
            self._retryDelay = RETRY_MIN
        if dropped:
            self.dropped += dropped
            self._connection._log.warn(
                "{connection}: dropped {count} queued message(s) to a vanished peer",
                connection=self._connection,
                count=dropped,
            )
        self._paceProducer()
        return sent + dropped

    def _flushRuns(
        self,
        queue: OrderedDict[int, list[bytes]],
        sendRun: Callable[[list[Any], int, _Outbound], int],
    ) -> None:
        """
        Hand libzmq the oldest of ``queue`` in runs (one call each), taking each message a
        run stops at through ``sendFrames`` (a large frame; a refusal ends it all, left
        to the caller's loop, as is any error). Removes what left and counts it in
        ``sent``.
        """
        send = self._sendFrames
        while queue:
            # A slice at a time, not the whole queue: libzmq takes up to its high-water
            # mark of a long queue per flush, and copying all of it every time would make
            # draining it quadratic.
            pending = list(islice(queue.values(), RUN_SLICE))
            index = 0
            while True:
                before = self.sent
                try:
                    index = sendRun(pending, index, self)
                finally:
                    # Counted by the run even if it raised: those left, whatever comes next.
                    for _ in range(self.sent - before):
                        queue.popitem(last=False)
                if index == len(pending):
                    break
                try:
                    send(pending[index])
                except (zmq.ZMQError, ZmqUnroutableError):
                    # Refused (EAGAIN) or failed: the caller's loop tries it again and
                    # stops, or handles the failure (a vanished peer), as for any message.
                    return
                queue.popitem(last=False)
                self.sent += 1
                index += 1

    def writable(self) -> None:
        """
        The socket says POLLOUT and messages wait: flush on the next pass, or, when flushes
        keep sending nothing, on a backoff timer.

        For one destination, POLLOUT after one fruitless flush means the EVENTS read that
        followed it processed the socket's becoming writable: go again at once. A second
        fruitless flush means POLLOUT speaks for something else (a ROUTER's other peers;
        an XPUB with ``XPUB_NODROP``, which always says POLLOUT): spinning on it would
        busy-loop, and the EVENTS read may have consumed the edge of the destination's
        becoming writable, so retry on a timer whose delay doubles up to ``RETRY_MAX``.
        """
        if self.fruitless < (1 if self.routed else 2):
            self._retryDelay = RETRY_MIN
            self._connection._schedulePass()
        elif self._retryCall is None:
            self._retryCall = self._connection._reactor.callLater(self._retryDelay, self._retry)
            self._retryDelay = min(self._retryDelay * 2, RETRY_MAX)
            self.afterEmpty = True

    def _retry(self) -> None:
        self._retryCall = None
        self._connection._runPass()

    def afterPass(self) -> None:
        """End of a pass: reset the backoff and fire the drain waiters once empty."""
        if not self.length:
            self._retryDelay = RETRY_MIN
            self.afterEmpty = False
            if self._drainWaiters:
                self._fireDrainWaiters()

    # -- drain waiters -----------------------------------------------------------------------

    def whenEmpty(self, timeout: float | None) -> Deferred[None]:
        """See :meth:`~txzmq2.connection.ZmqConnection.whenSendQueueEmpty`."""
        if not self.length:
            return succeed(None)
        waiter: Deferred[None] = Deferred(self._drainWaiters.remove)
        self._drainWaiters.append(waiter)
        self.afterEmpty = True
        if timeout is not None:

            def timedOut(failure: Failure) -> Failure:
                if isinstance(failure.value, DeferredTimeout):
                    raise ZmqTimeoutError(f"send queue not empty after {timeout} s")
                return failure

            waiter.addTimeout(timeout, cast("IReactorTime", self._connection._reactor)).addErrback(
                timedOut
            )
        return waiter

    def _fireDrainWaiters(self, dropped: int = 0) -> None:
        waiters, self._drainWaiters = self._drainWaiters, []
        for waiter in waiters:
            if dropped:
                waiter.errback(
                    ZmqConnectionClosed(
                        f"{self._connection!r} shut down with {dropped} message(s) queued"
                    )
                )
            else:
                waiter.callback(None)

    # -- producer pacing (IConsumer) ---------------------------------------------------------

    def registerProducer(self, producer: Any, streaming: bool) -> None:
        """See :meth:`~txzmq2.connection.ZmqConnection.registerProducer`."""
        if self._producer is not None:
            raise ZmqStateError(f"{self._connection!r} already has a producer: {self._producer!r}")
        self._producer = producer
        self._producerStreaming = streaming
        self._producerPaused = False
        if streaming and self.length > self._connection.sendQueueHighWater:
            self._producerPaused = True
            self._callProducer("pauseProducing", producer)
        elif not streaming:
            self._wantMoreFromProducer()

    def unregisterProducer(self) -> None:
        self._producer = None
        self._producerPaused = False
        if self._pullCall is not None:
            self._pullCall.cancel()
            self._pullCall = None

    def wrote(self) -> None:
        """A pull producer wrote: ask it for more while the queue is short."""
        if self._producer is not None and not self._producerStreaming:
            self._paceProducer()

    def _paceProducer(self) -> None:
        if (
            self._producer is not None
            and not self._connection._closing
            and self.length <= self._connection.sendQueueLowWater
        ):
            self._wantMoreFromProducer()

    def _wantMoreFromProducer(self) -> None:
        if self._producerStreaming:
            if self._producerPaused:
                self._producerPaused = False
                self._callProducer("resumeProducing", self._producer)
        elif self._pullCall is None:
            # Ask on the next turn, not from inside the producer's own write().
            self._pullCall = self._connection._reactor.callLater(0, self._askPullProducer)

    def _askPullProducer(self) -> None:
        self._pullCall = None
        if self._producer is not None and not self._connection.closed:
            self._callProducer("resumeProducing", self._producer)

    def _callProducer(self, method: str, producer: Any) -> None:
        # A producer's error must not escape into a pass (stranding messages) or into the
        # reactor (which would drop this connection).
        try:
            getattr(producer, method)()
        except Exception:
            self._connection._log.failure(
                "{connection}: producer {producer!r} failed in {method}",
                connection=self._connection,
                producer=producer,
                method=method,
            )

    # -- shutdown ----------------------------------------------------------------------------

    def close(self) -> None:
        """
        The connection is closing: hand libzmq what it takes now (linger may deliver it),
        drop the rest (counted and logged), stop the timers, fail the drain waiters if
        anything was dropped, and stop the producer.
        """
        if self.length:
            try:
                self.flush()
            except zmq.ZMQError:
                pass  # closing anyway; what is left is dropped below
        for call in (self._pullCall, self._retryCall):
            if call is not None and call.active():
                call.cancel()
        self._pullCall = self._retryCall = None
        left, self.length = self.length, 0
        self._destinations.clear()
        if left:
            self.dropped += left
            self._connection._log.warn(
                "{connection}: shut down with {count} unsent message(s) dropped",
                connection=self._connection,
                count=left,
            )

    def afterClose(self, dropped: int) -> None:
        """User-visible consequences, once the socket is closed."""
        if self._drainWaiters:
            self._fireDrainWaiters(dropped)
        producer, self._producer = self._producer, None
        if producer is not None:
            self._callProducer("stopProducing", producer)

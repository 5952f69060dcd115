"""
The FD engine: the only code that reads a ZeroMQ socket and its ``EVENTS``.

ZeroMQ's ``ZMQ_FD`` is edge-triggered and only says "something changed". Any ``send``,
``recv``, ``bind``, ``connect``, option change or ``getsockopt(EVENTS)`` may consume that edge
while messages are waiting, after which the FD stays quiet until something *else* happens.
So every such operation is followed, sooner or later in the same reactor turn, by a *pass*
(:meth:`_Engine.runPass`): flush queued sends, read a bounded batch, read ``EVENTS`` and, if
work remains, schedule another pass with ``callLater(0)``. Passes are coalesced: at most one is
ever scheduled.

A pass is bounded in messages, in time and in frames: the time budget is checked inside a
long message too, and the part already read waits for the next pass (a message's frames are
all in libzmq's queue, so ``EVENTS`` keeps saying ``POLLIN`` until it is read).

The read loop has a native twin (``_speedups.pyx``'s ``NativeSocket.readBatch``, chosen by
:mod:`txzmq2._fastpath`): same steps, same budgets, without a Python object per frame. Long
messages go on in :meth:`_Engine._readLong` on both paths.
"""

from __future__ import annotations

import errno
from time import monotonic
from typing import TYPE_CHECKING

import zmq
from zmq.backend import Socket as _BaseSocket

if TYPE_CHECKING:
    from twisted.internet.base import DelayedCall

    from txzmq2._fastpath import FrameMetadata, NativeSocket
    from txzmq2._frames import Message
    from txzmq2.connection import ZmqConnection

__all__: list[str] = []

# Plain ints: arithmetic on pyzmq's IntFlag constants costs more than the operation itself.
_NOBLOCK = int(zmq.NOBLOCK)
_POLLIN = int(zmq.POLLIN)
_POLLOUT = int(zmq.POLLOUT)
_EVENTS = int(zmq.EVENTS)
# A message with more frames than this is read in the slow, budgeted loop.
_LONG = 128


class _Engine:
    """
    Runs a connection's passes. Owns the pass schedule, the read budget and a partly read
    message; the outbound side is the connection's ``_outbound``.
    """

    __slots__ = (
        "_connection",
        "_discarded",
        "_events",
        "_getOption",
        "_lookedAfterSend",
        "_native",
        "_outbound",
        "_partial",
        "_partialFirst",
        "_recv",
        "deliveringFrame",
        "discarded",
        "inPass",
        "passCall",
        "reads",
        "received",
    )

    def __init__(self, connection: ZmqConnection, reads: bool) -> None:
        self._connection = connection
        self._outbound = connection._outbound
        socket = connection.socket
        # pyzmq's Cython recv and get, past the Python wrappers (which only add DRAFT
        # routing_id/group handling and enum conversion): a third of the per-frame cost.
        self._recv = _BaseSocket.recv.__get__(socket)
        self._getOption = _BaseSocket.get.__get__(socket)
        # The native read loop, unless the connection's messages need zmq.Frame objects
        # (draft sockets read routing ids and groups from the delivering frame).
        self._native: NativeSocket | None = None
        if reads and not connection._readsFrames:
            self._native = connection._native
        # EVENTS, read natively when the extension is there (pyzmq's option machinery
        # otherwise): the check after a send made outside a pass.
        if connection._native is not None:
            self._events = connection._native.events
        else:
            getOption = self._getOption
            self._events = lambda: getOption(_EVENTS)
        self._lookedAfterSend = False
        self.reads = reads
        self.inPass = False
        self.passCall: DelayedCall | None = None
        self.received = 0
        """Whole messages delivered."""
        self.discarded = 0
        """Whole messages dropped for having more than ``maxFramesPerMessage`` frames."""
        # The first frame of the message being delivered, for messageProperty (on the
        # native path, an object with the same ``get``).
        self.deliveringFrame: zmq.Frame | FrameMetadata | None = None
        # A message whose reading the time budget interrupted, and its first frame; with
        # _discarded > 0, one past maxFramesPerMessage, whose frames are being dropped.
        self._partial: Message | None = None
        self._partialFirst: zmq.Frame | FrameMetadata | None = None
        self._discarded = 0

    def schedulePass(self) -> None:
        if self.passCall is None and not self._connection._closed:
            self.passCall = self._connection._reactor.callLater(0, self._scheduledPass)

    def _scheduledPass(self) -> None:
        self.passCall = None
        self._connection._runPass()

    def afterSend(self) -> None:
        """
        A message went to libzmq at once, maybe from outside a pass. libzmq processes its
        pending commands inside a send, so the send may have consumed the FD's edge with
        messages already waiting to be read: something must look at ``EVENTS``. A pass
        running or scheduled will. Otherwise look now, which costs a fraction of a pass
        scheduled with ``callLater(0)``, and schedule one only when a message waits. A
        second send before any pass schedules the pass instead (one look per burst, not
        one per message), and a connection that does not read has nothing to look for.
        Callers skip the call inside a pass (the hot path: a reply sent from a delivery).
        """
        if self.inPass or self.passCall is not None:
            return
        connection = self._connection
        if self._outbound.afterEmpty:
            self.schedulePass()  # drain waiters to fire, a backoff to reset: the pass does it
            return
        if not self.reads or connection._readPaused or connection._closed:
            return  # resumeProducing schedules the pass that reads
        if self._lookedAfterSend:
            self.schedulePass()
            return
        self._lookedAfterSend = True
        try:
            events = self._events()
        except zmq.ZMQError:
            self.schedulePass()  # the pass deals with it (a terminated context, say)
            return
        if events & _POLLIN:
            self.schedulePass()

    def cancel(self) -> None:
        if self.passCall is not None and self.passCall.active():
            self.passCall.cancel()
        self.passCall = None

    def runPass(self, woken: bool = False) -> bool:
        """
        Flush queued sends, deliver a bounded batch of messages, then look at ``EVENTS``
        and schedule another pass if anything is left to do. Returns whether messages may
        still wait unread (the budget ran out, reading is paused, or this pass could not
        read: it was re-entered or interrupted).
        """
        connection = self._connection
        if connection._closed:
            return False
        if self.inPass:
            # A callback re-entered us; finish the current pass and come back.
            self.schedulePass()
            return True
        self.inPass = True
        self._lookedAfterSend = False
        outbound = self._outbound
        try:
            if outbound.length:
                outbound.flush()
            events: int | None = None
            reading = self.reads and not connection._readPaused
            if reading:
                events = self._readBatch(woken)
            if connection.closed:  # a callback shut us down (the property: mypy narrows)
                return False
            if events is None:
                # Reading EVENTS consumes the edge too, so act on what it says right here.
                events = self._getOption(_EVENTS)
        except zmq.ContextTerminated:
            connection._log.warn(
                "{connection}: context terminated under it", connection=connection
            )
            connection.shutdown()
            return False
        except zmq.ZMQError as error:
            if error.errno == errno.EINTR:
                self.schedulePass()
                return True
            connection._log.failure(
                "{connection}: socket failed; shutting down", connection=connection
            )
            connection.shutdown()
            return False
        finally:
            self.inPass = False
            self.deliveringFrame = None
        waiting = events & _POLLIN
        if waiting and reading:
            self.schedulePass()
        elif events & _POLLOUT and outbound.length:
            outbound.writable()
        if not outbound.length and outbound.afterEmpty:
            # Last: what drain waiters do next (send more, shut down) finds the pass done.
            outbound.afterPass()
        return waiting != 0

    def _readBatch(self, woken: bool) -> int | None:
        """
        Deliver up to a batch of messages. Returns ``EVENTS`` when reading them was the
        last socket operation (the pass then need not read them again), else ``None``.
        """
        connection = self._connection
        recv = self._recv
        limit = connection.readBatchSize
        deadline = monotonic() + connection.readBatchSeconds
        deliver = connection.receiver or connection.messageReceived
        count = 0
        if self._partial is not None:
            whole, message = self._readLong(deadline)
            if not whole:
                return None  # the budget ran out inside it again
            count += 1
            if message is not None:
                self._deliver(deliver, message)
                if connection._closed or connection._readPaused:
                    return None
        # Most wake-ups carry one message (request-reply). Ending a recv loop costs a
        # zmq.Again exception, twice the price of reading EVENTS: so look before the
        # second read, and before the first unless the FD woke us (then a message is
        # almost always there, and recv itself processes libzmq's pending commands); a
        # burst beyond that reads until Again.
        probe = not woken
        if self._native is not None:
            return self._native.readBatch(
                self, connection, deliver, limit, deadline, probe, count, _LONG
            )
        while count < limit:
            if probe:
                events: int = self._getOption(_EVENTS)
                if not events & _POLLIN:
                    return events
            try:
                frame = recv(_NOBLOCK, copy=False)
            except zmq.Again:
                break
            message = [frame.bytes]
            self.deliveringFrame = frame  # its metadata, for messageProperty
            # The rest of a multipart message is already here: messages arrive whole...
            whole = True
            while frame.more:
                if len(message) >= _LONG:
                    self._partial = message
                    self._partialFirst = frame
                    whole, message = self._readLong(deadline)
                    break
                try:
                    frame = recv(_NOBLOCK, copy=False)
                except zmq.Again:
                    # ...except upstream at an XPUB, which may hand over a frame flagged
                    # "more" and then drop the next one (a subscription it filters out).
                    # The message ends here; what follows is the next one.
                    break
                message.append(frame.bytes)
            if not whole:
                break  # the budget ran out inside a long message; the next pass goes on
            count += 1
            probe = count == 1
            if message is not None:
                # Inline, not _deliver: this is the hot path (a call per message costs).
                self.received += 1
                try:
                    deliver(message)
                except Exception:
                    connection._log.failure(
                        "{connection}: unhandled error while delivering a message",
                        connection=connection,
                    )
                if connection._closed or connection._readPaused:
                    break
            if monotonic() > deadline:
                break
        # Budget spent with POLLIN still set: the EVENTS check in runPass schedules the rest.
        return None

    def _deliver(self, deliver: object, message: Message) -> None:
        # Counted before delivery: the receiver may look at the count (and run on). The
        # native read loop does the same inline.
        self.received += 1
        try:
            deliver(message)  # type: ignore[operator]
        except Exception:
            self._deliveryFailed()

    def _deliveryFailed(self) -> None:
        """Log the exception a receiver raised (called while it is being handled)."""
        self._connection._log.failure(
            "{connection}: unhandled error while delivering a message",
            connection=self._connection,
        )

    def _readLong(self, deadline: float) -> tuple[bool, Message | None]:
        """
        Go on reading the long message in ``_partial``, checking the time budget every
        ``_LONG`` frames. Returns whether the message was read to its end, and the message,
        or ``None`` when it passed ``maxFramesPerMessage`` and was dropped whole. When the
        budget ran out first, ``_partial`` keeps it for the next pass.
        """
        message = self._partial
        assert message is not None
        self.deliveringFrame = self._partialFirst
        recv = self._recv
        bound = self._connection.maxFramesPerMessage
        discarded = self._discarded
        while True:
            for _ in range(_LONG):
                try:
                    frame = recv(_NOBLOCK, copy=False)
                except zmq.Again:
                    more = False  # the XPUB quirk above: the message ends here
                else:
                    more = frame.more
                    if discarded:
                        discarded += 1
                    elif len(message) >= bound:
                        # Dropped whole: a truncated message would be misread.
                        discarded = len(message) + 1
                        message.clear()
                    else:
                        message.append(frame.bytes)
                if not more:
                    self._partial = self._partialFirst = None
                    self._discarded = 0
                    if not discarded:
                        return True, message
                    self.discarded += 1
                    connection = self._connection
                    connection._log.warn(
                        "{connection}: dropped a message of {frames} frames"
                        " (maxFramesPerMessage={bound})",
                        connection=connection,
                        frames=discarded,
                        bound=connection.maxFramesPerMessage,
                    )
                    return True, None
            if monotonic() > deadline:
                self._discarded = discarded
                return False, None

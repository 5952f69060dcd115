"""
The one-liners of the ``txzmq2`` command: ``req``, ``rep``, ``pub``, ``sub``, ``push`` and
``pull``, for poking at a live system from a shell.

Lines in: each line of stdin is one message; it is one frame, or, with a separator, split
into frames at each separator. Lines out: each message received is printed on one line,
its frames joined by the separator (:data:`OUTPUT_SEPARATOR` when none was given). A frame
that would not read back unambiguously (empty, not UTF-8, with a non-printable character or
the separator in it, or looking like a bytes literal) is printed as a Python bytes literal,
``b'\\x00\\x01'``.

Each one-liner is a :class:`~txzmq2.app.service.ZmqService` whose ``whenDone`` fires with the
exit status when it is finished by itself (stdin ended and everything was delivered, or
``count`` messages arrived); the command then stops the reactor.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence
from typing import IO, Any

from twisted.internet.defer import Deferred, succeed
from twisted.internet.error import ConnectionDone
from twisted.internet.interfaces import IPushProducer, IReadDescriptor
from twisted.python.failure import Failure
from zope.interface import implementer

from txzmq2.app.service import ZmqService
from txzmq2.connection import Message, ZmqConnection
from txzmq2.endpoint import ZmqEndpoint
from txzmq2.errors import ZmqConnectionClosed, ZmqRequestTimeoutError, ZmqTimeoutError
from txzmq2.factory import ZmqFactory
from txzmq2.pubsub import ZmqSubConnection, ZmqXPubConnection
from txzmq2.pushpull import ZmqPullConnection, ZmqPushConnection
from txzmq2.reqrep import ZmqREPConnection, ZmqREQConnection

__all__ = [
    "OUTPUT_SEPARATOR",
    "OneLinerService",
    "PubService",
    "PullService",
    "PushService",
    "RepService",
    "ReqService",
    "SubService",
    "formatMessage",
    "splitFrames",
]

OUTPUT_SEPARATOR = b" | "
"""What frames are printed apart with when no separator was given."""

_READ_SIZE = 65536


def splitFrames(line: bytes, separator: bytes | None) -> list[bytes]:
    """The frames of one input line (its line ending already removed)."""
    return [line] if separator is None else line.split(separator)


def formatMessage(frames: Sequence[bytes], separator: bytes | None) -> bytes:
    """One output line (with its newline) showing ``frames``."""
    joint = OUTPUT_SEPARATOR if separator is None else separator
    return joint.join(_formatFrame(frame, joint) for frame in frames) + b"\n"


def _formatFrame(frame: bytes, joint: bytes) -> bytes:
    try:
        text = frame.decode("utf-8")
    except UnicodeDecodeError:
        text = ""
    if text.isprintable() and text and joint not in frame and not text.startswith(("b'", 'b"')):
        return frame
    return repr(frame).encode("ascii")


@implementer(IReadDescriptor, IPushProducer)
class _LineReader:
    """
    Lines of a file descriptor (stdin) read on the reactor, as a push producer.

    Not ``twisted.internet.stdio.StandardIO``: that makes stdin and stdout non-blocking,
    which they stay for the shell after we exit (they are shared with it), and it owns
    stdout. One ``os.read`` per readiness report never blocks, so the descriptor can stay
    as it is. (A regular file cannot be watched by epoll; the reactor polls it instead.)
    """

    def __init__(
        self,
        reactor: Any,
        gotLine: Callable[[bytes], object],
        gotEnd: Callable[[], object],
        fd: int = 0,
    ) -> None:
        self.reactor = reactor
        self.gotLine = gotLine
        self.gotEnd = gotEnd
        self.fd = fd
        self._buffer = b""
        self._reading = False
        self._paused = False
        self._ended = False

    def start(self) -> None:
        """Start reading."""
        self._setReading()

    def _setReading(self) -> None:
        wanted = not (self._paused or self._ended)
        if wanted and not self._reading:
            self.reactor.addReader(self)
        elif self._reading and not wanted:
            self.reactor.removeReader(self)
        self._reading = wanted

    def fileno(self) -> int:
        return self.fd

    def logPrefix(self) -> str:
        return "stdin"

    def doRead(self) -> None:
        try:
            data = os.read(self.fd, _READ_SIZE)
        except OSError:
            data = b""  # a terminal gone away reads as EIO: the end, too
        if not data:
            self._end()
            return
        lines = (self._buffer + data).split(b"\n")
        self._buffer = lines.pop()
        for line in lines:
            if self._ended:
                return
            self.gotLine(line.removesuffix(b"\r"))

    def connectionLost(self, reason: Failure) -> None:
        # A pipe's writer closing can show as a hang-up rather than an empty read; the
        # reactor stopping shows as ConnectionLost, which is no end of input.
        if isinstance(reason.value, ConnectionDone):
            self._end()
        else:
            self.stopProducing()

    def _end(self) -> None:
        if self._ended:
            return
        self.stopProducing()
        if self._buffer:
            # A last line without a newline is a line all the same.
            line, self._buffer = self._buffer, b""
            self.gotLine(line.removesuffix(b"\r"))
        self.gotEnd()

    def pauseProducing(self) -> None:
        """Stop reading for now (the connection's send queue is full)."""
        self._paused = True
        self._setReading()

    def resumeProducing(self) -> None:
        """Read again."""
        self._paused = False
        self._setReading()

    def stopProducing(self) -> None:
        """Stop reading for good."""
        self._ended = True
        self._setReading()


class OneLinerService(ZmqService):
    """
    What every one-liner has: its endpoints, the frame separator, an optional message
    count after which it is done, stdin and stdout, and ``whenDone``.
    """

    def __init__(
        self,
        name: str,
        endpoints: Sequence[ZmqEndpoint],
        separator: bytes | None = None,
        count: int | None = None,
        stdin: int = 0,
        stdout: IO[bytes] | None = None,
        reactor: Any = None,
    ) -> None:
        super().__init__(name, reactor=reactor)
        self.endpoints = list(endpoints)
        self.separator = separator
        self.count = count
        self.received = 0
        self.stdin = stdin
        self.stdout = sys.stdout.buffer if stdout is None else stdout
        self.reader: _LineReader | None = None
        self.whenDone: Deferred[int] = Deferred()
        """Fires with the exit status once the one-liner is finished by itself."""

    def readLines(self, factory: ZmqFactory) -> _LineReader:
        """Start reading stdin: lines go to :meth:`gotLine`, its end to :meth:`gotEnd`."""
        self.reader = _LineReader(factory.reactor, self.gotLine, self.gotEnd, self.stdin)
        self.reader.start()
        return self.reader

    def gotLine(self, line: bytes) -> None:
        """Called with each line of stdin (without its line ending), once reading."""
        raise NotImplementedError(f"{type(self).__name__} reads no lines")

    def gotEnd(self) -> None:
        """Called once stdin has ended (after its last line)."""
        raise NotImplementedError(f"{type(self).__name__} reads no lines")

    def output(self, frames: Sequence[bytes]) -> None:
        """Print a message on stdout; when stdout is closed (``| head``), finish."""
        try:
            self.stdout.write(formatMessage(frames, self.separator))
            self.stdout.flush()
        except BrokenPipeError:
            # Nobody reads any more: say nothing more, not even at interpreter exit.
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, self.stdout.fileno())
            os.close(devnull)
            self.finish(0)

    def counted(self) -> None:
        """One more message handled: finish once ``count`` of them were."""
        self.received += 1
        if self.count is not None and self.received >= self.count:
            self.finish(0)

    def finish(self, status: int) -> None:
        """Finished by itself: fire ``whenDone`` with the exit status (once)."""
        if self.reader is not None:
            self.reader.stopProducing()
        if not self.whenDone.called:
            self.whenDone.callback(status)

    def stopService(self) -> Deferred[None]:
        """
        Stop reading stdin and shut the connection down.

        :return: a Deferred firing with ``None`` once the context is terminated.
        """
        if self.reader is not None:
            self.reader.stopProducing()
        return super().stopService()


class _Receiver(ZmqConnection):
    """A connection handing every whole message (every frame) to ``onMessage``."""

    def __init__(self, factory: ZmqFactory, onMessage: Callable[[Message], None]) -> None:
        self.onMessage = onMessage
        super().__init__(factory)

    def messageReceived(self, message: Message) -> None:
        self.onMessage(message)


class _Sub(_Receiver, ZmqSubConnection):
    pass


class _Pull(_Receiver, ZmqPullConnection):
    pass


class ReqService(OneLinerService):
    """
    ``req``: send each line as a request; print the replies in the order of the requests.
    Done when stdin has ended and every request is answered or timed out: status 0 when
    all were answered, 1 when some were not.

    :param timeout: seconds each request waits for its reply.
    """

    def __init__(self, endpoints: Sequence[ZmqEndpoint], timeout: float, **kwargs: Any) -> None:
        super().__init__("req", endpoints, **kwargs)
        self.timeout = timeout
        self.sent = 0
        self.unanswered = 0
        # Replies are printed in request order: each waits for the ones before it.
        self._printed: Deferred[None] = succeed(None)

    def build(self, factory: ZmqFactory) -> None:
        self.connection = ZmqREQConnection(factory)
        self.attach(self.connection, self.endpoints)
        self.readLines(factory)

    def gotLine(self, line: bytes) -> None:
        self.sent += 1
        reply = self.connection.sendMsg(*splitFrames(line, self.separator), timeout=self.timeout)
        self._printed.addCallback(lambda _: reply).addCallbacks(
            self.output, self._noReply, errbackArgs=(self.sent,)
        )

    def _noReply(self, failure: Failure, number: int) -> None:
        if isinstance(failure.value, ZmqConnectionClosed):
            return  # stopping
        self.unanswered += 1
        if isinstance(failure.value, ZmqRequestTimeoutError):
            self.log.error(
                "req: no reply to request {number} within {timeout} s",
                number=number,
                timeout=self.timeout,
            )
        else:
            self.log.failure("req: request {number} failed", failure, number=number)

    def gotEnd(self) -> None:
        self._printed.addCallback(lambda _: self.finish(1 if self.unanswered else 0))


class _RepConnection(ZmqREPConnection):
    def __init__(
        self, factory: ZmqFactory, onRequest: Callable[[bytes, tuple[bytes, ...]], None]
    ) -> None:
        self.onRequest = onRequest
        super().__init__(factory)

    def gotMessage(self, messageId: bytes, *messageParts: bytes) -> None:
        self.onRequest(messageId, messageParts)


class RepService(OneLinerService):
    """
    ``rep``: print each request and answer it, with its own frames (echo) or with
    ``reply``. Done (status 0) after ``count`` replies, if given.

    :param reply: the reply frames (``None``: echo the request).
    """

    def __init__(
        self, endpoints: Sequence[ZmqEndpoint], reply: list[bytes] | None, **kwargs: Any
    ) -> None:
        super().__init__("rep", endpoints, **kwargs)
        self.reply = reply

    def build(self, factory: ZmqFactory) -> None:
        self.connection = _RepConnection(factory, self._gotRequest)
        self.attach(self.connection, self.endpoints)

    def _gotRequest(self, messageId: bytes, parts: tuple[bytes, ...]) -> None:
        if self.whenDone.called:
            return  # done: the request goes unanswered, as if we had stopped
        self.output(parts)
        self.connection.reply(messageId, *(parts if self.reply is None else self.reply))
        self.counted()


class _XPub(ZmqXPubConnection):
    # Every subscription, not only the first to each topic: the count waits for each.
    xpubVerbose = True

    def __init__(self, factory: ZmqFactory, onSubscription: Callable[[bytes], None]) -> None:
        self.onSubscription = onSubscription
        super().__init__(factory)

    def gotSubscription(self, tag: bytes, subscribed: bool) -> None:
        if subscribed:
            self.onSubscription(tag)


class PubService(OneLinerService):
    """
    ``pub``: publish each line (after ``topic`` as a first frame, if given). Done when
    stdin has ended; the socket then lingers up to ``timeout`` to deliver what it holds.

    Publications nobody has subscribed to yet are dropped, as with any PUB; so with
    ``waitSubscriptions`` lines are held until that many subscriptions have arrived
    (status 1 if they do not within ``timeout``).
    """

    def __init__(
        self,
        endpoints: Sequence[ZmqEndpoint],
        topic: bytes | None,
        waitSubscriptions: int,
        timeout: float,
        **kwargs: Any,
    ) -> None:
        super().__init__("pub", endpoints, **kwargs)
        self.topic = topic
        self.waitSubscriptions = waitSubscriptions
        self.timeout = timeout
        self.subscriptions = 0
        self._held: list[list[bytes]] | None = [] if waitSubscriptions else None
        self._ended = False
        self._timer: Any = None

    def build(self, factory: ZmqFactory) -> None:
        self.connection = _XPub(factory, self._gotSubscription)
        self.attach(self.connection, self.endpoints)
        if self._held is not None:
            self.log.info(
                "pub: holding publications until {count} subscription(s) arrive",
                count=self.waitSubscriptions,
            )
            self._timer = factory.reactor.callLater(self.timeout, self._noSubscribers)
        self.readLines(factory)

    def gotLine(self, line: bytes) -> None:
        frames = splitFrames(line, self.separator)
        if self.topic is not None:
            frames.insert(0, self.topic)
        if self._held is None:
            self.connection.send(frames)
        else:
            self._held.append(frames)

    def _gotSubscription(self, tag: bytes) -> None:
        self.subscriptions += 1
        if self._held is not None and self.subscriptions >= self.waitSubscriptions:
            self._cancelTimer()
            held, self._held = self._held, None
            for frames in held:
                self.connection.send(frames)
            if self._ended:
                self._delivered()

    def _noSubscribers(self) -> None:
        self._timer = None
        self.log.error(
            "pub: {count} of {wanted} subscription(s) within {timeout} s; nothing published",
            count=self.subscriptions,
            wanted=self.waitSubscriptions,
            timeout=self.timeout,
        )
        self.finish(1)

    def _cancelTimer(self) -> None:
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None

    def gotEnd(self) -> None:
        self._ended = True
        if self._held is None:
            self._delivered()

    def _delivered(self) -> None:
        if self.factory is not None:
            self.factory.lingerPeriod = round(self.timeout * 1000)
        self.finish(0)

    def stopService(self) -> Deferred[None]:
        """
        Stop waiting for subscriptions, stop reading stdin and shut the connection down.

        :return: a Deferred firing with ``None`` once the context is terminated.
        """
        self._cancelTimer()
        return super().stopService()


class SubService(OneLinerService):
    """
    ``sub``: subscribe to ``topics`` (every message when empty) and print what arrives
    (the topic frame included). Done (status 0) after ``count`` messages, if given.
    """

    def __init__(
        self, endpoints: Sequence[ZmqEndpoint], topics: Sequence[bytes], **kwargs: Any
    ) -> None:
        super().__init__("sub", endpoints, **kwargs)
        self.topics = list(topics) or [b""]

    def build(self, factory: ZmqFactory) -> None:
        connection = _Sub(factory, self._gotMessage)
        for topic in self.topics:
            connection.subscribe(topic)
        self.attach(connection, self.endpoints)

    def _gotMessage(self, message: Message) -> None:
        if not self.whenDone.called:
            self.output(message)
            self.counted()


class PushService(OneLinerService):
    """
    ``push``: push each line. Done when stdin has ended, a peer has connected and every
    message was handed to libzmq, which then has up to ``timeout`` (in all) to deliver
    them; status 1 when no peer connected within ``timeout``.
    """

    def __init__(self, endpoints: Sequence[ZmqEndpoint], timeout: float, **kwargs: Any) -> None:
        super().__init__("push", endpoints, **kwargs)
        self.timeout = timeout
        self.sent = 0

    def build(self, factory: ZmqFactory) -> None:
        # Socket events watched before the connect, for _deliver's whenConnected.
        self.connection = ZmqPushConnection(factory, monitored=True)
        self.attach(self.connection, self.endpoints)
        # Reading pauses while the send queue is full: a big file is not read into memory.
        self.connection.registerProducer(self.readLines(factory), True)

    def gotLine(self, line: bytes) -> None:
        self.sent += 1
        self.connection.send(splitFrames(line, self.separator))

    def gotEnd(self) -> None:
        Deferred.fromCoroutine(self._deliver()).addCallbacks(self.finish, self._failed)

    async def _deliver(self) -> int:
        connection = self.connection
        reactor = connection.factory.reactor
        deadline = reactor.seconds() + self.timeout
        try:
            await connection.whenConnected(self.timeout)
        except ZmqTimeoutError:
            self.log.error(
                "push: no peer connected within {timeout} s; {count} message(s) not delivered",
                timeout=self.timeout,
                count=self.sent,
            )
            return 1
        try:
            await connection.whenSendQueueEmpty(max(0.0, deadline - reactor.seconds()))
        except ZmqTimeoutError:
            self.log.error(
                "push: {count} message(s) still queued after {timeout} s",
                count=connection.sendQueueLength,
                timeout=self.timeout,
            )
            return 1
        # Closing lingers until libzmq has sent what it holds, or the time is up.
        connection.factory.lingerPeriod = max(1, round((deadline - reactor.seconds()) * 1000))
        return 0

    def _failed(self, failure: Failure) -> None:
        if not isinstance(failure.value, ZmqConnectionClosed):
            self.log.failure("push: delivering failed", failure)
            self.finish(1)


class PullService(OneLinerService):
    """``pull``: print each message pulled. Done (status 0) after ``count``, if given."""

    def __init__(self, endpoints: Sequence[ZmqEndpoint], **kwargs: Any) -> None:
        super().__init__("pull", endpoints, **kwargs)

    def build(self, factory: ZmqFactory) -> None:
        self.attach(_Pull(factory, self._gotMessage), self.endpoints)

    def _gotMessage(self, message: Message) -> None:
        if not self.whenDone.called:
            self.output(message)
            self.counted()

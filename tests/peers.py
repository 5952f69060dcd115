"""
Reference peers: plain blocking pyzmq sockets run in a thread, reporting to the reactor
(:class:`BlockingServer` answers as it goes on, even while the reactor is held); a collecting
txzmq2 PULL; and a script serving in a process of its own.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from twisted.internet.defer import Deferred
from twisted.python.failure import Failure

from txzmq2 import ZmqPullConnection

T = TypeVar("T")

PEER_TIMEOUT_MS = 10_000
"""Receive/send timeout of reference sockets: a broken test ends instead of hanging."""


def inThread(function: Callable[..., T], *args: Any) -> Deferred[T]:
    """
    Run ``function(*args)`` in a new thread; the Deferred fires on the reactor thread with
    its result (or its exception) after the thread has ended.
    """
    from twisted.internet import reactor

    done: Deferred[T] = Deferred()

    def finish(result: Any) -> None:
        thread.join()
        if isinstance(result, Failure):
            done.errback(result)
        else:
            done.callback(result)

    def run() -> None:
        try:
            result: Any = function(*args)
        except BaseException:
            result = Failure()
        reactor.callFromThread(finish, result)

    thread = threading.Thread(target=run, name=f"peer-{function.__name__}", daemon=True)
    thread.start()
    return done


def blockingSocket(context: Any, socketType: int, **options: Any) -> Any:
    """A pyzmq socket with bounded timeouts and no linger, for use inside a peer thread."""
    import zmq

    socket = context.socket(socketType)
    socket.setsockopt(zmq.LINGER, 0)
    socket.setsockopt(zmq.RCVTIMEO, PEER_TIMEOUT_MS)
    socket.setsockopt(zmq.SNDTIMEO, PEER_TIMEOUT_MS)
    for name, value in options.items():
        socket.setsockopt(getattr(zmq, name.upper()), value)
    return socket


class BlockingServer:
    """
    A blocking pyzmq socket of ``socketType`` bound on tcp 127.0.0.1 (``address``) that
    answers each message with what ``answer`` returns for it (``None``: nothing), after
    ``answerAfter`` seconds, counting what it receives (``received``). Served by :meth:`run`
    in a thread (``runPeer``) until :meth:`stop`; it answers also while the reactor of the
    code under test is held.
    """

    def __init__(
        self,
        context: Any,
        socketType: int,
        answer: Callable[[list[bytes]], list[bytes] | None] = lambda message: message,
        answerAfter: float = 0.0,
    ) -> None:
        import zmq

        self.answer = answer
        self.answerAfter = answerAfter
        self.received = 0
        self._stop = threading.Event()
        # Made here, used only by the thread running run(): starting a thread is the full
        # memory barrier ZeroMQ asks for when a socket changes threads.
        self.socket = blockingSocket(context, socketType)
        self.socket.bind("tcp://127.0.0.1:*")
        self.address: str = self.socket.getsockopt_string(zmq.LAST_ENDPOINT)

    def stop(self) -> None:
        self._stop.set()

    def run(self) -> None:
        try:
            while not self._stop.is_set():
                if not self.socket.poll(5):
                    continue
                message = self.socket.recv_multipart()
                self.received += 1
                reply = self.answer(message)
                if reply is not None:
                    time.sleep(self.answerAfter)
                    self.socket.send_multipart(reply)
        finally:
            self.socket.close()


class CollectingPull(ZmqPullConnection):
    """
    A txzmq2 PULL that records what it receives (``received``) and fires ``done`` once
    ``expected`` messages have arrived.
    """

    expected = 0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.received: list[list[bytes]] = []
        self.done: Deferred[None] = Deferred()
        super().__init__(*args, **kwargs)

    def onPull(self, message: list[bytes]) -> None:
        self.received.append(message)
        if len(self.received) == self.expected:
            self.done.callback(None)


class ScriptProcess:
    """
    A Python script (``python -c``) serving in its own process, to be killed (SIGKILL),
    frozen (SIGSTOP) and restarted: the script prints the endpoint it bound, then serves.
    """

    def __init__(self, script: str) -> None:
        self.script = script
        self.process: subprocess.Popen[str] | None = None

    def start(self, *arguments: str) -> Deferred[str]:
        """Start the script with ``arguments``; fires with the endpoint it printed."""
        self.process = subprocess.Popen(
            [sys.executable, "-c", self.script, *arguments],
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        stdout = self.process.stdout
        assert stdout is not None
        return inThread(lambda: stdout.readline().strip())

    def signal(self, number: int) -> None:
        assert self.process is not None
        self.process.send_signal(number)

    def exited(self) -> Deferred[int]:
        """Fires with the exit code once the process has ended by itself."""
        process = self.process
        assert process is not None
        return inThread(lambda: process.wait(timeout=30))

    def kill(self) -> None:
        if self.process is not None:
            if self.process.poll() is None:
                self.process.send_signal(signal.SIGKILL)
                self.process.wait(timeout=10)
            if self.process.stdout is not None:
                self.process.stdout.close()
        self.process = None

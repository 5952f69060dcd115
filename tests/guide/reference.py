"""
Reference peers of the ZeroMQ Guide's request-reply patterns (chapters 3 and 4), written from
the Guide's description of each pattern with plain blocking pyzmq, nothing from txzmq2:

- :class:`RequestReplyBroker`: the extended request-reply broker (a ROUTER for clients, a
  DEALER for services, every message passed on as it is, both ways);
- :func:`lazyPirateClient`: a REQ client that, when a reply does not come in time, closes
  its socket, opens a new one and sends the request again, a bounded number of times;
- :class:`LazyPirateServer`: a REP server that serves until it "crashes" (closes its socket
  without replying) on a chosen request;
- :class:`LoadBalancingBroker`: the load-balancing broker, a ROUTER for REQ clients and a
  ROUTER for REQ workers, each worker announcing itself with a first request ``READY`` and
  then getting ``[client, b"", request]`` and answering ``[client, b"", reply]``;
- :class:`PirateWorker` and :class:`PirateQueue`: Paranoid Pirate's worker (a DEALER that
  says READY, heartbeats, and reconnects when the queue falls silent) and queue (two
  ROUTERs; it heartbeats its workers and forgets silent ones). Control messages are one
  frame, READY ``\\x01`` and HEARTBEAT ``\\x02``; a request is ``[client, b"", body]``.

Each class serves in a thread (:func:`tests.peers.inThread`) until :meth:`stop`, polling in
short slices so it notices a stop promptly.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import zmq

from tests.peers import blockingSocket

POLL_SLICE = 0.01
"""Seconds a peer blocks at most before looking at its stop flag and its clocks."""
PPP_READY = b"\x01"
PPP_HEARTBEAT = b"\x02"


class _Serving:
    def __init__(self) -> None:
        self._stop = threading.Event()

    def stop(self) -> None:
        self._stop.set()


class RequestReplyBroker(_Serving):
    """The Guide's rrbroker: ROUTER frontend and DEALER backend, both bound at construction
    (``frontend``, ``backend`` are the resolved endpoints); :meth:`run` forwards until stop."""

    def __init__(self, context: zmq.Context[Any]) -> None:
        super().__init__()
        self.front = blockingSocket(context, zmq.ROUTER)
        self.back = blockingSocket(context, zmq.DEALER)
        self.front.bind("tcp://127.0.0.1:*")
        self.back.bind("tcp://127.0.0.1:*")
        self.frontend: str = self.front.getsockopt_string(zmq.LAST_ENDPOINT)
        self.backend: str = self.back.getsockopt_string(zmq.LAST_ENDPOINT)

    def run(self) -> int:
        """Forward until stopped; return how many messages went each way, added up."""
        poller = zmq.Poller()
        poller.register(self.front, zmq.POLLIN)
        poller.register(self.back, zmq.POLLIN)
        forwarded = 0
        try:
            while not self._stop.is_set():
                for socket, _ in poller.poll(int(POLL_SLICE * 1000)):
                    other = self.back if socket is self.front else self.front
                    other.send_multipart(socket.recv_multipart())
                    forwarded += 1
        finally:
            self.front.close(linger=0)
            self.back.close(linger=0)
        return forwarded


def lazyPirateClient(
    context: zmq.Context[Any],
    address: str,
    requests: list[bytes],
    timeout: float,
    retries: int,
) -> tuple[list[list[bytes]], int]:
    """
    Send each request in turn from a REQ socket; when no reply comes within ``timeout``
    seconds, close the socket (dropping what it held), connect a new one and send the request
    again, at most ``retries`` times per request. Only a reply that ends with the request
    counts (the Guide's servers echo it); anything else is a stray and is waited past.

    :return: the replies (their frames), and how many times a request was sent again.
    :raises AssertionError: when a request runs out of retries.
    """

    def connect() -> Any:
        socket = blockingSocket(context, zmq.REQ)
        socket.connect(address)
        return socket

    replies: list[list[bytes]] = []
    resent = 0
    socket = connect()
    try:
        for request in requests:
            left = retries
            socket.send(request)
            while True:
                if socket.poll(int(timeout * 1000)):
                    reply = socket.recv_multipart()
                    if reply[-1] == request:
                        replies.append(reply)
                        break
                    continue  # REQ answers only its last request: not ours, read on
                assert left > 0, f"no reply to {request!r} after {retries} retries"
                left -= 1
                resent += 1
                socket.close(linger=0)
                socket = connect()
                socket.send(request)
    finally:
        socket.close(linger=0)
    return replies, resent


class PirateWorker(_Serving):
    """
    A Paranoid Pirate worker: a DEALER that sends READY, then a HEARTBEAT every ``interval``;
    echoes each request ``[client, b"", body]``; after ``liveness`` intervals without a word
    from the queue, closes its socket and connects a new one after a delay that doubles from
    ``interval`` up to 32 intervals. ``invalid`` records every message it could not read,
    ``answered`` counts its replies.
    """

    def __init__(
        self, context: zmq.Context[Any], address: str, interval: float, liveness: int = 3
    ) -> None:
        super().__init__()
        self.context = context
        self.address = address
        self.interval = interval
        self.liveness = liveness
        self.invalid: list[list[bytes]] = []
        self.answered = 0
        self.connections = 0

    def _connect(self) -> Any:
        socket = blockingSocket(self.context, zmq.DEALER)
        socket.connect(self.address)
        socket.send(PPP_READY)
        self.connections += 1
        return socket

    def run(self) -> int:
        """Serve until stopped; return how many requests it answered."""
        socket = self._connect()
        delay = self.interval
        try:
            silentSince = nextBeat = time.monotonic()
            nextBeat += self.interval
            while not self._stop.is_set():
                if socket.poll(int(POLL_SLICE * 1000)):
                    frames = socket.recv_multipart()
                    silentSince = time.monotonic()
                    delay = self.interval
                    if len(frames) == 3 and frames[1] == b"":
                        socket.send_multipart(frames)
                        self.answered += 1
                    elif frames != [PPP_HEARTBEAT]:
                        self.invalid.append(frames)
                now = time.monotonic()
                if now - silentSince >= self.liveness * self.interval:
                    socket.close(linger=0)
                    if self._stop.wait(delay):
                        return self.answered
                    delay = min(2 * delay, 32 * self.interval)
                    socket = self._connect()
                    silentSince = time.monotonic()
                if now >= nextBeat:
                    socket.send(PPP_HEARTBEAT)
                    nextBeat = now + self.interval
        finally:
            socket.close(linger=0)
        return self.answered


class PirateQueue(_Serving):
    """
    A Paranoid Pirate queue: ROUTER ``frontend`` for clients and ROUTER ``backend`` for
    workers, bound at construction. Requests are read only while a worker is idle, and go to
    the one idle the longest; workers are sent a HEARTBEAT every ``interval`` and forgotten
    after ``liveness`` silent intervals. ``invalid`` records unreadable worker messages.
    """

    def __init__(self, context: zmq.Context[Any], interval: float, liveness: int = 3) -> None:
        super().__init__()
        self.interval = interval
        self.liveness = liveness
        self.invalid: list[list[bytes]] = []
        self.front = blockingSocket(context, zmq.ROUTER)
        self.back = blockingSocket(context, zmq.ROUTER)
        self.front.bind("tcp://127.0.0.1:*")
        self.back.bind("tcp://127.0.0.1:*")
        self.frontend: str = self.front.getsockopt_string(zmq.LAST_ENDPOINT)
        self.backend: str = self.back.getsockopt_string(zmq.LAST_ENDPOINT)

    def run(self) -> None:
        expires: dict[bytes, float] = {}  # every live worker, idle or not
        idle: list[bytes] = []  # the idle ones, longest idle first
        try:
            nextBeat = time.monotonic() + self.interval
            while not self._stop.is_set():
                poller = zmq.Poller()
                poller.register(self.back, zmq.POLLIN)
                if idle:
                    poller.register(self.front, zmq.POLLIN)
                ready = dict(poller.poll(int(POLL_SLICE * 1000)))
                if self.back in ready:
                    worker, *frames = self.back.recv_multipart()
                    expires[worker] = time.monotonic() + self.liveness * self.interval
                    if frames == [PPP_READY]:
                        if worker not in idle:
                            idle.append(worker)
                    elif frames == [PPP_HEARTBEAT]:
                        pass
                    elif len(frames) >= 3 and frames[1] == b"":
                        self.front.send_multipart(frames)
                        idle.append(worker)
                    else:
                        self.invalid.append(frames)
                if self.front in ready and idle:
                    self.back.send_multipart([idle.pop(0), *self.front.recv_multipart()])
                now = time.monotonic()
                if now >= nextBeat:
                    for worker, expiry in list(expires.items()):
                        if expiry <= now:
                            del expires[worker]
                            if worker in idle:
                                idle.remove(worker)
                        else:
                            self.back.send_multipart([worker, PPP_HEARTBEAT])
                    nextBeat = now + self.interval
        finally:
            self.front.close(linger=0)
            self.back.close(linger=0)


class LazyPirateServer(_Serving):
    """
    The Guide's Lazy Pirate server: a REP bound to ``address`` (``endpoint`` is the resolved
    one) that echoes each request, except that on request number ``crashAt`` it closes its
    socket without answering and :meth:`run` returns (a crash; ``None``: never).
    """

    def __init__(
        self, context: zmq.Context[Any], address: str, crashAt: int | None = None
    ) -> None:
        super().__init__()
        self.crashAt = crashAt
        self.socket = blockingSocket(context, zmq.REP)
        try:
            self.socket.bind(address)
        except zmq.ZMQError:
            self.socket.close(linger=0)  # else terminating the context would wait for it
            raise
        self.endpoint: str = self.socket.getsockopt_string(zmq.LAST_ENDPOINT)

    def run(self) -> str:
        """Serve; return ``"crashed"`` or ``"stopped"``."""
        served = 0
        try:
            while not self._stop.is_set():
                if self.socket.poll(int(POLL_SLICE * 1000)):
                    request = self.socket.recv_multipart()
                    served += 1
                    if served == self.crashAt:
                        return "crashed"
                    self.socket.send_multipart(request)
        finally:
            self.socket.close(linger=0)
        return "stopped"


class LoadBalancingBroker(_Serving):
    """
    The Guide's load-balancing broker: ROUTER ``frontend`` (REQ clients) and ROUTER
    ``backend`` (REQ workers), bound at construction. A client request is read only while a
    worker is waiting, and goes to the one waiting the longest. ``invalid`` records what it
    could not read; ``served`` counts requests per worker identity.
    """

    def __init__(self, context: zmq.Context[Any]) -> None:
        super().__init__()
        self.invalid: list[list[bytes]] = []
        self.served: dict[bytes, int] = {}
        self.front = blockingSocket(context, zmq.ROUTER)
        self.back = blockingSocket(context, zmq.ROUTER)
        self.front.bind("tcp://127.0.0.1:*")
        self.back.bind("tcp://127.0.0.1:*")
        self.frontend: str = self.front.getsockopt_string(zmq.LAST_ENDPOINT)
        self.backend: str = self.back.getsockopt_string(zmq.LAST_ENDPOINT)

    def run(self) -> None:
        waiting: list[bytes] = []
        try:
            while not self._stop.is_set():
                poller = zmq.Poller()
                poller.register(self.back, zmq.POLLIN)
                if waiting:
                    poller.register(self.front, zmq.POLLIN)
                ready = dict(poller.poll(int(POLL_SLICE * 1000)))
                if self.back in ready:
                    frames = self.back.recv_multipart()
                    # [worker, b"", b"READY"] or [worker, b"", client, b"", reply]
                    if len(frames) == 3 and frames[1:] == [b"", b"READY"]:
                        waiting.append(frames[0])
                    elif len(frames) == 5 and frames[1] == frames[3] == b"":
                        worker, _, client, _, reply = frames
                        self.front.send_multipart([client, b"", reply])
                        waiting.append(worker)
                    else:
                        self.invalid.append(frames)
                if self.front in ready and waiting:
                    frames = self.front.recv_multipart()
                    if len(frames) == 3 and frames[1] == b"":
                        client, _, request = frames
                        worker = waiting.pop(0)
                        self.served[worker] = self.served.get(worker, 0) + 1
                        self.back.send_multipart([worker, b"", client, b"", request])
                    else:
                        self.invalid.append(frames)
        finally:
            self.front.close(linger=0)
            self.back.close(linger=0)

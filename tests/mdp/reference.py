"""
Reference Majordomo peers, written from the text of 7/MDP and 8/MMI with plain blocking
pyzmq and nothing from ``txzmq2.mdp``: an independent implementation each of our three parts
must interoperate with.

- :func:`rfcRequest`: one MDP/Client request on a REQ socket (the RFC's advice for clients).
- :class:`RfcWorker`: an MDP/Worker on a DEALER socket.
- :class:`RfcBroker`: a minimal MDP broker on one ROUTER socket.

Each runs in a thread (:func:`tests.peers.inThread`); the classes run until :meth:`stop`
(or, for the worker, until the broker says DISCONNECT) and poll in short slices so they
notice a stop promptly. All sockets use a bounded linger and receive timeout.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import zmq

from tests.peers import blockingSocket

# The wire constants, from the RFC text.
MDPC01 = b"MDPC01"  # "six bytes, representing MDP/Client v0.1"
MDPW01 = b"MDPW01"  # "six bytes, representing MDP/Worker v0.1"
READY = bytes([0x01])
REQUEST = bytes([0x02])
REPLY = bytes([0x03])
HEARTBEAT = bytes([0x04])
DISCONNECT = bytes([0x05])

POLL_SLICE = 0.01
"""Seconds a peer blocks at most before looking at its stop flag and its clocks."""


def rfcRequest(
    context: zmq.Context[Any],
    address: str,
    service: bytes,
    *body: bytes,
    timeout: float = 5.0,
    retries: int = 0,
) -> list[bytes]:
    """
    Send one REQUEST from a fresh REQ socket and return the REPLY's body frames.

    A REQ socket adds and strips frame 0 (the empty frame) itself, so it sends
    ``[MDPC01, service, *body]`` and receives ``[MDPC01, service, *reply]``.

    With ``retries``, a request unanswered within ``timeout`` is sent again, up to that many
    times, each time from a new socket (a REQ socket cannot send twice without a reply): the
    client's part in MDP, which loses a request held by a worker that dies or is taken for
    dead, and leaves the retry to the client.

    :raises zmq.Again: when the last try gets no reply within ``timeout`` seconds.
    :raises AssertionError: when the reply is not an MDP/Client REPLY from ``service``.
    """
    triesLeft = retries
    while True:
        socket = blockingSocket(context, zmq.REQ, rcvtimeo=int(timeout * 1000))
        try:
            socket.connect(address)
            socket.send_multipart([MDPC01, service, *body])
            reply = socket.recv_multipart()
        except zmq.Again:
            if not triesLeft:
                raise
            triesLeft -= 1
            continue
        finally:
            socket.close()
        assert len(reply) >= 3 and reply[:2] == [MDPC01, service], reply
        return reply[2:]


class RfcWorker:
    """
    An MDP/Worker: connects a DEALER, sends READY once, answers every REQUEST with
    ``handle(body)`` (a list of frames) in a REPLY, sends HEARTBEAT every ``interval``
    seconds, and takes the broker for gone after ``liveness`` silent intervals.

    Like the Guide's worker API, it is single-threaded: while ``handle`` runs it sends and
    reads nothing (no heartbeats either), and its countdown for the broker starts afresh
    once it has replied (what the broker sent meanwhile waits, unread, in its socket).

    :meth:`run` returns why it ended: ``"stopped"``, ``"DISCONNECT"`` or ``"broker silent"``.
    ``commands`` lists every command byte it received, ``bodies`` every request body.
    """

    def __init__(
        self,
        context: zmq.Context[Any],
        address: str,
        service: bytes,
        handle: Callable[[list[bytes]], list[bytes]] = lambda body: body,
        interval: float = 0.1,
        liveness: int = 3,
    ) -> None:
        self.context = context
        self.address = address
        self.service = service
        self.handle = handle
        self.interval = interval
        self.liveness = liveness
        self.commands: list[bytes] = []
        self.bodies: list[list[bytes]] = []
        self._stop = threading.Event()

    def stop(self) -> None:
        self._stop.set()

    def run(self) -> str:
        socket = blockingSocket(self.context, zmq.DEALER)
        try:
            socket.connect(self.address)
            socket.send_multipart([b"", MDPW01, READY, self.service])
            return self._serve(socket)
        finally:
            socket.close(linger=100)  # long enough for a last DISCONNECT to leave

    def _serve(self, socket: Any) -> str:
        now = time.monotonic()
        brokerExpires = now + self.liveness * self.interval
        nextHeartbeat = now + self.interval
        while not self._stop.is_set():
            if socket.poll(int(POLL_SLICE * 1000)):
                frames = socket.recv_multipart()
                if len(frames) < 3 or frames[0] != b"" or frames[1] != MDPW01:
                    continue  # invalid: drop it
                command = frames[2]
                self.commands.append(command)
                if command == DISCONNECT:
                    return "DISCONNECT"
                brokerExpires = time.monotonic() + self.liveness * self.interval
                if command == REQUEST and len(frames) >= 6 and frames[4] == b"":
                    client, body = frames[3], frames[5:]
                    self.bodies.append(body)
                    reply = self.handle(body)
                    socket.send_multipart([b"", MDPW01, REPLY, client, b"", *reply])
                    brokerExpires = time.monotonic() + self.liveness * self.interval
            now = time.monotonic()
            if now >= brokerExpires:
                return "broker silent"
            if now >= nextHeartbeat:
                socket.send_multipart([b"", MDPW01, HEARTBEAT])
                nextHeartbeat = now + self.interval
        socket.send_multipart([b"", MDPW01, DISCONNECT])
        return "stopped"


class RfcBroker:
    """
    A minimal MDP broker on one ROUTER socket, bound at construction (``address`` is the
    resolved endpoint) and served by :meth:`run` in a thread until :meth:`stop`.

    Per the RFC: READY registers a worker for one service; requests wait per service until
    a worker of it is idle; a REPLY goes to the client whose address it carries; HEARTBEAT
    to every worker each ``interval``; a worker silent for ``liveness`` intervals is
    forgotten; any unexpected command gets DISCONNECT. ``received`` records every message
    (sender identity, frames) in order of arrival.

    With ``heartbeatBusyWorkers=False`` it does what the Guide's brokers do: heartbeat and
    expire only idle workers, so a worker holding a request hears nothing until it replies.
    """

    def __init__(
        self,
        context: zmq.Context[Any],
        interval: float = 0.1,
        liveness: int = 3,
        bind: str = "tcp://127.0.0.1:*",
        heartbeatBusyWorkers: bool = True,
    ) -> None:
        self.interval = interval
        self.liveness = liveness
        self.heartbeatBusyWorkers = heartbeatBusyWorkers
        self.received: list[tuple[bytes, list[bytes]]] = []
        self._stop = threading.Event()
        # Made here, used only by the thread running run(): starting a thread is the full
        # memory barrier ZeroMQ asks for when a socket changes threads.
        self.socket = blockingSocket(context, zmq.ROUTER)
        self.socket.bind(bind)
        self.address: str = self.socket.getsockopt_string(zmq.LAST_ENDPOINT)

    def stop(self) -> None:
        self._stop.set()

    def run(self) -> None:
        socket = self.socket
        workers: dict[bytes, dict[str, Any]] = {}  # identity -> service, expires, client
        idle: dict[bytes, deque[bytes]] = {}  # service -> idle worker identities
        requests: dict[bytes, deque[tuple[bytes, list[bytes]]]] = {}  # service -> waiting

        def send(identity: bytes, command: bytes, *frames: bytes) -> None:
            socket.send_multipart([identity, b"", MDPW01, command, *frames])

        def forget(identity: bytes) -> None:
            worker = workers.pop(identity, None)
            if worker is not None and identity in idle.get(worker["service"], ()):
                idle[worker["service"]].remove(identity)

        def dispatch(service: bytes) -> None:
            waiting, free = requests.get(service), idle.get(service)
            while waiting and free:
                identity = free.popleft()
                client, body = waiting.popleft()
                workers[identity]["client"] = client
                send(identity, REQUEST, client, b"", *body)

        try:
            nextHeartbeat = time.monotonic() + self.interval
            while not self._stop.is_set():
                if socket.poll(int(POLL_SLICE * 1000)):
                    sender, *frames = socket.recv_multipart()
                    self.received.append((sender, frames))
                    if len(frames) >= 4 and frames[:2] == [b"", MDPC01]:
                        service = frames[2]
                        requests.setdefault(service, deque()).append((sender, frames[3:]))
                        dispatch(service)
                    elif len(frames) >= 3 and frames[:2] == [b"", MDPW01]:
                        self._fromWorker(sender, frames, workers, idle, send, forget, dispatch)
                now = time.monotonic()
                if now >= nextHeartbeat:
                    for identity, worker in list(workers.items()):
                        if worker["client"] is not None and not self.heartbeatBusyWorkers:
                            continue
                        if worker["expires"] <= now:
                            forget(identity)
                        else:
                            send(identity, HEARTBEAT)
                    nextHeartbeat = now + self.interval
        finally:
            socket.close()

    def _fromWorker(
        self,
        sender: bytes,
        frames: list[bytes],
        workers: dict[bytes, dict[str, Any]],
        idle: dict[bytes, deque[bytes]],
        send: Callable[..., None],
        forget: Callable[[bytes], None],
        dispatch: Callable[[bytes], None],
    ) -> None:
        command = frames[2]
        worker = workers.get(sender)
        if command == DISCONNECT:
            forget(sender)
            return
        if worker is None and command == READY and len(frames) == 4:
            service = frames[3]
            workers[sender] = {
                "service": service,
                "expires": time.monotonic() + self.liveness * self.interval,
                "client": None,
            }
            idle.setdefault(service, deque()).append(sender)
            dispatch(service)
            return
        if worker is None:
            send(sender, DISCONNECT)  # anything but READY from a stranger
            return
        worker["expires"] = time.monotonic() + self.liveness * self.interval
        if command == HEARTBEAT and len(frames) == 3:
            return
        if (
            command == REPLY
            and len(frames) >= 6
            and frames[4] == b""
            and worker["client"] == frames[3]
        ):
            socket = self.socket
            socket.send_multipart([frames[3], b"", MDPC01, worker["service"], *frames[5:]])
            worker["client"] = None
            idle[worker["service"]].append(sender)
            dispatch(worker["service"])
            return
        send(sender, DISCONNECT)  # valid but unexpected, or invalid
        forget(sender)

"""
Twisted services: :class:`ZmqService`, a reusable ``IService`` owning a
:class:`~txzmq2.ZmqFactory` and the connections built on it, and
:class:`ZmqDeviceService`, a ZeroMQ device (broker, load-balancing broker, forwarder,
streamer) as a service, behind both the ``txzmq2`` command and its ``twistd`` plugins; and
the address syntax of both.

Addresses: ``@ADDR`` binds and ``>ADDR`` connects. Without a prefix, an address with a
``*`` in it (``tcp://*:5559``, ``tcp://127.0.0.1:*``) binds, since nothing can connect to a
wildcard; any other address takes the command's default (devices bind, one-liners connect).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import zmq
from twisted.application.service import Service
from twisted.internet.defer import Deferred, succeed
from twisted.logger import Logger

from txzmq2.connection import ZmqConnection
from txzmq2.endpoint import ZmqEndpoint, ZmqEndpointType
from txzmq2.errors import ZmqEndpointError
from txzmq2.factory import ZmqFactory
from txzmq2.proxy import ZmqLoadBalancingBroker, ZmqProxy
from txzmq2.pubsub import ZmqXPubConnection, ZmqXSubConnection
from txzmq2.pushpull import ZmqPullConnection, ZmqPushConnection
from txzmq2.routerdealer import ZmqDealerConnection, ZmqRouterConnection

__all__ = [
    "DEVICES",
    "DEVICE_OPTIONS",
    "PROXY_DEVICES",
    "ZmqDeviceService",
    "ZmqService",
    "addressHelp",
    "parseAddress",
]


def addressHelp(default: ZmqEndpointType) -> str:
    """One line on the address syntax, for help texts, given the command's default."""
    if default == ZmqEndpointType.bind:
        return "@ADDR binds, >ADDR connects, a bare ADDR binds"
    return "@ADDR binds, >ADDR connects, a bare ADDR connects unless it has a * in it"


def parseAddress(text: str, default: ZmqEndpointType) -> ZmqEndpoint:
    """
    Read one address of the command line: ``@ADDR`` (bind), ``>ADDR`` (connect), or a
    bare ``ADDR`` (bind when it has a ``*`` in it, else ``default``).

    :raises ValueError: for an address that is not ``transport://rest`` with a transport
        libzmq knows; the message says which.
    """
    if text.startswith("@"):
        endpoint = ZmqEndpoint(ZmqEndpointType.bind, text[1:])
    elif text.startswith(">"):
        endpoint = ZmqEndpoint(ZmqEndpointType.connect, text[1:])
    elif "*" in text:
        endpoint = ZmqEndpoint(ZmqEndpointType.bind, text)
    else:
        endpoint = ZmqEndpoint(default, text)
    endpoint.validate()
    return endpoint


class ZmqService(Service):
    """
    A service owning a :class:`~txzmq2.ZmqFactory` and the connections a subclass builds
    on it in :meth:`build`.

    The factory (and its ZeroMQ context) is made in :meth:`privilegedStartService`, which
    ``twistd`` calls after daemonising (a context does not survive a fork) and before
    shedding privileges (so a privileged port can be bound); :meth:`startService` does it
    when nobody did. :meth:`stopService` shuts the factory down: every socket closes with
    the factory's linger period.

    :param name: what log lines start with (``"broker"``).
    :param lingerPeriod: milliseconds a closing socket keeps trying to deliver what it
        holds (``None``: the factory's default).
    :param reactor: the reactor (``None``: the global one).
    """

    log = Logger()

    def __init__(self, name: str, lingerPeriod: int | None = None, reactor: Any = None) -> None:
        self.name = name
        self.lingerPeriod = lingerPeriod
        self.reactor = reactor
        self.factory: ZmqFactory | None = None

    def build(self, factory: ZmqFactory) -> None:
        """
        Make the service's connections on ``factory``; override it. If it raises, every
        connection made so far is shut down and the exception propagates.
        """
        raise NotImplementedError(f"{type(self).__name__} must override build")

    def privilegedStartService(self) -> None:
        """
        Make the factory and :meth:`build` the connections (binding and connecting them).

        :raises txzmq2.ZmqEndpointError: when libzmq refuses an address (see
            :meth:`attach`); nothing is left open.
        """
        self._built()

    def _built(self) -> ZmqFactory:
        if self.factory is None:
            factory = ZmqFactory(self.reactor, lingerPeriod=self.lingerPeriod)
            try:
                self.build(factory)
            except BaseException:
                factory.shutdown()
                raise
            self.factory = factory
        return self.factory

    def startService(self) -> None:
        """
        Build the connections if :meth:`privilegedStartService` did not, and log
        ``"<name>: running"`` once the reactor runs (its signal handlers are then in place,
        so from that line on SIGINT and SIGTERM stop the service cleanly).

        :raises txzmq2.ZmqEndpointError: as :meth:`privilegedStartService`.
        """
        factory = self._built()
        super().startService()  # type: ignore[no-untyped-call]
        factory.reactor.callWhenRunning(self._announce)

    def _announce(self) -> None:
        if self.running:
            self.log.info("{name}: running", name=self.name)

    def stopService(self) -> Deferred[None]:
        """
        Shut every connection down and terminate the context.

        :return: a Deferred firing with ``None`` once the context is terminated (after at
            most the linger period).
        """
        super().stopService()  # type: ignore[no-untyped-call]
        factory, self.factory = self.factory, None
        if factory is None:
            return succeed(None)
        self.log.info("{name}: stopping", name=self.name)

        def stopped(result: None) -> None:
            self.log.info("{name}: stopped", name=self.name)

        return factory.shutdown().addCallback(stopped)

    def attach(
        self,
        connection: ZmqConnection,
        endpoints: Sequence[ZmqEndpoint],
        role: str | None = None,
    ) -> None:
        """
        Bind or connect ``connection`` to each endpoint in turn, logging the address each
        one resolved to (the port the OS chose for ``tcp://127.0.0.1:*``).

        :param role: what the log lines call the connection (``"frontend"``), besides its
            socket type.
        :raises txzmq2.ZmqEndpointError: when libzmq refuses an address (in use, no such
            interface); its message names the connection, the address and the reason.
        """
        kind = _SOCKET_NAMES.get(connection.socketType, "socket")
        what = kind if role is None else f"{role} ({kind})"
        for endpoint in endpoints:
            binding = endpoint.type == ZmqEndpointType.bind
            try:
                connection.addEndpoints([endpoint])
            except zmq.ZMQError as error:  # ZmqEndpointError is one too
                verb = "bind" if binding else "connect"
                reason = zmq.strerror(error.errno) if error.errno else str(error)
                raise ZmqEndpointError(
                    endpoint.address,
                    f"cannot {verb} {what} to {endpoint.address}: {reason}",
                    error.errno,
                ) from error
            self.log.info(
                "{name}: {what} {done} {address}",
                name=self.name,
                what=what,
                done="bound to" if binding else "connecting to",
                address=connection.lastEndpoint,
            )


_SOCKET_NAMES: dict[int, str] = {
    zmq.ROUTER: "ROUTER",
    zmq.DEALER: "DEALER",
    zmq.XSUB: "XSUB",
    zmq.XPUB: "XPUB",
    zmq.SUB: "SUB",
    zmq.PUB: "PUB",
    zmq.PULL: "PULL",
    zmq.PUSH: "PUSH",
}

# Proxy device -> (frontend class, backend class). The proxy takes over their deliveries.
_PROXIES: dict[str, tuple[type[ZmqConnection], type[ZmqConnection]]] = {
    "broker": (ZmqRouterConnection, ZmqDealerConnection),
    "forwarder": (ZmqXSubConnection, ZmqXPubConnection),
    "streamer": (ZmqPullConnection, ZmqPushConnection),
}

DEVICES: dict[str, str] = {
    "broker": "request-reply broker (ROUTER/DEALER queue): clients (REQ, DEALER) use the "
    "frontend, servers (REP) the backend; requests are dealt out round-robin",
    "lbbroker": "load-balancing broker (ROUTER/ROUTER): clients use the frontend, REQ-like "
    "workers that first send READY use the backend; each request goes to a ready worker",
    "forwarder": "pub-sub forwarder (XSUB/XPUB): publishers use the frontend, subscribers "
    "the backend; subscriptions travel upstream",
    "streamer": "pipeline streamer (PULL/PUSH): pushers use the frontend, pullers the backend",
}
"""Device name -> what it is, for help texts."""

DEVICE_OPTIONS: dict[str, str] = {
    "frontend": "where clients (publishers, pushers) reach the device (repeatable)",
    "backend": "where servers (workers, subscribers, pullers) reach the device (repeatable)",
    "capture": "a PUSH socket that gets a copy of every message forwarded",
    "linger": "milliseconds closing sockets keep delivering at shutdown (default 100)",
}
"""A device's option -> its help text, for the command and the twistd plugins alike."""

PROXY_DEVICES = frozenset(_PROXIES)
"""The devices that are a :class:`~txzmq2.ZmqProxy` (and so can have a capture)."""


class ZmqDeviceService(ZmqService):
    """
    A ZeroMQ device as a service: ``broker`` (:class:`~txzmq2.ZmqProxy` queue, ROUTER to
    DEALER), ``lbbroker`` (:class:`~txzmq2.ZmqLoadBalancingBroker`), ``forwarder``
    (XSUB to XPUB) or ``streamer`` (PULL to PUSH). Backs both the ``txzmq2 broker`` (...)
    commands and the ``twistd txzmq2-broker`` (...) plugins.

    :param device: one of :data:`DEVICES`.
    :param frontend: where clients (publishers, pushers) reach the device.
    :param backend: where servers (workers, subscribers, pullers) reach the device.
    :param capture: an endpoint for a PUSH receiving a copy of every message the device
        forwards (proxy devices only).
    :param lingerPeriod: see :class:`ZmqService`.
    :param reactor: see :class:`ZmqService`.
    :raises ValueError: for an unknown device, no frontend or backend endpoint, or a
        capture for the load-balancing broker.
    """

    def __init__(
        self,
        device: str,
        frontend: Sequence[ZmqEndpoint],
        backend: Sequence[ZmqEndpoint],
        capture: ZmqEndpoint | None = None,
        lingerPeriod: int | None = None,
        reactor: Any = None,
    ) -> None:
        if device not in DEVICES:
            raise ValueError(f"unknown device {device!r} (expected one of {', '.join(DEVICES)})")
        if not frontend or not backend:
            raise ValueError(f"{device}: needs at least one frontend and one backend address")
        if capture is not None and device not in PROXY_DEVICES:
            raise ValueError(f"{device}: has no capture (only {', '.join(_PROXIES)} do)")
        super().__init__(device, lingerPeriod, reactor)
        self.frontend = list(frontend)
        self.backend = list(backend)
        self.capture = capture
        self.device: ZmqProxy | ZmqLoadBalancingBroker | None = None

    def build(self, factory: ZmqFactory) -> None:
        front: ZmqConnection
        back: ZmqConnection
        if self.name in _PROXIES:
            frontClass, backClass = _PROXIES[self.name]
            front, back = frontClass(factory), backClass(factory)
            capture = None
            if self.capture is not None:
                capture = ZmqPushConnection(factory)
                self.attach(capture, [self.capture], "capture")
            # The proxy takes over deliveries before any peer can send a message.
            self.device = ZmqProxy(factory, front, back, capture)
        else:
            broker = ZmqLoadBalancingBroker(factory, [], [])
            self.device = broker
            front, back = broker.frontend, broker.backend
        self.attach(front, self.frontend, "frontend")
        self.attach(back, self.backend, "backend")

    def stopService(self) -> Deferred[None]:
        """
        Shut the device down, closing its sockets with linger.

        :return: a Deferred firing with ``None`` once its context is terminated.
        """
        wasRunning = self.running
        stopped = super().stopService()
        if wasRunning and isinstance(self.device, ZmqProxy):
            self.log.info(
                "{name}: forwarded {count} messages", name=self.name, count=self.device.forwarded
            )
        return stopped

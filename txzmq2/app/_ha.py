"""
The ``txzmq2.ha`` patterns as services for the command line: a device behind a Binary Star
node (``txzmq2 bstar``), and the Titanic service (``txzmq2 titanic``).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

import zmq

from txzmq2.app.service import ZmqDeviceService, ZmqService
from txzmq2.endpoint import ZmqEndpoint
from txzmq2.errors import ZmqEndpointError
from txzmq2.factory import ZmqFactory
from txzmq2.ha import BinaryStar, TitanicService

__all__ = ["ZmqBinaryStarService", "ZmqTitanicService"]


class ZmqBinaryStarService(ZmqDeviceService):
    """
    A device (see :class:`~txzmq2.app.ZmqDeviceService`) whose frontend only serves while
    this node of a Binary Star pair is active: its clients' messages are the votes.

    :param primary: whether this node is the primary (else the backup).
    :param local: where this node publishes its state (bound).
    :param remote: where the peer publishes its state (connected).
    :param heartbeat: seconds between state messages (the same on both nodes).
    The other parameters are :class:`~txzmq2.app.ZmqDeviceService`'s.
    """

    def __init__(
        self,
        device: str,
        frontend: Sequence[ZmqEndpoint],
        backend: Sequence[ZmqEndpoint],
        primary: bool,
        local: ZmqEndpoint,
        remote: ZmqEndpoint,
        heartbeat: float = 1.0,
        lingerPeriod: int | None = None,
        reactor: Any = None,
    ) -> None:
        super().__init__(device, frontend, backend, lingerPeriod=lingerPeriod, reactor=reactor)
        self.primary = primary
        self.local = local
        self.remote = remote
        self.heartbeat = heartbeat
        self.node: BinaryStar | None = None

    def build(self, factory: ZmqFactory) -> None:
        super().build(factory)
        try:
            node = BinaryStar(factory, self.primary, self.local, self.remote, self.heartbeat)
        except zmq.ZMQError as error:
            reason = zmq.strerror(error.errno) if error.errno else str(error)
            raise ZmqEndpointError(
                self.local.address,
                f"cannot set up Binary Star state on {self.local.address} and"
                f" {self.remote.address}: {reason}",
                error.errno,
            ) from error
        assert self.device is not None  # made by the device's build
        node.serve(self.device.frontend)
        role = "primary" if self.primary else "backup"
        node.onActive = lambda: self.log.info("{name}: {role} active", name=self.name, role=role)
        node.onPassive = lambda: self.log.info("{name}: {role} passive", name=self.name, role=role)
        self.node = node


class ZmqTitanicService(ZmqService):
    """
    The Titanic services (:class:`~txzmq2.ha.TitanicService`) behind a Majordomo broker.

    :param broker: the broker's address.
    :param database: the SQLite file.
    :param heartbeatInterval: the broker's heartbeat interval, in seconds.
    :param dispatchTimeout: seconds a dispatched request waits for its service.
    """

    def __init__(
        self,
        broker: ZmqEndpoint,
        database: str,
        heartbeatInterval: float = 2.5,
        dispatchTimeout: float = 5.0,
        lingerPeriod: int | None = None,
        reactor: Any = None,
    ) -> None:
        super().__init__("titanic", lingerPeriod, reactor)
        self.broker = broker
        self.database = database
        self.heartbeatInterval = heartbeatInterval
        self.dispatchTimeout = dispatchTimeout
        self.titanic: TitanicService | None = None

    def build(self, factory: ZmqFactory) -> None:
        try:
            self.titanic = TitanicService(
                factory,
                self.broker,
                self.database,
                dispatchTimeout=self.dispatchTimeout,
                heartbeatInterval=self.heartbeatInterval,
            )
        except sqlite3.Error as error:
            raise ValueError(f"cannot open the database {self.database}: {error}") from None
        self.log.info(
            "{name}: serving titanic.request, titanic.reply and titanic.close through"
            " {broker}, storing in {database}",
            name=self.name,
            broker=self.broker.address,
            database=self.database,
        )

"""
What the ``twistd`` plugins in ``twisted/plugins/txzmq2_plugins.py`` load, lazily (through
``twisted.application.service.ServiceMaker``): the options and the service of each device.

``twistd -n txzmq2-broker --frontend tcp://*:5559 --backend tcp://*:5560`` runs the same
:class:`~txzmq2.app.service.ZmqDeviceService` as ``txzmq2 broker`` does.
"""

from __future__ import annotations

from typing import Any

from twisted.python import usage

from txzmq2.app.service import (
    DEVICE_OPTIONS,
    DEVICES,
    PROXY_DEVICES,
    ZmqDeviceService,
    addressHelp,
    parseAddress,
)
from txzmq2.endpoint import ZmqEndpoint, ZmqEndpointType
from txzmq2.errors import ZmqEndpointError

__all__ = ["DeviceOptions", "ProxyOptions", "broker", "forwarder", "lbbroker", "streamer"]


class DeviceOptions(usage.Options):
    """
    The options of a device plugin: ``--frontend`` and ``--backend`` (each repeatable,
    each at least once) and ``--linger``.

    :param device: one of :data:`~txzmq2.app.service.DEVICES`.
    """

    optParameters = [["linger", None, None, DEVICE_OPTIONS["linger"]]]

    def __init__(self, device: str) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        # The opt_ methods' help, shared with the txzmq2 command (instead of docstrings).
        self.docs.update(DEVICE_OPTIONS)
        self.device = device
        # twistd puts "Usage: twistd [options] txzmq2-<device>" before it.
        self.synopsis = "[options] --frontend ADDR --backend ADDR"
        self.longdesc = (
            f"ZeroMQ {DEVICES[device]}. Addresses: {addressHelp(ZmqEndpointType.bind)}."
        )
        self["frontend"] = []
        self["backend"] = []
        self["capture"] = None

    def parseOptions(self, options: list[str] | None = None) -> None:
        """
        Parse the plugin's arguments; bad ones end the run with one line on stderr.

        :raises SystemExit: with status 1 and the error naming the plugin, for an unknown
            option, a malformed address, a missing side or a bad linger.
        """
        try:
            super().parseOptions(options)  # type: ignore[no-untyped-call]
        except usage.UsageError as error:
            # twistd would print its whole --help before the one line that matters.
            plugin = f"twistd txzmq2-{self.device}"
            raise SystemExit(f"{plugin}: error: {error} (see {plugin} --help)") from None

    def _address(self, text: str) -> ZmqEndpoint:
        try:
            return parseAddress(text, ZmqEndpointType.bind)
        except ValueError as error:
            raise usage.UsageError(str(error)) from None

    def opt_frontend(self, address: str) -> None:
        self["frontend"].append(self._address(address))

    def opt_backend(self, address: str) -> None:
        self["backend"].append(self._address(address))

    def postOptions(self) -> None:
        """Check that both sides have an address, and the linger is a number."""
        for side in ("frontend", "backend"):
            if not self[side]:
                raise usage.UsageError(f"--{side} ADDR is required")
        if self["linger"] is not None:
            try:
                self["linger"] = int(self["linger"])
            except ValueError:
                raise usage.UsageError(f"--linger: not a number: {self['linger']!r}") from None
            if self["linger"] < 0:
                raise usage.UsageError(f"--linger: must be at least 0, not {self['linger']}")


class ProxyOptions(DeviceOptions):
    """The options of a proxy device's plugin: those of every device, and ``--capture``."""

    def opt_capture(self, address: str) -> None:
        self["capture"] = self._address(address)


class _DevicePlugin:
    """One device as ``ServiceMaker`` loads it: ``Options()`` and ``makeService(options)``."""

    def __init__(self, device: str) -> None:
        self.device = device

    def Options(self) -> DeviceOptions:
        """A new parser of the device's options (``twistd`` calls it by this name)."""
        if self.device in PROXY_DEVICES:
            return ProxyOptions(self.device)
        return DeviceOptions(self.device)

    def makeService(self, options: Any) -> ZmqDeviceService:
        """The device's service, configured by parsed ``options``."""
        # Nothing is opened here: twistd may still fork to daemonise after this.
        return _TwistdDeviceService(
            self.device,
            options["frontend"],
            options["backend"],
            capture=options["capture"],
            lingerPeriod=options["linger"],
        )


class _StartFailed(SystemExit, Exception):
    """
    A device that could not bind or connect, ending ``twistd`` with one line. A SystemExit,
    so Python prints just the message and exits 1 where a traceback would come out; an
    Exception too, so twistd still removes its pid file and, daemonising, hands the message
    to the waiting parent process, which prints it.
    """


class _TwistdDeviceService(ZmqDeviceService):
    """A device service whose bind or connect failure ends ``twistd`` with one line."""

    def privilegedStartService(self) -> None:
        """
        Bind and connect the device's sockets.

        :raises SystemExit: with status 1 and one line naming the plugin, the address and
            libzmq's reason, when an address is refused (in use, no such interface).
        """
        try:
            super().privilegedStartService()
        except ZmqEndpointError as error:
            raise _StartFailed(f"twistd txzmq2-{self.name}: error: {error}") from None


broker = _DevicePlugin("broker")
lbbroker = _DevicePlugin("lbbroker")
forwarder = _DevicePlugin("forwarder")
streamer = _DevicePlugin("streamer")

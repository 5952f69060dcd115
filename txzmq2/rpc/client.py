"""
RPCClient: a ZmqREQConnection whose requests are remote calls.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from twisted.internet.defer import Deferred, fail

from txzmq2.errors import ZmqProtocolError, ZmqSerializationError
from txzmq2.reqrep import ZmqREQConnection, _checkRequestOptions
from txzmq2.rpc import _wire
from txzmq2.rpc.serializers import MsgpackSerializer, Serializer

if TYPE_CHECKING:
    from txzmq2.connection import Message, ZmqSecurity
    from txzmq2.endpoint import ZmqEndpoint
    from txzmq2.factory import ZmqFactory

__all__ = ["RPCClient"]


class RPCClient(ZmqREQConnection):
    """
    Call the exposed methods of :class:`~txzmq2.rpc.RPCServer` peers.

    A DEALER underneath, like its base class :class:`~txzmq2.ZmqREQConnection`: any number of
    calls may be outstanding, each reply is matched to its call, and connected to several
    servers (or to a queue in front of them) the calls are spread over all of them.

    :param factory: the factory giving the context and reactor.
    :param endpoint: an endpoint to connect (or bind) right away.
    :param timeout: seconds each call waits for its reply (``None``: forever); a call that
        gets none fails with :class:`~txzmq2.errors.ZmqRequestTimeoutError`.
    :param retries: times a timed-out call is sent again before it fails (needs a
        ``timeout``). A retry may reach another server, and the first try may still have
        run: retry only calls that are safe to run twice.
    :param serializer: the payload encoding; :class:`~txzmq2.rpc.MsgpackSerializer` when
        ``None``. Servers must use one of the same name.
    :param identity: the socket's routing id.
    :param security: CURVE or PLAIN set-up (:class:`~txzmq2.ZmqSecurity`).
    :raises ValueError: for a negative ``timeout`` or ``retries``, or ``retries`` without a
        ``timeout``.
    """

    def __init__(
        self,
        factory: ZmqFactory,
        endpoint: ZmqEndpoint | None = None,
        timeout: float | None = None,
        retries: int = 0,
        serializer: Serializer | None = None,
        identity: bytes | str | None = None,
        security: ZmqSecurity | None = None,
    ) -> None:
        if timeout is not None:
            # What sendMsg falls back on: the timeout of every call not given its own.
            self.defaultRequestTimeout = timeout
        _checkRequestOptions(self.defaultRequestTimeout, retries)
        self.retries = retries
        self.serializer: Serializer = MsgpackSerializer() if serializer is None else serializer
        _wire.checkSerializerName(self.serializer.name)
        name = self.serializer.name
        self._callHeader = _wire.header(_wire.CALL, name)
        self._notifyHeader = _wire.header(_wire.NOTIFY, name)
        self._replyHeader = _wire.header(_wire.REPLY, name)
        self._errorHeader = _wire.header(_wire.ERROR, name)
        super().__init__(factory, endpoint, identity, security)

    @property
    def timeout(self) -> float | None:
        """Seconds each call waits for its reply unless given its own (``None``: forever)."""
        return self.defaultRequestTimeout

    def callRemote(self, method: str, /, *args: Any, **kwargs: Any) -> Deferred[Any]:
        """
        Call ``method`` on a server with these arguments, with the client's ``timeout`` and
        ``retries`` (:meth:`callRemoteWithOptions` sets them per call).

        :return: a Deferred that fires exactly once: with the method's result; or fails with
            :class:`~txzmq2.errors.RemoteError` (the method raised, or the server refused
            the call: ``NoSuchMethod``, ``BadArguments``...),
            :class:`~txzmq2.errors.ZmqRequestTimeoutError` (no reply in time, after the
            retries), :class:`~txzmq2.errors.ZmqSerializationError` (an argument cannot be
            encoded: nothing was sent), :class:`~txzmq2.errors.ZmqProtocolError` (the reply
            breaks the wire format), ``CancelledError`` (cancelled) or
            :class:`~txzmq2.errors.ZmqConnectionClosed` (the client shut down first).
        """
        return self._call(method, args, kwargs, None, self.retries)

    def callRemoteWithOptions(
        self,
        method: str,
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        *,
        timeout: float | None = None,
        retries: int | None = None,
    ) -> Deferred[Any]:
        """
        :meth:`callRemote` with a ``timeout`` and ``retries`` of its own. (``callRemote``
        takes no such keyword arguments: they would clash with the remote method's own.)

        ``client.callRemoteWithOptions("add", (1, 2), timeout=0.5)`` is
        ``client.callRemote("add", 1, 2)`` given half a second.

        :param args: the positional arguments.
        :param kwargs: the keyword arguments.
        :param timeout: seconds to wait for each try (``None``: the client's ``timeout``).
        :param retries: times to send the call again after a timeout (``None``: the
            client's ``retries``).
        :return: a Deferred as for :meth:`callRemote`.
        """
        return self._call(
            method,
            args,
            {} if kwargs is None else kwargs,
            timeout,
            self.retries if retries is None else retries,
        )

    def notify(self, method: str, /, *args: Any, **kwargs: Any) -> None:
        """
        Ask a server to run ``method`` with these arguments, without a reply: nothing waits
        for it and nobody learns whether it ran or failed (the server logs failures).

        :raises ZmqSerializationError: when an argument cannot be encoded.
        :raises ZmqConnectionClosed: after :meth:`shutdown`.
        """
        payload = self._encode(method, args, kwargs)
        # No request id: no reply will come, so nothing waits on this side either.
        self.send([b"", self._notifyHeader, payload])

    def _encode(self, method: str, args: Sequence[Any], kwargs: Mapping[str, Any]) -> bytes:
        if type(method) is not str:
            raise TypeError(f"a method name is a str, not {type(method).__name__}")
        try:
            return self.serializer.dumps([method, args, kwargs])
        except Exception as error:
            raise ZmqSerializationError(
                f"cannot encode the arguments of {method}() with {self.serializer.name}: "
                f"{type(error).__name__}: {error}"
            ) from error

    def _call(
        self,
        method: str,
        args: Sequence[Any],
        kwargs: Mapping[str, Any],
        timeout: float | None,
        retries: int,
    ) -> Deferred[Any]:
        try:
            payload = self._encode(method, args, kwargs)
        except (TypeError, ZmqSerializationError):
            return fail()
        return self.sendMsg(
            self._callHeader, payload, timeout=timeout, retries=retries
        ).addCallback(self._decodeReply)

    def _decodeReply(self, frames: Message) -> Any:
        if len(frames) == 2:
            header = frames[0]
            if header == self._replyHeader:
                try:
                    return self.serializer.loads(frames[1])
                except Exception as error:
                    raise ZmqProtocolError(
                        f"a reply is not valid {self.serializer.name}: {error}"
                    ) from error
            if header == self._errorHeader:
                raise _wire.decodeError(frames[1], self.serializer)
        raise _wire.unexpectedReply(frames, self.serializer)

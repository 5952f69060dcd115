"""
The life of a call as request-reply gives it: timeouts (per client and per call), retries,
cancel, shutdown on either side; and the server's bounds: ``maxConcurrency`` (backpressure,
not drops) and ``maxMessageSize``.
"""

from __future__ import annotations

import pytest
import pytest_twisted
import zmq
from twisted.internet.defer import CancelledError, gatherResults

from tests.rpc.support import Calculator, fails
from txzmq2 import ZmqConnectionClosed, ZmqEndpoint, ZmqEndpointType, ZmqRequestTimeoutError
from txzmq2.rpc import DEFAULT_MAX_MESSAGE_SIZE, RPCClient, RPCServer


def timersLeft() -> list[object]:
    """Delayed calls still due in the future (a call's timer, say)."""
    from twisted.internet import reactor

    now = reactor.seconds()
    return [call for call in reactor.getDelayedCalls() if call.active() and call.getTime() > now]


# -- timeouts and retries --------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_a_call_without_reply_fails_after_the_client_timeout(rpc):
    client, server = rpc(client={"timeout": 0.2})
    await fails(client.callRemote("hold"), ZmqRequestTimeoutError)
    assert client.pendingRequests == 0
    assert timersLeft() == []
    server.service.releaseAll()


@pytest_twisted.ensureDeferred
async def test_callRemoteWithOptions_timeout_overrides_the_client_timeout(rpc):
    client, server = rpc(client={"timeout": 30.0})
    await fails(client.callRemoteWithOptions("hold", timeout=0.1), ZmqRequestTimeoutError)
    server.service.releaseAll()


@pytest_twisted.ensureDeferred
async def test_the_client_retries_a_timed_out_call(rpc):
    client, server = rpc(client={"timeout": 0.1, "retries": 2})
    service: Calculator = server.service
    await fails(client.callRemote("hold"), ZmqRequestTimeoutError)
    await service.heldCalls(3)  # the call, and two retries of it
    service.releaseAll()


@pytest_twisted.ensureDeferred
async def test_callRemoteWithOptions_retries_overrides_the_client_retries(rpc):
    client, server = rpc(client={"timeout": 0.1, "retries": 5})
    service: Calculator = server.service
    await fails(client.callRemoteWithOptions("hold", retries=0), ZmqRequestTimeoutError)
    assert client.pendingRequests == 0
    assert len(service.held) == 1
    service.releaseAll()


@pytest_twisted.ensureDeferred
async def test_a_retried_call_is_answered_by_its_first_reply(rpc):
    client, server = rpc(client={"timeout": 0.2, "retries": 3})
    service: Calculator = server.service
    call = client.callRemote("hold")
    await service.heldCalls(2)  # the first try timed out and was sent again
    service.release("answer to the first try")
    assert await call == "answer to the first try"
    service.releaseAll()  # the retry's reply is dropped: the call has its answer


def test_retries_without_a_timeout_are_refused(zmq_factory):
    with pytest.raises(ValueError, match="retries need a timeout"):
        RPCClient(zmq_factory, retries=1)


# -- cancel and shutdown -----------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_cancel_fails_the_call_with_CancelledError(rpc):
    client, server = rpc()
    call = client.callRemote("hold")
    await server.service.heldCalls(1)
    call.cancel()
    await fails(call, CancelledError)
    assert client.pendingRequests == 0
    server.service.release()  # the late reply is dropped
    assert await client.callRemote("add", 1, 2) == 3


@pytest.mark.parametrize("shutDown", ["connection", "factory"])
@pytest_twisted.ensureDeferred
async def test_pending_calls_fail_with_ZmqConnectionClosed_on_shutdown(rpc, shutDown):
    client, server = rpc()
    calls = [client.callRemote("hold"), client.callRemote("hold")]
    await server.service.heldCalls(2)
    if shutDown == "connection":
        client.shutdown()
    else:
        await client.factory.shutdown()
    for call in calls:
        await fails(call, ZmqConnectionClosed)
    assert client.pendingRequests == 0
    server.service.releaseAll()


@pytest_twisted.ensureDeferred
async def test_calls_after_shutdown_fail_with_ZmqConnectionClosed(rpc):
    client, _ = rpc()
    client.shutdown()
    await fails(client.callRemote("add", 1, 2), ZmqConnectionClosed)
    with pytest.raises(ZmqConnectionClosed):
        client.notify("record", 1)


@pytest_twisted.ensureDeferred
async def test_a_server_shut_down_mid_call_drops_the_late_result_quietly(rpc, loggedFailures):
    client, server = rpc(client={"timeout": 0.2})
    call = client.callRemote("slowDouble", 1)
    await server.service.heldCalls(1)
    server.shutdown()
    server.service.release()
    await fails(call, ZmqRequestTimeoutError)
    assert loggedFailures == []


# -- maxConcurrency ----------------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_maxConcurrency_bounds_running_calls_and_drops_none(rpc):
    client, server = rpc(maxConcurrency=2)
    service: Calculator = server.service
    calls = [client.callRemote("hold") for _ in range(6)]
    for arrived in range(2, 7):
        await service.heldCalls(arrived)
        assert service.running == 2
        service.release()
    service.release()
    assert await gatherResults(calls) == ["released"] * 6
    assert service.peakHeld == 2


@pytest_twisted.ensureDeferred
async def test_calls_beyond_maxConcurrency_wait_unread_until_a_running_call_ends(rpc):
    client, server = rpc(maxConcurrency=1)
    service: Calculator = server.service
    held = client.callRemote("hold")
    waiting = client.callRemote("record", "waited")
    await service.heldCalls(1)
    # Both were in the inproc pipe together: without the bound, the read pass that ran
    # `hold` would have run `record` right after it.
    assert service.recorded == []
    service.release()
    assert await held == "released"
    assert await waiting is None
    assert service.recorded == ["waited"]


@pytest_twisted.ensureDeferred
async def test_plain_methods_do_not_count_against_maxConcurrency(rpc):
    client, _ = rpc(maxConcurrency=1)
    assert await gatherResults([client.callRemote("add", n, 1) for n in range(50)]) == list(
        range(1, 51)
    )


@pytest_twisted.ensureDeferred
async def test_resumeProducing_does_not_lift_the_maxConcurrency_bound(rpc):
    client, server = rpc(maxConcurrency=1)
    service: Calculator = server.service
    calls = [client.callRemote("hold"), client.callRemote("hold")]
    await service.heldCalls(1)
    server.pauseProducing()
    server.resumeProducing()  # a consumer resumes; one call still runs: keep waiting
    assert server.runningCalls == 1
    service.release()
    await service.heldCalls(2)
    service.release()
    await gatherResults(calls)
    assert service.peakHeld == 1


def test_maxConcurrency_below_one_is_refused(zmq_factory):
    with pytest.raises(ValueError, match="maxConcurrency"):
        RPCServer(zmq_factory, None, Calculator(), maxConcurrency=0)


# -- maxMessageSize ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "applied"),
    [
        ({}, DEFAULT_MAX_MESSAGE_SIZE),
        ({"maxMessageSize": 4096}, 4096),
        ({"maxMessageSize": None}, -1),
    ],
    ids=["default", "given", "unlimited"],
)
def test_maxMessageSize_sets_ZMQ_MAXMSGSIZE(zmq_factory, given, applied):
    server = RPCServer(zmq_factory, None, Calculator(), **given)
    assert server.socket.get(zmq.MAXMSGSIZE) == applied
    assert DEFAULT_MAX_MESSAGE_SIZE == 1024 * 1024
    server.shutdown()


@pytest_twisted.ensureDeferred
async def test_a_call_over_maxMessageSize_times_out_and_the_server_keeps_serving(
    zmq_factory, zmq_address
):
    server = RPCServer(
        zmq_factory,
        ZmqEndpoint(ZmqEndpointType.bind, zmq_address("tcp")),
        Calculator(),
        maxMessageSize=10_000,
    )
    client = RPCClient(
        zmq_factory, ZmqEndpoint(ZmqEndpointType.connect, server.lastEndpoint), timeout=0.5
    )
    await client.whenConnected(5.0)
    await fails(client.callRemote("echo", b"x" * 20_000), ZmqRequestTimeoutError)
    # libzmq dropped the connection; the client reconnects and is served again.
    answer = await client.callRemoteWithOptions("echo", [b"x" * 5_000], timeout=5.0)
    assert answer == [[b"x" * 5_000], {}]
    client.shutdown()
    server.shutdown()

"""
The blocking pyzmq baselines put on the wire what they say: the plain program one frame per
request (a REQ's envelope only), the framed one txzmq2's ``[id, b"", payload]``.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
import zmq

from txzmq2.bench.baseline import _exchanger, _pipelined
from txzmq2.bench.common import Spec


def _spec(kind: str, impl: str, count: int = 3) -> Spec:
    return Spec(
        case="case",
        kind=kind,  # type: ignore[arg-type]
        impl=impl,
        transport="inproc",
        mode="inprocess",
        count=count,
        size=4,
        inflight=2,
        timeout=10.0,
        ipcDir="",
    )


@pytest.fixture
def context() -> Iterator[zmq.Context[Any]]:
    context: zmq.Context[Any] = zmq.Context()
    yield context
    context.destroy(linger=0)


def _echoedThrough(
    context: zmq.Context[Any], clientType: int, run: Any, messages: int
) -> list[list[bytes]]:
    """Run ``run(client)`` in a thread against a ROUTER echoing ``messages``; what arrived."""
    router = context.socket(zmq.ROUTER)
    router.rcvtimeo = 5000
    router.bind("inproc://baseline")
    client = context.socket(clientType)
    client.rcvtimeo = 5000
    client.connect("inproc://baseline")
    failures: list[BaseException] = []

    def clientSide() -> None:
        try:
            run(client)
        except BaseException as error:
            failures.append(error)

    thread = threading.Thread(target=clientSide, daemon=True)
    thread.start()
    arrived = []
    try:
        for _ in range(messages):
            frames = router.recv_multipart()
            arrived.append(frames)
            router.send_multipart(frames)
    finally:
        thread.join(5)
        client.close(linger=0)
        router.close(linger=0)
    assert not thread.is_alive() and not failures, failures
    return arrived


def test_plain_sequential_request_is_one_frame_behind_a_req_envelope(
    context: zmq.Context[Any],
) -> None:
    spec = _spec("sequential", "pyzmq")
    arrived = _echoedThrough(context, zmq.REQ, lambda client: _exchanger(client, spec)(b"ping"), 1)
    [[_, delimiter, payload]] = arrived
    assert (delimiter, payload) == (b"", b"ping")


def test_framed_sequential_request_carries_txzmq2s_request_id(
    context: zmq.Context[Any],
) -> None:
    spec = _spec("sequential", "pyzmq_frames")
    arrived = _echoedThrough(
        context, zmq.DEALER, lambda client: _exchanger(client, spec)(b"ping"), 1
    )
    [[_, requestId, delimiter, payload]] = arrived
    assert (len(requestId), delimiter, payload) == (8, b"", b"ping")


def test_plain_pipelined_requests_are_one_frame_each_and_all_answered(
    context: zmq.Context[Any],
) -> None:
    spec = _spec("pipelined", "pyzmq", count=5)
    results: list[tuple[int, list[float], bool]] = []
    # 20 warm-up requests, then the 5 measured ones.
    arrived = _echoedThrough(
        context, zmq.DEALER, lambda c: results.append(_pipelined(c, spec)), 25
    )
    assert all(len(frames) == 2 for frames in arrived)
    assert [frames[1] for frames in arrived[20:]] == [b"xxxx"] * 5
    [(completed, latencies, timedOut)] = results
    assert (completed, len(latencies), timedOut) == (5, 5, False)

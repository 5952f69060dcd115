"""
Bad input never takes a server down: each malformed request gets an error reply where a
reply is possible (a call) and a log line otherwise (a notify, a message without envelope),
and the next good call is served.

A raw DEALER peer sends the frames by hand; its good call afterwards shows the server is
still serving, and since replies keep their order on one connection, whatever arrives
before the good call's reply is the answer to the bad request.
"""

from __future__ import annotations

from typing import Any

import msgpack
import pytest
import pytest_twisted
from twisted.internet.defer import Deferred
from twisted.logger import formatEvent, globalLogPublisher

from tests.rpc.support import CALL, NOTIFY, RawPeer, decodeError, eventsFrom

GOOD = msgpack.packb(["add", [1, 2], {}])


async def answersThenServes(peer: RawPeer, request: list[bytes]) -> list[list[bytes]]:
    """Send ``request`` then a good call; return what came back before the good reply."""
    peer.sendMultipart(request)
    peer.call("add", 1, 2, requestId=b"good")
    before = []
    while True:
        message = await peer.nextMessage()
        if message[0] == b"good":
            assert message[2:] == [b"txzmq2-rpc/1 reply msgpack", b"\x03"]
            return before
        before.append(message)


def logLine(source: object, text: str) -> Deferred[None]:
    """Fires when ``source`` logs a line containing ``text`` (fails after 5 s)."""
    from twisted.internet import reactor

    seen: Deferred[None] = Deferred()

    def observe(event: dict[str, Any]) -> None:
        if event.get("log_source") is source and text in formatEvent(event):
            if not seen.called:
                seen.callback(None)

    def stop(result: object) -> object:
        globalLogPublisher.removeObserver(observe)
        return result

    globalLogPublisher.addObserver(observe)
    return seen.addTimeout(5.0, reactor).addBoth(stop)


def nested(depth: int) -> bytes:
    return b"\x91" * depth + b"\x01"  # arrays of one array of ... of 1


ANSWERED = [
    ([b"", b"garbage"], "BadMessage", "not a txzmq2-rpc header"),
    ([b"", b"\xff\xfe"], "BadMessage", "not a txzmq2-rpc header"),
    ([b"", CALL], "BadMessage", "expected 2 frames after the envelope"),
    ([b"", CALL, GOOD, b"extra"], "BadMessage", "expected 2 frames after the envelope"),
    ([b"", b"txzmq2-rpc/2 call msgpack", GOOD], "BadVersion", "version 1, not '2'"),
    ([b"", b"txzmq2-rpc/1 reply msgpack", GOOD], "BadMessage", "call or notify, not 'reply'"),
    ([b"", b"txzmq2-rpc/1 call pickle", GOOD], "BadSerializer", "not 'pickle'"),
    ([b"", CALL, b""], "BadPayload", "not valid msgpack"),
    ([b"", CALL, b"\xc1"], "BadPayload", "not valid msgpack"),
    ([b"", CALL, GOOD[:-1]], "BadPayload", "not valid msgpack"),
    ([b"", CALL, GOOD + b"\x00"], "BadPayload", "not valid msgpack"),
    ([b"", CALL, nested(100_000)], "BadPayload", "not valid msgpack"),
    ([b"", CALL, msgpack.packb(msgpack.ExtType(1, b"code"))], "BadPayload", "extension"),
    ([b"", CALL, msgpack.packb({1: 2})], "BadPayload", "not valid msgpack"),
    ([b"", CALL, msgpack.packb("add")], "BadMessage", "the body of a call is"),
    ([b"", CALL, msgpack.packb(["add", [1, 2]])], "BadMessage", "the body of a call is"),
    ([b"", CALL, msgpack.packb(["add", 1, {}])], "BadMessage", "the body of a call is"),
    ([b"", CALL, msgpack.packb([b"add", [1, 2], {}])], "BadMessage", "the body of a call is"),
    ([b"", CALL, msgpack.packb(["add", [1], {b"b": 2}])], "BadMessage", "must be strings"),
    ([b"", CALL, msgpack.packb(["add", list(range(200_000)), {}])], "BadArguments", "too many"),
    ([b"", CALL, msgpack.packb(["nope", [], {}])], "NoSuchMethod", "'nope'"),
]


@pytest.mark.parametrize(
    ("request_", "remoteType", "says"),
    ANSWERED,
    ids=[f"{remoteType}-{number}" for number, (_, remoteType, _) in enumerate(ANSWERED)],
)
@pytest_twisted.ensureDeferred
async def test_a_malformed_call_gets_an_error_reply_and_the_next_call_is_served(
    rpc, raw, request_, remoteType, says
):
    _, server = rpc()
    [answer] = await answersThenServes(raw(server), request_)
    error = decodeError(answer)
    assert error["type"] == remoteType
    assert says in error["message"]
    assert error["traceback"] is None
    assert len(error["message"]) < 200  # a flood is not echoed back


UNANSWERED = [
    ([b"no delimiter"], "without an empty delimiter"),
    ([b""], "no body"),
    ([b"", NOTIFY, b"\xc1"], "dropped a notify: BadPayload"),
    ([b"", NOTIFY, msgpack.packb(["nope", [], {}])], "dropped a notify: NoSuchMethod"),
    ([b"", NOTIFY, msgpack.packb(["add", [1], {}])], "dropped a notify: BadArguments"),
    ([b"", NOTIFY, GOOD, b"extra"], "dropped a notify: BadMessage"),
    ([b"", b"txzmq2-rpc/9 notify msgpack", GOOD], "dropped a notify: BadVersion"),
    ([b"", b"txzmq2-rpc/1 notify json", b"[]"], "dropped a notify: BadSerializer"),
    ([b"", NOTIFY, msgpack.packb(["fail", ["boom"], {}])], "fail() raised"),
    ([b"", NOTIFY, msgpack.packb(["unencodable", [], {}])], None),
]


@pytest.mark.parametrize(
    ("request_", "logLine"), UNANSWERED, ids=[str(n) for n in range(len(UNANSWERED))]
)
@pytest_twisted.ensureDeferred
async def test_an_unanswerable_request_is_logged_and_the_next_call_is_served(
    rpc, raw, logged, request_, logLine
):
    _, server = rpc()
    assert await answersThenServes(raw(server), request_) == []
    if logLine is not None:
        lines = [formatEvent(event) for event in eventsFrom(logged, server)]
        assert any(logLine in line for line in lines), lines
    assert server.pendingRequests == 0


@pytest_twisted.ensureDeferred
async def test_a_notify_that_succeeds_is_neither_answered_nor_logged(rpc, raw, logged):
    _, server = rpc()
    request = [b"", NOTIFY, msgpack.packb(["record", [1], {}])]
    assert await answersThenServes(raw(server), request) == []
    assert server.service.recorded == [1]
    assert [e for e in eventsFrom(logged, server) if e.get("log_level").name != "debug"] == []


@pytest_twisted.ensureDeferred
async def test_many_bad_requests_in_a_row_leave_the_server_serving(rpc, raw):
    client, server = rpc()
    peer: RawPeer = raw(server)
    for request, _, _ in ANSWERED * 5:
        peer.sendMultipart(request)
    replies: list[Any] = [await peer.nextMessage() for _ in range(len(ANSWERED) * 5)]
    assert [decodeError(reply)["type"] for reply in replies] == [t for _, t, _ in ANSWERED] * 5
    assert await client.callRemote("add", 2, 2) == 4


@pytest_twisted.ensureDeferred
async def test_a_notify_whose_coroutine_fails_is_logged(rpc, raw):
    client, server = rpc()
    logged = logLine(server, "failAsync() raised Boom('later')")
    client.notify("failAsync", "later")
    await logged
    assert await client.callRemote("add", 1, 2) == 3

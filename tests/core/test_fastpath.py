"""
The native fast path (the optional ``txzmq2._speedups`` extension) and the pure-Python path:
the native one is taken when it is built, ``TXZMQ2_PURE_PYTHON=1`` forces the pure one, and
both deliver the same messages with the same counts, frame for frame. (CI also runs the whole
suite on each path.)
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.logger import globalLogPublisher

from txzmq2 import (
    ZmqEndpoint,
    ZmqEndpointType,
    ZmqPullConnection,
    ZmqPushConnection,
    _fastpath,
)

ROOT = Path(__file__).parent.parent.parent
built = importlib.util.find_spec("txzmq2._speedups") is not None
needsExtension = pytest.mark.skipif(
    not built, reason="the native extension is not built (no C compiler or Cython at install)"
)

# Sends a mix of messages through a txzmq2 PUSH to a txzmq2 PULL over tcp (which carries
# metadata) and prints what arrived: empty frames, multipart, past the long-message
# threshold (128 frames), past maxFramesPerMessage (dropped whole), large frames (zero-copy
# sends), non-bytes frames; each with a metadata property read during its delivery.
EXCHANGE = r"""
import hashlib, json
from twisted.internet import reactor
from twisted.internet.defer import ensureDeferred, Deferred
from txzmq2 import ZmqFactory, ZmqEndpoint, ZmqEndpointType, ZmqPullConnection, ZmqPushConnection
from txzmq2 import _fastpath

MESSAGES = [
    [b""],
    [b"a", b"", b"c"],
    [b"%d" % i for i in range(200)],
    [b"dropped"] * 400,
    [b"x" * 100_000, b"y"],
    [bytearray(b"not bytes"), memoryview(b"a view")],
    [b"end"],
]

async def main():
    factory = ZmqFactory(reactor)
    received = []
    done = Deferred()

    class Pull(ZmqPullConnection):
        maxFramesPerMessage = 300

        def messageReceived(self, message):
            digest = [hashlib.sha1(f).hexdigest()[:8] + ":%d" % len(f) for f in message]
            received.append(digest + [self.messageProperty("Socket-Type")])
            if message == [b"end"]:
                done.callback(None)

    pull = Pull(factory, ZmqEndpoint(ZmqEndpointType.bind, "tcp://127.0.0.1:*"))
    push = ZmqPushConnection(factory, ZmqEndpoint(ZmqEndpointType.connect, pull.lastEndpoint))
    for message in MESSAGES:
        push.send(message)
    await done.addTimeout(10, reactor)
    stats = pull.stats()
    print(json.dumps({
        "native": _fastpath.native,
        "received": received,
        "counts": [stats.received, stats.discarded, push.stats().sent],
    }))
    await factory.shutdown()

def run():
    ensureDeferred(main()).addBoth(lambda result: (reactor.stop(), result)[1])
reactor.callWhenRunning(run)
reactor.run()
"""


def _runScript(script: str, pure: bool = False) -> dict[str, object]:
    """Runs ``script`` in a fresh interpreter; the JSON object its last line prints."""
    environment = dict(os.environ)
    environment.pop(_fastpath.ENVIRONMENT_VARIABLE, None)
    if pure:
        environment[_fastpath.ENVIRONMENT_VARIABLE] = "1"
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    outcome: dict[str, object] = json.loads(result.stdout.splitlines()[-1])
    return outcome


@needsExtension
@pytest.mark.skipif(
    os.environ.get(_fastpath.ENVIRONMENT_VARIABLE, "") not in ("", "0"),
    reason="this run forces the pure-Python path",
)
def test_native_path_is_taken_when_the_extension_is_built(zmq_factory):
    assert _fastpath.native and _fastpath.reason is None
    connection = ZmqPullConnection(zmq_factory)
    assert connection._engine._native is not None
    connection.shutdown()


def test_pure_python_variable_forces_the_pure_path():
    outcome = _runScript(EXCHANGE, pure=True)
    assert outcome["native"] is False


# An extension built from an older checkout: its NativeSocket lacks sendMany.
STALE_EXTENSION = r"""
import json, sys, types
stale = types.ModuleType("txzmq2._speedups")
class NativeSocket:
    def get(self, name): ...
    def readBatch(self, *args): ...
    def sendFrames(self, frames): ...
    def sendOne(self, frame): ...
stale.NativeSocket = NativeSocket
sys.modules["txzmq2._speedups"] = stale
from txzmq2 import _fastpath
print(json.dumps({"native": _fastpath.native, "reason": _fastpath.reason}))
"""


def test_extension_older_than_the_code_is_not_used():
    outcome = _runScript(STALE_EXTENSION)
    assert outcome["native"] is False
    assert "NativeSocket.sendMany" in outcome["reason"]


@needsExtension
def test_native_and_pure_paths_deliver_the_same_messages():
    native, pure = _runScript(EXCHANGE), _runScript(EXCHANGE, pure=True)
    assert (native["native"], pure["native"]) == (True, False)
    assert native["received"] == pure["received"]
    # Every message but the one past maxFramesPerMessage, which is counted as discarded.
    assert native["counts"] == pure["counts"] == [6, 1, 7]
    assert [len(message) - 1 for message in native["received"]] == [1, 3, 200, 2, 2, 1]
    assert {message[-1] for message in native["received"]} == {"PUSH"}


@pytest_twisted.ensureDeferred
async def test_receiver_that_raises_is_logged_and_the_next_message_still_arrives(
    zmq_factory, zmq_address
):
    events: list[dict[str, object]] = []
    arrived: list[list[bytes]] = []
    second: Deferred[None] = Deferred()

    def receive(message: list[bytes]) -> None:
        arrived.append(message)
        if message == [b"first"]:
            raise ValueError("the receiver failed")
        second.callback(None)

    address = zmq_address("inproc")
    pull = ZmqPullConnection(
        zmq_factory, ZmqEndpoint(ZmqEndpointType.bind, address), receiver=receive
    )
    push = ZmqPushConnection(zmq_factory, ZmqEndpoint(ZmqEndpointType.connect, address))
    globalLogPublisher.addObserver(events.append)
    try:
        push.send(b"first")
        push.send(b"second")
        await second.addTimeout(10, reactor)
    finally:
        globalLogPublisher.removeObserver(events.append)
    failures = [event["log_failure"] for event in events if "log_failure" in event]
    assert [failure.value.args for failure in failures] == [("the receiver failed",)]  # type: ignore[attr-defined]
    assert arrived == [[b"first"], [b"second"]]
    assert pull.stats().received == 2
    push.shutdown()
    pull.shutdown()

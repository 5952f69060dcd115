"""
txzmq2.capabilities(): versions and what this libzmq has, read the way each release answers.
"""

from __future__ import annotations

import json
import platform

import pytest
import zmq

import twisted
import txzmq2
from txzmq2 import ZmqSocket, ZmqUnsupportedError, capabilities
from txzmq2._capabilities import capabilities as uncached


def test_versions_are_those_of_the_running_libraries():
    found = capabilities()
    assert found.txzmq2 == txzmq2.__version__
    assert found.pyzmq == zmq.pyzmq_version()
    assert found.libzmq == zmq.zmq_version()
    assert found.twisted == twisted.__version__
    assert found.python == platform.python_version()


def test_transports_are_what_zmq_has_answers():
    found = capabilities()
    assert {"tcp", "inproc"} <= set(found.transports)
    assert ("ipc" in found.transports) == bool(zmq.has("ipc"))
    assert ("pgm" in found.transports) == bool(zmq.has("pgm"))
    assert ("epgm" in found.transports) == bool(zmq.has("pgm"))
    assert ("curve" in found.mechanisms) == bool(zmq.has("curve"))
    assert found.draftAPI == bool(zmq.DRAFT_API and zmq.has("draft"))


def test_websocket_reported_when_libzmq_answers_only_in_upper_case(monkeypatch):
    # libzmq 4.3.4 has ws but answers zmq_has("WS"), not zmq_has("ws").
    monkeypatch.setattr(zmq, "has", lambda name: name in ("ipc", "WS"))
    found = uncached.__wrapped__()
    assert "ws" in found.transports
    assert "wss" not in found.transports


def test_capabilities_as_a_dict_is_json():
    data = json.loads(json.dumps(capabilities().asDict()))
    assert data["libzmq"] == zmq.zmq_version()
    assert "tcp" in data["transports"]


@pytest.mark.skipif(capabilities().draftAPI, reason="this pyzmq and libzmq have the draft API")
def test_draft_socket_type_is_refused_before_a_socket_exists(zmq_factory):
    with pytest.raises(ZmqUnsupportedError, match="SERVER socket type is a draft"):
        ZmqSocket(zmq_factory, zmq.SERVER)
    assert not zmq_factory.connections

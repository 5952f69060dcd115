"""
``examples/secure_service.py`` runs as a user would run it, finishes by itself, and shows
what its docstring promises: the listed client is served under its User-Id, the unlisted
one is refused at the handshake (seen by both monitors) and its request times out.
"""

from __future__ import annotations

import re

import pytest
import zmq

from tests.examples import exampleOutput

pytestmark = [
    pytest.mark.skipif(not zmq.has("curve"), reason="libzmq was built without CURVE"),
    pytest.mark.timeout(60),
]


def test_secure_service_serves_the_listed_client_and_refuses_the_other():
    lines = exampleOutput("examples/secure_service.py", timeout=50)

    def matching(pattern: str) -> list[str]:
        return [line for line in lines if re.fullmatch(pattern, line)]

    assert len(matching(r"server: request 'request \d' from User-Id alice")) == 3
    assert len(matching(r"alice: reply \d: \[b'hello, alice'\]")) == 3
    assert matching(r"mallory: handshake refused: EVENT_HANDSHAKE_FAILED_AUTH \(ZAP status 400\)")
    assert matching(r"server: refused a client: EVENT_HANDSHAKE_FAILED_AUTH \(ZAP status 400\)")
    assert matching(r"mallory: no reply within [\d.]+ s; her request never got in")
    # Nothing from mallory ever reached the service: every request it served was alice's.
    assert lines[-1] == "server: 3 requests served, from: alice"

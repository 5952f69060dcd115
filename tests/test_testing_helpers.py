"""
txzmq2.testing: the pytest fixtures, the trial base class and the subscription wait, with
one scenario run under both runners.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import pytest_twisted

from tests.scenarios.pubsub import EXPECTED, publishAfterSubscription
from txzmq2 import ZmqEndpoint, ZmqEndpointType, ZmqPubConnection, ZmqSubConnection
from txzmq2.errors import ZmqTimeoutError
from txzmq2.testing import waitForSubscription

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest_twisted.ensureDeferred
async def test_scenario_under_pytest(zmq_factory, zmq_address):
    assert await publishAfterSubscription(zmq_factory, zmq_address) == EXPECTED


def test_scenario_under_trial(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "twisted.trial",
            "--temp-directory",
            str(tmp_path / "trial"),
            "tests.scenarios.trial_pubsub",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "PASSED (successes=1)" in result.stdout


@pytest_twisted.ensureDeferred
async def test_subscription_wait_times_out_without_a_publisher_peer(zmq_factory, zmq_address):
    pub = ZmqPubConnection(zmq_factory, ZmqEndpoint(ZmqEndpointType.bind, zmq_address("tcp")))

    class Sub(ZmqSubConnection):
        def gotMessage(self, message, tag):
            raise AssertionError("nothing should arrive")

    sub = Sub(zmq_factory)  # never connected
    with pytest.raises(ZmqTimeoutError):
        await waitForSubscription(pub, sub, timeout=0.1)
    assert "messageReceived" not in vars(sub)  # interception undone


@pytest.mark.parametrize("transport", ["inproc", "ipc", "tcp"])
def test_address_factory_gives_fresh_addresses(zmq_address, transport):
    first, second = zmq_address(transport), zmq_address(transport)
    assert first.startswith(transport + "://")
    if transport != "tcp":
        assert first != second


def test_address_factory_refuses_unknown_transport(zmq_address):
    with pytest.raises(ValueError, match="transport"):
        zmq_address("udp")


def test_trial_case_fails_a_test_that_leaves_requests_pending(tmp_path):
    source = tmp_path / "leaky_case.py"
    source.write_text(
        "from txzmq2 import ZmqEndpoint, ZmqREQConnection\n"
        "from txzmq2.testing import ZmqTestCase\n"
        "class Leaky(ZmqTestCase):\n"
        "    def test_leaves_a_request(self):\n"
        "        client = ZmqREQConnection(self.zmqFactory,\n"
        "            ZmqEndpoint('connect', self.zmqAddress('ipc')))\n"
        "        client.sendMsg(b'never answered').addErrback(lambda f: None)\n"
    )
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "twisted.trial",
            "--temp-directory",
            str(tmp_path / "trial"),
            "leaky_case",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": ROOT},
    )
    assert result.returncode != 0
    assert "left requests pending" in result.stdout

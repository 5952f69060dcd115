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
    sub.shutdown()
    pub.shutdown()


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


# -- what the helpers refuse to let a test leave behind -----------------------------------

PYTEST_CASES = """
import pytest_twisted
from txzmq2 import ZmqEndpoint, ZmqPullConnection, ZmqREQConnection

def test_leaves_a_request(zmq_factory, zmq_address):
    client = ZmqREQConnection(zmq_factory, ZmqEndpoint("connect", zmq_address("ipc")))
    client.sendMsg(b"never answered").addErrback(lambda f: None)

def test_leaves_a_connection_open(zmq_factory, zmq_address):
    ZmqPullConnection(zmq_factory, ZmqEndpoint("bind", zmq_address("ipc")))

def test_closes_what_it_opened(zmq_factory, zmq_address):
    ZmqPullConnection(zmq_factory, ZmqEndpoint("bind", zmq_address("ipc"))).shutdown()

def test_fails_with_a_connection_open(zmq_factory, zmq_address):
    ZmqPullConnection(zmq_factory, ZmqEndpoint("bind", zmq_address("ipc")))
    assert False, "the real failure"
"""


def runPytest(directory, *arguments: str) -> subprocess.CompletedProcess[str]:
    (directory / "test_cases.py").write_text(PYTEST_CASES)
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *arguments],
        cwd=directory,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": ROOT},
    )


def test_pytest_fixture_fails_tests_that_leave_requests_or_connections(tmp_path):
    result = runPytest(tmp_path)
    assert "1 failed, 3 passed, 2 errors" in result.stdout, result.stdout
    assert "test left requests pending" in result.stdout
    assert "test left connections open: <ZmqPullConnection bind ipc://" in result.stdout
    assert "ERROR test_cases.py::test_closes_what_it_opened" not in result.stdout
    # A test that failed is not also blamed for what its failure left open.
    assert "ERROR test_cases.py::test_fails_with_a_connection_open" not in result.stdout


def test_pytest_ini_option_lets_connections_stay_open(tmp_path):
    result = runPytest(tmp_path, "-o", "zmq_allow_open_connections=true")
    assert "1 failed, 3 passed, 1 error" in result.stdout, result.stdout
    assert "test left requests pending" in result.stdout
    assert "test left connections open" not in result.stdout


TRIAL_CASES = """
from txzmq2 import ZmqEndpoint, ZmqPullConnection
from txzmq2.testing import ZmqTestCase

class LeavesOpen(ZmqTestCase):
    def test_leaves_a_connection_open(self):
        ZmqPullConnection(self.zmqFactory, ZmqEndpoint("bind", self.zmqAddress("ipc")))

class ClosesInCleanup(ZmqTestCase):
    def test_closes_in_a_cleanup(self):
        pull = ZmqPullConnection(self.zmqFactory, ZmqEndpoint("bind", self.zmqAddress("ipc")))
        self.addCleanup(pull.shutdown)

class AllowsOpen(ZmqTestCase):
    allowOpenConnections = True

    def test_leaves_a_connection_open(self):
        ZmqPullConnection(self.zmqFactory, ZmqEndpoint("bind", self.zmqAddress("ipc")))
"""


def test_trial_case_fails_a_test_that_leaves_connections_open(tmp_path):
    (tmp_path / "open_cases.py").write_text(TRIAL_CASES)
    result = subprocess.run(
        [sys.executable, "-m", "twisted.trial", "--temp-directory", "trial", "open_cases"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": ROOT},
    )
    assert "FAILED (errors=1, successes=2)" in result.stdout, result.stdout
    assert "open_cases.LeavesOpen.test_leaves_a_connection_open" in result.stdout
    assert "test left connections open" in result.stdout

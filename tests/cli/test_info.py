"""
``txzmq2 info`` and ``txzmq2 --version``: what txzmq2 runs on, as ``capabilities()`` has it.
"""

from __future__ import annotations

import json
import platform

import zmq

import twisted
import txzmq2
from tests.cli.support import run


def test_info_prints_every_version_and_what_libzmq_has() -> None:
    result = run("info")
    assert result.returncode == 0, result.stderr
    lines = dict(
        line.split(None, 1) for line in result.stdout.replace("draft API", "draft").splitlines()
    )
    assert lines["txzmq2"] == txzmq2.__version__
    assert lines["pyzmq"] == zmq.pyzmq_version()
    assert lines["libzmq"] == zmq.zmq_version()
    assert lines["Twisted"] == twisted.__version__
    assert lines["Python"] == platform.python_version()
    found = txzmq2.capabilities()
    assert lines["transports"].split("  (")[0].split() == list(found.transports)
    assert lines["mechanisms"].split("  (")[0].split() == list(found.mechanisms)
    assert lines["draft"].startswith("yes" if found.draftAPI else "no")


def test_info_json_is_capabilities_as_data() -> None:
    result = run("info", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == txzmq2.capabilities().asDict()


def test_version_names_libzmq_and_what_else_it_runs_on() -> None:
    result = run("--version")
    assert result.returncode == 0, result.stderr
    assert result.stdout == (
        f"txzmq2 {txzmq2.__version__} (pyzmq {zmq.pyzmq_version()}, libzmq {zmq.zmq_version()},"
        f" Twisted {twisted.__version__}, Python {platform.python_version()})\n"
    )

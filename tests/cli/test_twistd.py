"""
The ``twistd`` plugins: ``twistd -n txzmq2-<device> --frontend ... --backend ...`` runs the
device as a Twisted service, passes real messages, and shuts down cleanly on SIGTERM.

``twistd`` ends a signalled run by sending itself the signal again once everything is shut
down (so a supervisor sees what stopped it): a clean stop is exit by SIGTERM after
"Server Shut Down." in the log.
"""

from __future__ import annotations

import signal
import socket
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.cli.support import (
    EXERCISES,
    ROOT,
    TIMEOUT,
    TWISTD,
    Process,
    environment,
    runningDevice,
)

pytestmark = pytest.mark.skipif(not TWISTD.exists(), reason=f"no {TWISTD}")

LOOPBACK = "tcp://127.0.0.1:*"


def twistd(tmp_path: Path, plugin: str, *arguments: str) -> list[str]:
    """A foreground twistd logging to stdout, with no pid file, running in ``tmp_path``."""
    return [
        str(TWISTD),
        "--nodaemon",
        "--pidfile=",
        f"--rundir={tmp_path}",
        "--logfile=-",
        plugin,
        *arguments,
    ]


def test_twistd_lists_every_device_plugin() -> None:
    result = subprocess.run(
        [str(TWISTD), "--help"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=environment(),
        timeout=TIMEOUT,
    )
    assert result.returncode == 0, result.stderr
    for device in EXERCISES:
        assert f"txzmq2-{device} " in result.stdout


@pytest.mark.timeout(40)
@pytest.mark.parametrize("device", sorted(EXERCISES))
def test_twistd_runs_the_device_and_shuts_down_on_sigterm(
    device: str, launch: Callable[..., Process], context: Any, tmp_path: Path
) -> None:
    process = launch(
        twistd(tmp_path, f"txzmq2-{device}", "--frontend", LOOPBACK, "--backend", LOOPBACK)
    )
    addresses = runningDevice(process, stream="stdout")
    EXERCISES[device](context, addresses["frontend"], addresses["backend"])
    assert process.stop(signal.SIGTERM) == -signal.SIGTERM, process.stdout
    assert f"{device}: stopped" in process.stdout
    assert "Server Shut Down." in process.stdout
    assert "Traceback" not in process.stdout + process.stderr


def _twistdRun(tmp_path: Path, *arguments: str) -> subprocess.CompletedProcess[str]:
    """Run ``twistd`` (foreground, logging to stdout) to its end."""
    return subprocess.run(
        twistd(tmp_path, *arguments),
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=environment(),
        timeout=TIMEOUT,
    )


def _oneLineError(result: subprocess.CompletedProcess[str]) -> str:
    """twistd failed with status 1 and one line on stderr, no traceback anywhere; the line."""
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert "Traceback" not in result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_twistd_rejects_a_malformed_address_in_one_line(tmp_path: Path) -> None:
    result = _twistdRun(
        tmp_path, "txzmq2-broker", "--frontend", "tpc://*:5559", "--backend", LOOPBACK
    )
    line = _oneLineError(result)
    assert line.startswith("twistd txzmq2-broker: error: ")
    assert "endpoint address 'tpc://*:5559': unknown transport 'tpc'" in line


def test_twistd_requires_a_backend(tmp_path: Path) -> None:
    line = _oneLineError(_twistdRun(tmp_path, "txzmq2-streamer", "--frontend", LOOPBACK))
    assert line == (
        "twistd txzmq2-streamer: error: --backend ADDR is required "
        "(see twistd txzmq2-streamer --help)"
    )


def test_twistd_names_a_mistyped_option(tmp_path: Path) -> None:
    result = _twistdRun(tmp_path, "txzmq2-broker", "--frontnd", LOOPBACK, "--backend", LOOPBACK)
    line = _oneLineError(result)
    assert line.startswith("twistd txzmq2-broker: error: option --frontnd not recognized")


def test_twistd_reports_an_address_in_use_in_one_line(tmp_path: Path) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        address = f"tcp://127.0.0.1:{listener.getsockname()[1]}"
        result = _twistdRun(
            tmp_path, "txzmq2-broker", "--frontend", address, "--backend", LOOPBACK
        )
    # twistd sends what a failing start prints to its log, here stdout; no traceback.
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert "Traceback" not in result.stdout + result.stderr
    assert (
        f"twistd txzmq2-broker: error: cannot bind frontend (ROUTER) to {address}: "
        "Address already in use"
    ) in result.stdout + result.stderr

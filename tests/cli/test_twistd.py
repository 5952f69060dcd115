"""
The ``twistd`` plugins: ``twistd -n txzmq2-<device> --frontend ... --backend ...`` runs the
device as a Twisted service, passes real messages, and shuts down cleanly on SIGTERM.

``twistd`` ends a signalled run by sending itself the signal again once everything is shut
down (so a supervisor sees what stopped it): a clean stop is exit by SIGTERM after
"Server Shut Down." in the log.
"""

from __future__ import annotations

import signal
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


def test_twistd_rejects_a_malformed_address_without_traceback(tmp_path: Path) -> None:
    result = subprocess.run(
        twistd(tmp_path, "txzmq2-broker", "--frontend", "tpc://*:5559", "--backend", LOOPBACK),
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=environment(),
        timeout=TIMEOUT,
    )
    assert result.returncode == 1  # twistd's status for a usage error
    assert "Traceback" not in result.stdout + result.stderr
    assert "endpoint address 'tpc://*:5559': unknown transport 'tpc'" in result.stdout


def test_twistd_requires_a_backend(tmp_path: Path) -> None:
    result = subprocess.run(
        twistd(tmp_path, "txzmq2-streamer", "--frontend", LOOPBACK),
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=environment(),
        timeout=TIMEOUT,
    )
    assert result.returncode == 1
    assert "--backend ADDR is required" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr

"""Running a program of ``examples/`` as a user would: shared by the tests of examples."""

from __future__ import annotations

import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).parent.parent
TIMEOUT = 60
"""Seconds an example may run before its test fails."""


def runExample(*arguments: str, timeout: float = TIMEOUT) -> subprocess.CompletedProcess[str]:
    """Run ``python ARGUMENTS`` (an example's path first) from the repository root."""
    return subprocess.run(
        [sys.executable, *arguments],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def exampleOutput(path: str, timeout: float = TIMEOUT) -> list[str]:
    """Run the example at ``path``; it must exit 0 without a traceback. Its stdout lines."""
    result = runExample(path, timeout=timeout)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    return result.stdout.splitlines()

"""The README's code runs as written."""

from __future__ import annotations

import pathlib
import re
import subprocess
import sys

README = pathlib.Path(__file__).parent.parent / "README.md"


def test_readme_usage_example_runs():
    text = README.read_text()
    code = re.search(r"## Using it\n\n```python\n(.*?)```", text, re.S)
    assert code is not None, "README lost its usage example"
    result = subprocess.run(
        [sys.executable, "-c", code.group(1)], capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[b'echo', b'hello']"


def test_demo_command_prints_round_trips_and_exits_zero():
    result = subprocess.run(
        [sys.executable, "-m", "txzmq2", "demo", "--rounds", "3"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("request ") == 3
    assert "round trips over tcp loopback" in result.stdout


def test_demo_rejects_bad_rounds_with_usage_error():
    result = subprocess.run(
        [sys.executable, "-m", "txzmq2", "demo", "--rounds", "zero"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr

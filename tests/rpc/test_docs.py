"""The code of docs/rpc.md runs as written."""

from __future__ import annotations

import pathlib
import re
import subprocess
import sys

import pytest

DOCUMENT = pathlib.Path(__file__).parents[2] / "docs" / "rpc.md"


@pytest.mark.timeout(60)
def test_quick_start_runs_and_prints_what_its_comments_say():
    code = re.search(r"## Quick start\n\n```python\n(.*?)```", DOCUMENT.read_text(), re.S)
    assert code is not None, "docs/rpc.md lost its quick start"
    result = subprocess.run(
        [sys.executable, "-c", code.group(1)], capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["3", "[1, 2]", "42", "NoSuchMethod"]

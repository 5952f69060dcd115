"""
The benchmark suite's RPC cases run: a quick pass of each, txzmq2 against the plain pyzmq
program speaking the same wire format, completes every call. No figure is asserted.
"""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).parents[2]


@pytest.mark.timeout(120)
def test_quick_rpc_cases_complete_every_call():
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "txzmq2.bench",
            "--quick",
            "--json",
            "--case",
            "rpc_",
            "--server-mode",
            "inprocess",
            "--impl",
            "txzmq2",
            "--impl",
            "pyzmq",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=100,
    )
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(line["case"], line["impl"]) for line in lines] == [
        ("rpc_sequential", "txzmq2"),
        ("rpc_sequential", "pyzmq"),
        ("rpc_pipelined", "txzmq2"),
        ("rpc_pipelined", "pyzmq"),
    ]
    for line in lines:
        assert line["error"] is None
        assert line["completed"] == line["count"] > 0
        assert not line["timed_out"]
        assert 0 < line["p50_us"] <= line["p99_us"]

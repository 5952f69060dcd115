"""
The benchmark suite runs: a quick PUSH/PULL pass prints one JSON line per measurement with
the documented keys and positive figures. No performance figure is asserted.
"""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).parent.parent
TIMEOUT = 120
KEYS = {
    "case",
    "transport",
    "mode",
    "impl",
    "count",
    "completed",
    "elapsed_s",
    "msgs_per_s",
    "mb_per_s",
    "p50_us",
    "p99_us",
    "drops",
    "timed_out",
    "max_stall_ms",
    "rss_kb",
    "peer_rss_kb",
    "ratio",
    "error",
}


def runSuite(*arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "benchmarks", *arguments],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )


def test_quick_push_pull_prints_a_json_line_per_measurement() -> None:
    result = runSuite("--quick", "--json", "--case", "push_pull_100B")
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    # txzmq2 and pyzmq, each with the far side in-process and in a subprocess (tcp only).
    assert {(line["impl"], line["mode"]) for line in lines} == {
        ("txzmq2", "inprocess"),
        ("txzmq2", "subprocess"),
        ("pyzmq", "inprocess"),
        ("pyzmq", "subprocess"),
    }
    for line in lines:
        assert KEYS <= line.keys()
        assert line["error"] is None
        assert line["completed"] == line["count"] > 0
        assert line["msgs_per_s"] > 0 and line["mb_per_s"] > 0 and line["rss_kb"] > 0
        if line["impl"] == "txzmq2":
            assert line["max_stall_ms"] > 0 and line["ratio"] > 0
        if line["mode"] == "subprocess":
            assert line["peer_rss_kb"] > 0


def test_quick_request_reply_reports_latencies() -> None:
    result = runSuite(
        "--quick", "--json", "--case", "reqrep_sequential", "--server-mode", "inprocess"
    )
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["impl"] for line in lines] == ["txzmq2", "pyzmq"]
    for line in lines:
        assert 0 < line["p50_us"] <= line["p99_us"]


def test_unknown_case_is_a_usage_error() -> None:
    result = runSuite("--case", "no_such_case")
    assert result.returncode == 2
    assert "no case matches" in result.stderr

"""
The benchmark suite runs: a quick pass prints one JSON line per measurement with the
documented keys and positive figures, measures txZMQ too when it is importable, and reports
a txZMQ that is missing or fails instead of crashing. No performance figure is asserted.
"""

from __future__ import annotations

import importlib.util
import json
import os
import pathlib
import re
import subprocess
import sys
from typing import Any

import pytest

from txzmq2 import _fastpath
from txzmq2.bench.common import Measurement
from txzmq2.bench.report import markdownTable

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
    "skipped",
}
BASELINES = ("--impl", "txzmq2", "--impl", "pyzmq")

needsAiozmq = pytest.mark.skipif(
    importlib.util.find_spec("aiozmq") is None,
    reason="aiozmq is not installed (pip install 'txzmq2[bench]'): nothing to measure",
)
needsTxzmq = pytest.mark.skipif(
    importlib.util.find_spec("txzmq") is None,
    reason="txZMQ is not installed (pip install 'txzmq2[bench]'): nothing to measure",
)

# Stand-ins for txZMQ, put first on the suite's path: one that does not import, and one
# that imports but fails as soon as a measurement starts.
UNIMPORTABLE_TXZMQ = 'raise ImportError("simulated: this txZMQ does not import")\n'
FAILING_TXZMQ = """
class ZmqConnection:
    pass


ZmqREPConnection = ZmqREQConnection = ZmqConnection
ZmqPushConnection = ZmqPullConnection = ZmqPubConnection = ZmqSubConnection = ZmqConnection


class ZmqFactory:
    def __init__(self):
        raise RuntimeError("simulated txZMQ failure")
"""


def runSuite(
    *arguments: str, txzmq: str | None = None, tmpPath: pathlib.Path | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the suite; with ``txzmq``, that source stands in for the txzmq module."""
    environment = dict(os.environ)
    if txzmq is not None:
        assert tmpPath is not None
        (tmpPath / "txzmq.py").write_text(txzmq)
        environment["PYTHONPATH"] = os.pathsep.join(
            filter(None, [str(tmpPath), environment.get("PYTHONPATH")])
        )
    return subprocess.run(
        [sys.executable, "-m", "txzmq2.bench", *arguments],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        env=environment,
    )


def jsonOutput(result: subprocess.CompletedProcess[str]) -> list[dict[str, Any]]:
    return [json.loads(line) for line in result.stdout.splitlines()]


def tableRows(result: subprocess.CompletedProcess[str], impl: str) -> list[list[str]]:
    """The cells of the table rows of ``impl`` (as the table names it)."""
    rows = [
        [cell.strip() for cell in line.strip("|").split("|")]
        for line in result.stdout.splitlines()
        if line.startswith("|")
    ]
    return [row for row in rows if row[3] == impl]


def test_quick_push_pull_prints_a_json_line_per_measurement() -> None:
    result = runSuite("--quick", "--json", "--case", "push_pull_100B", *BASELINES)
    assert result.returncode == 0, result.stderr
    lines = jsonOutput(result)
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
        "--quick",
        "--json",
        "--case",
        "reqrep_sequential",
        "--server-mode",
        "inprocess",
        *BASELINES,
    )
    assert result.returncode == 0, result.stderr
    lines = jsonOutput(result)
    assert [line["impl"] for line in lines] == ["txzmq2", "pyzmq"]
    for line in lines:
        assert 0 < line["p50_us"] <= line["p99_us"]


@needsTxzmq
def test_quick_txzmq_is_measured_in_both_modes() -> None:
    result = runSuite(
        "--quick", "--json", "--case", "push_pull_100B", "--impl", "pyzmq", "--impl", "txzmq"
    )
    assert result.returncode == 0, result.stderr
    lines = [line for line in jsonOutput(result) if line["impl"] == "txzmq"]
    assert [line["mode"] for line in lines] == ["inprocess", "subprocess"]
    for line in lines:
        assert line["error"] is None and line["timed_out"] is False
        assert line["completed"] == line["count"] > 0
        assert line["msgs_per_s"] > 0 and line["mb_per_s"] > 0 and line["rss_kb"] > 0
        assert line["max_stall_ms"] > 0 and line["ratio"] > 0
    assert lines[1]["peer_rss_kb"] > 0 and lines[1]["peer_max_stall_ms"] > 0


@needsTxzmq
def test_table_shows_txzmq_with_latencies_and_rpc_as_not_applicable() -> None:
    result = runSuite(
        "--quick",
        "--case",
        "reqrep_sequential",
        "--case",
        "rpc_sequential",
        "--server-mode",
        "inprocess",
        "--impl",
        "pyzmq",
        "--impl",
        "txzmq",
    )
    assert result.returncode == 0, result.stderr
    requests, calls = tableRows(result, "txZMQ")
    # throughput, ratio to pyzmq, p50, p99, stall: figures, not placeholders.
    assert requests[4].endswith(" msg/s") and requests[5].endswith("x")
    assert all(cell != "-" for cell in requests[6:9])
    assert calls[4] == "n/a (txZMQ has no RPC layer)"


@pytest.mark.parametrize("impl", ["zmq_asyncio", pytest.param("aiozmq", marks=needsAiozmq)])
def test_quick_asyncio_peer_is_measured_in_both_modes(impl: str) -> None:
    result = runSuite(
        "--quick", "--json", "--case", "push_pull_100B", "--impl", "pyzmq", "--impl", impl
    )
    assert result.returncode == 0, result.stderr
    lines = [line for line in jsonOutput(result) if line["impl"] == impl]
    assert [line["mode"] for line in lines] == ["inprocess", "subprocess"]
    for line in lines:
        assert line["error"] is None and line["timed_out"] is False
        assert line["completed"] == line["count"] > 0
        assert line["max_stall_ms"] > 0 and line["ratio"] > 0
    assert lines[1]["peer_rss_kb"] > 0 and lines[1]["peer_max_stall_ms"] > 0


@pytest.mark.parametrize("impl", ["zmq_asyncio", pytest.param("aiozmq", marks=needsAiozmq)])
@pytest.mark.parametrize("case", ["reqrep_sequential", "reqrep_pipelined", "pub_sub_100B"])
def test_quick_asyncio_peer_runs_each_pattern(impl: str, case: str) -> None:
    result = runSuite(
        "--quick", "--json", "--case", case, "--server-mode", "inprocess", "--impl", impl
    )
    assert result.returncode == 0, result.stderr
    [line] = jsonOutput(result)
    assert line["error"] is None and line["timed_out"] is False
    assert 0 < line["completed"] <= line["count"]
    if case.startswith("reqrep"):
        assert line["completed"] == line["count"]
        assert 0 < line["p50_us"] <= line["p99_us"]


def test_asyncio_peers_are_not_applicable_to_rpc() -> None:
    result = runSuite(
        "--quick",
        "--json",
        "--case",
        "rpc_sequential",
        "--server-mode",
        "inprocess",
        "--impl",
        "zmq_asyncio",
    )
    assert result.returncode == 0, result.stderr
    [line] = jsonOutput(result)
    assert line["skipped"] == "zmq.asyncio has no RPC layer"


@pytest.mark.skipif(not _fastpath.native, reason="txzmq2 runs on its pure-Python path here")
def test_pure_python_path_is_measured_beside_the_native_path() -> None:
    result = runSuite(
        "--quick",
        "--json",
        "--case",
        "push_pull_100B",
        "--server-mode",
        "inprocess",
        *BASELINES,
        "--impl",
        "txzmq2_pure",
    )
    assert result.returncode == 0, result.stderr
    lines = {line["impl"]: line for line in jsonOutput(result)}
    assert lines.keys() == {"txzmq2", "txzmq2_pure", "pyzmq"}
    pure = lines["txzmq2_pure"]
    assert pure["error"] is None and pure["completed"] == pure["count"] and pure["ratio"] > 0


def test_ratio_table_shows_each_peer_beside_txzmq2() -> None:
    result = runSuite(
        "--quick",
        "--case",
        "push_pull_100B",
        "--server-mode",
        "inprocess",
        *BASELINES,
        "--impl",
        "pyzmq_frames",
        "--impl",
        "zmq_asyncio",
    )
    assert result.returncode == 0, result.stderr
    table = result.stdout.split("\n\n")[0].splitlines()
    header = [cell.strip() for cell in table[0].strip("|").split("|")]
    assert header == [
        "case",
        "transport",
        "mode",
        "plain pyzmq msg/s",
        "txzmq2 / plain",
        "pyzmq, txzmq2's frames / plain",
        "zmq.asyncio / plain",
    ]
    [row] = [[cell.strip() for cell in line.strip("|").split("|")] for line in table[2:]]
    assert row[:3] == ["push_pull_100B", "tcp", "inprocess"]
    assert float(row[3].replace(",", "")) > 0
    assert all(float(ratio) > 0 for ratio in row[4:])


def test_unimportable_txzmq_is_skipped_with_the_reason(tmp_path: pathlib.Path) -> None:
    result = runSuite(
        "--quick",
        "--case",
        "push_pull_100B",
        "--server-mode",
        "inprocess",
        txzmq=UNIMPORTABLE_TXZMQ,
        tmpPath=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert tableRows(result, "txZMQ") == []
    assert (
        "txZMQ was not measured (skipped): import txzmq failed: "
        "ImportError: simulated: this txZMQ does not import"
    ) in result.stdout


def test_asking_for_an_unimportable_txzmq_is_a_usage_error(tmp_path: pathlib.Path) -> None:
    result = runSuite("--quick", "--impl", "txzmq", txzmq=UNIMPORTABLE_TXZMQ, tmpPath=tmp_path)
    assert result.returncode == 2
    assert "--impl txzmq: cannot import txzmq" in result.stderr


def test_failing_txzmq_is_reported_as_failed_and_the_suite_goes_on(
    tmp_path: pathlib.Path,
) -> None:
    result = runSuite(
        "--quick",
        "--case",
        "push_pull_100B",
        "--impl",
        "txzmq",
        "--impl",
        "txzmq2",
        txzmq=FAILING_TXZMQ,
        tmpPath=tmp_path,
    )
    # A txZMQ failure is a finding about txZMQ: it does not fail the run.
    assert result.returncode == 0, result.stderr
    rows = tableRows(result, "txZMQ")
    assert [row[4] for row in rows] == ["failed: RuntimeError: simulated txZMQ failure"] * 2
    assert len(tableRows(result, "txzmq2")) == 2


def test_timed_out_measurement_is_shown_as_failed_with_its_progress() -> None:
    measurement = Measurement(
        "pub_sub_100B",
        "tcp",
        "inprocess",
        "txzmq",
        200_000,
        100,
        completed=1_500,
        msgs_per_s=75_000.0,
        mb_per_s=7.5,
        timed_out=True,
    )
    assert (
        "| txZMQ | failed: timed out at 1,500/200,000 (75,000 msg/s, 7.5 MB/s until then) |"
        in markdownTable([measurement])
    )


def test_unknown_case_is_a_usage_error() -> None:
    result = runSuite("--case", "no_such_case")
    assert result.returncode == 2
    assert "no case matches" in result.stderr


def _runModule(module: str, *arguments: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "-m", module, *arguments],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert result.returncode == 0, result.stderr
    return result


def _tableRows(output: str, header: str) -> list[list[str]]:
    return [
        [cell.strip() for cell in line.strip("|").split("|")]
        for line in output.splitlines()
        if line.startswith("| ") and not line.startswith(f"| {header}")
    ]


def test_roundtrip_profile_times_each_client_against_a_blocking_peer() -> None:
    result = _runModule("txzmq2.bench.roundtrip", "--count", "300")
    rows = _tableRows(result.stdout, "client")
    assert [row[0] for row in rows] == ["txzmq2", "floor", "pyzmq"]
    for _, rate, wall, cpu in rows:
        assert float(rate.replace(",", "")) > 0 and float(wall) > 0 and float(cpu) > 0


@pytest.mark.parametrize("hwm", ["1000", "0"])
def test_send_cost_prices_each_sender_against_a_blocking_peer(hwm: str) -> None:
    result = _runModule("txzmq2.bench.sendcost", "--count", "3000", "--hwm", hwm)
    rows = _tableRows(result.stdout, "sender")
    assert [row[0] for row in rows] == ["send", "sendMany", "pyzmq"]
    for _, figure, ratio in rows:
        assert float(figure.replace(",", "")) > 0 and float(ratio.rstrip("x")) > 0


def test_wakeup_profile_prices_every_piece_of_a_wake_up() -> None:
    result = _runModule("txzmq2.bench.wakeup", "--count", "2000")
    from txzmq2.bench.wakeup import PIECES

    rows = _tableRows(result.stdout, "piece")
    assert [row[0] for row in rows] == [label for label, _ in list(PIECES.values())[1:]]
    # Wall-clock prices of a few microseconds each: their order flips on a
    # loaded machine, so the test checks that every piece was measured, and
    # the comparisons live in docs/performance.md (instruction counts).
    for row in rows:
        assert float(row[1].replace(",", "")) > 0, row


def test_wakeup_counts_show_one_wake_up_per_round_trip_at_most() -> None:
    result = _runModule("txzmq2.bench.wakeup", "--wakeups", "--count", "300")
    rows = _tableRows(result.stdout, "side")
    assert [row[0] for row in rows] == ["txzmq2 REQ client", "txzmq2 REP server"]
    for _, wakeups, empty, passes in rows:
        # A reply read in the pass that sent the request needs no wake-up of its own; a
        # wake-up per message is the most a sequential exchange should cost.
        assert 0 < float(wakeups) <= 1.5
        assert 0 <= float(empty) <= float(wakeups)
        assert float(passes) < 0.5


def test_progress_goes_to_stderr_a_line_per_measurement_and_the_table_to_stdout() -> None:
    result = runSuite(
        "--quick", "--case", "reqrep_sequential", "--server-mode", "inprocess", *BASELINES
    )
    assert result.returncode == 0, result.stderr
    progress = [line for line in result.stderr.splitlines() if line.startswith("[")]
    counters = [re.match(r"\[\s*(\d+)/(\d+)\]", line) for line in progress]
    assert [counter and counter.groups() for counter in counters] == [("1", "2"), ("2", "2")]
    assert all("reqrep_sequential tcp inprocess" in line for line in progress)
    assert [row[3] for row in tableRows(result, "txzmq2")] == ["txzmq2"]


@pytest.mark.skipif(
    importlib.util.find_spec("matplotlib") is None, reason="matplotlib is not installed"
)
def test_plot_writes_a_png_of_the_latency_distributions(tmp_path: pathlib.Path) -> None:
    plot = tmp_path / "latency.png"
    result = runSuite(
        "--quick",
        "--case",
        "reqrep_sequential",
        "--server-mode",
        "inprocess",
        *BASELINES,
        "--plot",
        str(plot),
    )
    assert result.returncode == 0, result.stderr
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert f"written to {plot}" in result.stderr


def test_bench_command_runs_the_installed_suite_outside_any_checkout(
    tmp_path: pathlib.Path,
) -> None:
    arguments = ["--quick", "--json", "--case", "push_pull_100B", "--server-mode", "inprocess"]
    result = subprocess.run(
        [sys.executable, "-m", "txzmq2", "bench", *arguments, "--impl", "txzmq2"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert result.returncode == 0, result.stderr
    [line] = jsonOutput(result)
    assert line["error"] is None and line["completed"] == line["count"] > 0

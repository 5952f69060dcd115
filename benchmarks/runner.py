"""
The command line: ``python -m benchmarks`` (or ``txzmq2 bench`` from a checkout).

For each selected case, transport and server mode it runs one worker process per
implementation (txzmq2, then plain pyzmq), shows progress on stderr and prints the table
(or JSON lines) on stdout at the end.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from time import perf_counter

from benchmarks.common import (
    CASES,
    IMPLEMENTATIONS,
    MODES,
    TRANSPORTS,
    Case,
    Measurement,
    Spec,
    subprocessEnvironment,
)
from benchmarks.report import jsonLines, markdownTable, plotLatencies, withRatios

__all__ = ["main"]

TIMEOUT = 30.0
"""Default bound on one measurement (seconds); a worker gets this plus a grace period."""
QUICK_TIMEOUT = 10.0
WORKER_GRACE = 30.0


def _parser(prog: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Measure txzmq2 against plain blocking pyzmq doing the same work.",
        epilog="cases: " + ", ".join(case.name for case in CASES),
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a smoke run: small counts, tcp only unless --transport is given (~30 s)",
    )
    parser.add_argument(
        "--case",
        action="append",
        metavar="NAME",
        help="run only cases whose name contains NAME (repeatable), e.g. push_pull",
    )
    parser.add_argument(
        "--transport", choices=(*TRANSPORTS, "both"), help="default: both (tcp with --quick)"
    )
    parser.add_argument(
        "--server-mode",
        choices=(*MODES, "both"),
        default="both",
        help="the far side on the same reactor/in a thread, in a subprocess, or both (default)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        help=f"bound on each measurement in seconds (default {TIMEOUT:g}, "
        f"{QUICK_TIMEOUT:g} with --quick)",
    )
    parser.add_argument("--json", action="store_true", help="print JSON lines, not a table")
    parser.add_argument(
        "--plot", metavar="FILE.png", help="draw latency distributions (needs matplotlib)"
    )
    return parser


def _selectCases(names: Sequence[str] | None) -> list[Case]:
    if not names:
        return list(CASES)
    return [case for case in CASES if any(name in case.name for name in names)]


def _runWorker(spec: Spec) -> Measurement:
    """Run one measurement in a fresh worker process; a failure becomes an error row."""
    failed = Measurement.of(spec)
    try:
        process = subprocess.run(
            [sys.executable, "-m", "benchmarks.worker", spec.toJson()],
            capture_output=True,
            text=True,
            timeout=spec.timeout + WORKER_GRACE,
            env=subprocessEnvironment(),
        )
    except subprocess.TimeoutExpired:
        failed.error = f"worker exceeded {spec.timeout + WORKER_GRACE:g} s and was killed"
        return failed
    lines = process.stdout.strip().splitlines()
    try:
        data = json.loads(lines[-1])
    except (IndexError, ValueError):
        lastError = process.stderr.strip().splitlines()[-1:] or ["no output"]
        failed.error = f"worker exited {process.returncode}: {lastError[0]}"
        return failed
    if "error" in data and len(data) == 1:
        failed.error = data["error"]
        return failed
    return Measurement(**data)


def _progress(text: str, end: str = "\n") -> None:
    print(text, end=end, file=sys.stderr, flush=True)


def _summary(measurement: Measurement) -> str:
    if measurement.error:
        return f"ERROR {measurement.error}"
    text = f"{measurement.msgs_per_s:,.0f} msg/s"
    if measurement.p50_us is not None:
        text += f", p50 {measurement.p50_us:,.0f} µs"
    if measurement.drops:
        text += f", {measurement.drops:,} dropped"
    if measurement.timed_out:
        text += ", TIMED OUT"
    return text


def main(argv: Sequence[str] | None = None, prog: str = "python -m benchmarks") -> int:
    """Run the suite; return the exit status (0, or 1 when a measurement failed)."""
    args = _parser(prog).parse_args(argv)
    if args.plot and importlib.util.find_spec("matplotlib") is None:
        print(
            f"{prog}: --plot needs matplotlib, which is not installed: "
            "pip install 'txzmq2[bench]' (or pip install matplotlib)",
            file=sys.stderr,
        )
        return 2
    cases = _selectCases(args.case)
    if not cases:
        print(f"{prog}: no case matches {args.case}", file=sys.stderr)
        return 2
    transport = args.transport or ("tcp" if args.quick else "both")
    transports = TRANSPORTS if transport == "both" else (transport,)
    modes = MODES if args.server_mode == "both" else (args.server_mode,)
    timeout = args.timeout or (QUICK_TIMEOUT if args.quick else TIMEOUT)

    measurements: list[Measurement] = []
    total = len(cases) * len(transports) * len(modes) * len(IMPLEMENTATIONS)
    began = perf_counter()
    with tempfile.TemporaryDirectory(prefix="txzmq2-bench-") as ipcDir:
        for case in cases:
            for transportName in transports:
                for mode in modes:
                    for impl in IMPLEMENTATIONS:
                        spec = Spec(
                            case=case.name,
                            kind=case.kind,
                            impl=impl,
                            transport=transportName,
                            mode=mode,
                            count=case.quickCount if args.quick else case.count,
                            size=case.size,
                            inflight=case.inflight,
                            rpc=case.rpc,
                            timeout=timeout,
                            ipcDir=ipcDir,
                        )
                        label = f"[{len(measurements) + 1:2}/{total}] {case.name} "
                        label += f"{transportName} {mode} {impl}"
                        _progress(f"{label} ... ", end="")
                        measurement = _runWorker(spec)
                        measurements.append(measurement)
                        _progress(_summary(measurement))
    _progress(f"done in {perf_counter() - began:.0f} s")

    withRatios(measurements)
    print(jsonLines(measurements) if args.json else markdownTable(measurements))
    if args.plot:
        drawn = plotLatencies(measurements, args.plot)
        if drawn:
            _progress(f"latency plot ({drawn} panels) written to {args.plot}")
        else:
            _progress("no request-reply case ran: no latency plot written")
    return 1 if any(m.error for m in measurements) else 0

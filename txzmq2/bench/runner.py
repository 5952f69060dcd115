"""
The command line: ``python -m txzmq2.bench`` (or ``txzmq2 bench``).

For each selected case, transport and server mode it runs one worker process per
implementation (txzmq2, txzmq2 on its pure-Python path when the native one is built, plain
pyzmq, pyzmq with txzmq2's frames, then the event-loop peers:
txZMQ, zmq.asyncio, aiozmq, the optional ones when importable), shows progress on stderr and
prints the tables (or JSON lines) on stdout at the end. A case an implementation cannot run
(the peers have no RPC in txzmq2's wire format) is reported as n/a. The exit status is 1 when
a txzmq2 or pyzmq measurement failed; a peer's failure is a finding about it, shown in the
table.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from itertools import product
from time import perf_counter

from txzmq2 import _fastpath
from txzmq2.bench.common import (
    CASES,
    IMPLEMENTATIONS,
    MODES,
    TRANSPORTS,
    Case,
    Measurement,
    Spec,
    notApplicable,
)
from txzmq2.bench.report import (
    NAMES,
    jsonLines,
    markdownTable,
    plotLatencies,
    ratioTable,
    withRatios,
)

__all__ = ["main"]

TIMEOUT = 30.0
"""Default bound on one measurement (seconds); a worker gets this plus a grace period."""
QUICK_TIMEOUT = 10.0
WORKER_GRACE = 30.0
IMPORT_TIMEOUT = 30.0
OPTIONAL = {"txzmq": "txZMQ", "aiozmq": "aiozmq"}
"""Implementations measured only when importable: package -> name on PyPI."""
OURS = ("txzmq2", "txzmq2_pure", "pyzmq", "pyzmq_frames")
"""Implementations whose failure fails the run (a peer's is a finding about that peer)."""


def _parser(prog: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Measure txzmq2 against plain blocking pyzmq doing the same work, beside "
        "the event-loop peers (txZMQ, zmq.asyncio, aiozmq) when they are installed.",
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
    parser.add_argument(
        "--impl",
        action="append",
        choices=IMPLEMENTATIONS,
        metavar="NAME",
        help=f"run only this implementation (repeatable): {', '.join(IMPLEMENTATIONS)}; "
        "default: all (txzmq and aiozmq only when importable)",
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


def _importProblem(package: str) -> str | None:
    """Why ``package`` cannot be imported where the workers run, or None if it can."""
    try:
        process = subprocess.run(
            [sys.executable, "-c", f"import {package}"],
            capture_output=True,
            text=True,
            timeout=IMPORT_TIMEOUT,
        )
    except subprocess.TimeoutExpired:
        return f"import {package} took over {IMPORT_TIMEOUT:g} s"
    if process.returncode == 0:
        return None
    lastLine = process.stderr.strip().splitlines()[-1:] or [f"exit status {process.returncode}"]
    return lastLine[0]


def _selectImplementations(
    names: Sequence[str] | None, prog: str
) -> tuple[list[str], list[str]] | None:
    """
    The implementations to run and notes on those left out (an optional one that does not
    import); None, after saying why on stderr, when one asked for by name does not import.
    """
    selected = [impl for impl in IMPLEMENTATIONS if not names or impl in names]
    notes: list[str] = []
    if "txzmq2_pure" in selected and not _fastpath.native:
        # Then txzmq2 itself runs on the pure-Python path: measuring it twice says nothing.
        selected.remove("txzmq2_pure")
        notes.append(f"txzmq2 runs on its pure-Python path here: {_fastpath.reason}.")
    for impl in [impl for impl in selected if impl in OPTIONAL]:
        problem = _importProblem(impl)
        if problem is None:
            continue
        if names:
            print(f"{prog}: --impl {impl}: cannot import {impl}: {problem}", file=sys.stderr)
            return None
        selected.remove(impl)
        note = f"{NAMES[impl]} was not measured (skipped): import {impl} failed: {problem}."
        if problem.startswith("ModuleNotFoundError"):
            note += f" To measure it: pip install 'txzmq2[bench]' (or {OPTIONAL[impl]})."
        notes.append(note)
    return selected, notes


def _runWorker(spec: Spec) -> Measurement:
    """Run one measurement in a fresh worker process; a failure becomes an error row."""
    failed = Measurement.of(spec)
    environment = dict(os.environ)
    if spec.impl == "txzmq2_pure":
        environment[_fastpath.ENVIRONMENT_VARIABLE] = "1"  # the worker and its peer
    try:
        process = subprocess.run(
            [sys.executable, "-m", "txzmq2.bench.worker", spec.toJson()],
            capture_output=True,
            text=True,
            timeout=spec.timeout + WORKER_GRACE,
            env=environment,
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
    if measurement.skipped:
        return f"n/a ({measurement.skipped})"
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


def main(argv: Sequence[str] | None = None, prog: str = "python -m txzmq2.bench") -> int:
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
    selection = _selectImplementations(args.impl, prog)
    if selection is None:
        return 2
    implementations, notes = selection
    for note in notes:
        _progress(note)

    measurements: list[Measurement] = []
    total = len(cases) * len(transports) * len(modes) * len(implementations)
    began = perf_counter()
    with tempfile.TemporaryDirectory(prefix="txzmq2-bench-") as ipcDir:
        for case, transportName, mode, impl in product(cases, transports, modes, implementations):
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
            label = (
                f"[{len(measurements) + 1:2}/{total}] {case.name} {transportName} {mode} {impl}"
            )
            _progress(f"{label} ... ", end="")
            reason = notApplicable(case, impl)
            measurement = (
                _runWorker(spec) if reason is None else Measurement.of(spec, skipped=reason)
            )
            measurements.append(measurement)
            _progress(_summary(measurement))
    _progress(f"done in {perf_counter() - began:.0f} s")

    withRatios(measurements)
    if args.json:
        print(jsonLines(measurements))
    else:
        print(ratioTable(measurements))
        print()
        print(markdownTable(measurements, notes))
    if args.plot:
        drawn = plotLatencies(measurements, args.plot)
        if drawn:
            _progress(f"latency plot ({drawn} panels) written to {args.plot}")
        else:
            _progress("no request-reply case ran: no latency plot written")
    return 1 if any(m.error for m in measurements if m.impl in OURS) else 0

"""
Presenting measurements: the markdown table, JSON lines, and the latency plot.

Two tables: the ratios (one row per case, transport and mode: the plain pyzmq rate, and
every other implementation's rate relative to it, side by side), then the details (one row
per implementation of each case, transport and mode: rates, latencies, stalls, memory).
Every ratio is to plain blocking pyzmq doing the same work (above 1: faster than it).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from itertools import groupby

from txzmq2.bench.common import BASELINE, IMPLEMENTATIONS, Measurement

__all__ = [
    "NAMES",
    "jsonLines",
    "markdownTable",
    "plotLatencies",
    "ratioTable",
    "withRatios",
]

NAMES = {
    "txzmq2": "txzmq2",
    "txzmq2_pure": "txzmq2, pure Python",
    "pyzmq": "pyzmq",
    "pyzmq_frames": "pyzmq, txzmq2's frames",
    "txzmq": "txZMQ",
    "zmq_asyncio": "zmq.asyncio",
    "aiozmq": "aiozmq",
}
"""How the tables and the plot name each implementation."""

_COLUMNS = (
    "case",
    "transport",
    "mode",
    "impl",
    "throughput",
    "vs plain pyzmq",
    "p50 µs",
    "p99 µs",
    "max stall ms",
    "RSS MiB (worker / peer)",
)


def _key(measurement: Measurement) -> tuple[str, str, str]:
    return measurement.case, measurement.transport, measurement.mode


def _failed(measurement: Measurement) -> bool:
    return bool(measurement.error or measurement.skipped)


def withRatios(measurements: Sequence[Measurement]) -> list[Measurement]:
    """Fill in each measurement's ``ratio`` to plain pyzmq's rate for the same row."""
    baselines = {_key(m): m for m in measurements if m.impl == BASELINE and not _failed(m)}
    for measurement in measurements:
        baseline = baselines.get(_key(measurement))
        if (
            measurement.impl != BASELINE
            and baseline is not None
            and baseline.msgs_per_s > 0
            and not _failed(measurement)
        ):
            measurement.ratio = round(measurement.msgs_per_s / baseline.msgs_per_s, 3)
    return list(measurements)


def _figure(measurement: Measurement) -> str:
    if measurement.skipped:
        return f"n/a ({measurement.skipped})"
    if measurement.error:
        return f"failed: {measurement.error}"
    text = f"{measurement.msgs_per_s:,.0f} msg/s"
    if measurement.case.startswith("push_pull") or measurement.case.startswith("pub_sub"):
        text += f", {measurement.mb_per_s:,.1f} MB/s"
    if measurement.timed_out:
        return (
            f"failed: timed out at {measurement.completed:,}/{measurement.count:,} "
            f"({text} until then)"
        )
    if measurement.drops:
        text += f" ({measurement.drops:,} of {measurement.count:,} dropped)"
    return text


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def _stall(measurement: Measurement) -> str:
    if measurement.max_stall_ms is None:
        return "-"
    text = f"{measurement.max_stall_ms:.1f}"
    if measurement.peer_max_stall_ms is not None:
        text += f" (peer {measurement.peer_max_stall_ms:.1f})"
    return text


def _rss(measurement: Measurement) -> str:
    if _failed(measurement):
        return "-"
    worker = f"{measurement.rss_kb / 1024:.0f}"
    if measurement.peer_rss_kb is None:
        return f"{worker} (one process)"
    return f"{worker} / {measurement.peer_rss_kb / 1024:.0f}"


def markdownTable(measurements: Iterable[Measurement], notes: Sequence[str] = ()) -> str:
    """
    One row per implementation of each case, transport and mode, in the order measured;
    the case, transport and mode are written on the first row of each group only.

    :param notes: lines printed under the table (what was not measured, and why).
    """
    lines = ["| " + " | ".join(_COLUMNS) + " |", "|" + "---|" * len(_COLUMNS)]
    for (case, transport, mode), group in groupby(measurements, key=_key):
        for index, measurement in enumerate(group):
            ratio = "-" if measurement.ratio is None else f"{measurement.ratio:.2f}x"
            cells = [
                *((case, transport, mode) if index == 0 else ("", "", "")),
                NAMES.get(measurement.impl, measurement.impl),
                _figure(measurement),
                ratio,
                _number(measurement.p50_us),
                _number(measurement.p99_us),
                _stall(measurement),
                _rss(measurement),
            ]
            lines.append("| " + " | ".join(cells) + " |")
    if notes:
        lines.append("")
        lines.extend(notes)
    return "\n".join(lines)


def _ratioCell(measurement: Measurement | None) -> str:
    if measurement is None:
        return ""
    if measurement.skipped:
        return "n/a"
    if measurement.error or measurement.timed_out:
        return "failed"
    return "-" if measurement.ratio is None else f"{measurement.ratio:.2f}"


def ratioTable(measurements: Sequence[Measurement]) -> str:
    """
    One row per case, transport and mode: plain pyzmq's rate, then each other
    implementation's ratio to it (as :func:`withRatios` filled them in), in
    :data:`~txzmq2.bench.common.IMPLEMENTATIONS` order; only implementations measured.
    """
    present = {m.impl for m in measurements}
    others = [impl for impl in IMPLEMENTATIONS if impl in present and impl != BASELINE]
    columns = ["case", "transport", "mode", "plain pyzmq msg/s"]
    columns += [f"{NAMES.get(impl, impl)} / plain" for impl in others]
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for (case, transport, mode), group in groupby(measurements, key=_key):
        byImpl = {m.impl: m for m in group}
        baseline = byImpl.get(BASELINE)
        rate = "-" if baseline is None or _failed(baseline) else _number(baseline.msgs_per_s)
        cells = [case, transport, mode, rate, *(_ratioCell(byImpl.get(i)) for i in others)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def jsonLines(measurements: Iterable[Measurement]) -> str:
    """One JSON object per measurement (see :class:`~txzmq2.bench.common.Measurement`)."""
    return "\n".join(json.dumps(m.publicDict()) for m in measurements)


def plotLatencies(measurements: Sequence[Measurement], path: str) -> int:
    """
    Draw the latency distributions (box plots, log scale) of every request-reply row, each
    implementation side by side, into ``path``. Needs matplotlib (``txzmq2[bench]``).

    :return: how many rows were drawn (0 means nothing had latencies; no file is written).
    """
    import matplotlib  # type: ignore[import-not-found, unused-ignore]

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # type: ignore[import-not-found, unused-ignore]

    rows = [
        (key, list(group))
        for key, group in groupby(
            (m for m in measurements if m.latency_sample_us and not m.error), key=_key
        )
    ]
    if not rows:
        return 0
    figure, axes = plt.subplots(
        1, len(rows), figsize=(3.2 * len(rows), 4.5), squeeze=False, sharey=True
    )
    for axis, ((case, transport, mode), group) in zip(axes[0], rows, strict=True):
        axis.boxplot([m.latency_sample_us for m in group], whis=(1, 99), showfliers=False)
        axis.set_xticks(range(1, len(group) + 1), [NAMES.get(m.impl, m.impl) for m in group])
        axis.set_yscale("log")
        axis.set_title(f"{case}\n{transport}, {mode}", fontsize=9)
        axis.grid(True, axis="y", alpha=0.3)
    axes[0][0].set_ylabel("latency, µs (box: p25-p75, whiskers: p1-p99)")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return len(rows)

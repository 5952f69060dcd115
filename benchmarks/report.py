"""
Presenting measurements: the markdown table, JSON lines, and the latency plot.

A row of the table is one case on one transport in one mode; it puts txzmq2's figure next to
pyzmq's and gives their ratio (above 1: txzmq2 is faster).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from itertools import groupby

from benchmarks.common import Measurement

__all__ = ["jsonLines", "markdownTable", "plotLatencies", "withRatios"]

_COLUMNS = (
    "case",
    "transport",
    "mode",
    "txzmq2",
    "pyzmq",
    "ratio",
    "p50 µs (txzmq2 / pyzmq)",
    "p99 µs (txzmq2 / pyzmq)",
    "max stall ms",
    "RSS MiB (worker / peer)",
)


def _key(measurement: Measurement) -> tuple[str, str, str]:
    return measurement.case, measurement.transport, measurement.mode


def withRatios(measurements: Sequence[Measurement]) -> list[Measurement]:
    """Fill in each non-pyzmq measurement's ``ratio`` to pyzmq's rate for the same row."""
    baselines = {_key(m): m for m in measurements if m.impl == "pyzmq" and not m.error}
    for measurement in measurements:
        baseline = baselines.get(_key(measurement))
        if (
            measurement.impl != "pyzmq"
            and baseline is not None
            and baseline.msgs_per_s > 0
            and not measurement.error
        ):
            measurement.ratio = round(measurement.msgs_per_s / baseline.msgs_per_s, 3)
    return list(measurements)


def _figure(measurement: Measurement | None) -> str:
    if measurement is None:
        return "-"
    if measurement.error:
        return f"error: {measurement.error}"
    text = f"{measurement.msgs_per_s:,.0f} msg/s"
    if measurement.case.startswith("push_pull") or measurement.case.startswith("pub_sub"):
        text += f", {measurement.mb_per_s:,.1f} MB/s"
    if measurement.drops:
        text += f" ({measurement.drops:,} of {measurement.count:,} dropped)"
    if measurement.timed_out:
        text += f" (TIMED OUT at {measurement.completed:,}/{measurement.count:,})"
    return text


def _pair(first: float | None, second: float | None) -> str:
    if first is None and second is None:
        return "-"

    def show(value: float | None) -> str:
        return "-" if value is None else f"{value:,.0f}"

    return f"{show(first)} / {show(second)}"


def _stall(measurement: Measurement | None) -> str:
    if measurement is None or measurement.max_stall_ms is None:
        return "-"
    text = f"{measurement.max_stall_ms:.1f}"
    if measurement.peer_max_stall_ms is not None:
        text += f" (peer {measurement.peer_max_stall_ms:.1f})"
    return text


def _rss(measurement: Measurement | None) -> str:
    if measurement is None or measurement.error:
        return "-"
    worker = f"{measurement.rss_kb / 1024:.0f}"
    if measurement.peer_rss_kb is None:
        return f"{worker} (one process)"
    return f"{worker} / {measurement.peer_rss_kb / 1024:.0f}"


def markdownTable(measurements: Iterable[Measurement]) -> str:
    """One row per case, transport and mode, in the order they were measured."""
    lines = ["| " + " | ".join(_COLUMNS) + " |", "|" + "---|" * len(_COLUMNS)]
    for (case, transport, mode), group in groupby(measurements, key=_key):
        byImpl = {m.impl: m for m in group}
        ours, theirs = byImpl.get("txzmq2"), byImpl.get("pyzmq")
        ratio = "-" if ours is None or ours.ratio is None else f"{ours.ratio:.2f}x"
        cells = [
            case,
            transport,
            mode,
            _figure(ours),
            _figure(theirs),
            ratio,
            _pair(ours.p50_us if ours else None, theirs.p50_us if theirs else None),
            _pair(ours.p99_us if ours else None, theirs.p99_us if theirs else None),
            _stall(ours),
            _rss(ours),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def jsonLines(measurements: Iterable[Measurement]) -> str:
    """One JSON object per measurement (see :class:`~benchmarks.common.Measurement`)."""
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
        axis.set_xticks(range(1, len(group) + 1), [m.impl for m in group])
        axis.set_yscale("log")
        axis.set_title(f"{case}\n{transport}, {mode}", fontsize=9)
        axis.grid(True, axis="y", alpha=0.3)
    axes[0][0].set_ylabel("latency, µs (box: p25-p75, whiskers: p1-p99)")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return len(rows)

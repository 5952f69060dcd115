"""
Reactor stalls in tests: measuring what the code under test held the reactor thread for, and
holding it as application code that blocks would.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable
from typing import Any, TypeVar

from twisted.internet import reactor, task
from twisted.internet.defer import Deferred

T = TypeVar("T")

ANSWER_DELAY = 0.05
"""Seconds a peer of :func:`sendAsTheReactorStalls` waits before answering: longer than the
reactor takes to run what a send scheduled, shorter than the timeouts and stalls of tests."""


async def stallReactor(seconds: float, meanwhile: Callable[[], object] | None = None) -> None:
    """
    Hold the reactor thread for ``seconds`` (``time.sleep``), as application code that
    blocks would, and return once the reactor runs again (before it has looked at any
    descriptor).

    The stall runs as a thread call: Twisted's reactors run those first in a turn, then the
    timers that fell due, and only then look at descriptors. So a heartbeat timer due during
    the stall runs right after it, before the reactor has read anything the peers sent
    meanwhile: the worst case for a timer that judges peers by their silence.

    :param meanwhile: called on the reactor thread as the stall begins (a blocking peer's
        send, say), so that what it causes arrives while the reactor is held.
    """
    resumed: Deferred[None] = Deferred()

    def stall() -> None:
        if meanwhile is not None:
            meanwhile()
        time.sleep(seconds)
        reactor.callLater(0, resumed.callback, None)

    reactor.callFromThread(stall)
    await resumed


async def sendAsTheReactorStalls(send: Callable[[], T], seconds: float) -> T:
    """
    Call ``send()``, let the reactor run what the send scheduled (a read pass that finds
    nothing yet), then hold it for ``seconds`` (:func:`stallReactor`); return what ``send``
    returned once the reactor runs again.

    With a peer in another thread that answers after :data:`ANSWER_DELAY`, the answer
    arrives during the stall, and a timer the send started, due in the stall, runs before
    the reactor reads the answer: no read pass left over from before can read it first.
    """
    sent = send()
    await task.deferLater(reactor, 0, lambda: None)
    await stallReactor(seconds)
    return sent


class StallMeter:
    """
    Ticks every millisecond on the reactor; the longest gap between ticks is a stall.

    ``longest`` is wall time. ``longestCpu`` is the reactor thread's CPU time in the gap:
    what the code under test held the reactor for, whatever else the machine runs (a
    loaded machine deschedules the process, which stretches wall-time gaps but not this).
    Python's cyclic garbage collector stops the thread while it runs, and a full pass over
    a heap of a million live objects (100,000 pending requests) takes a good part of a
    second in any Python program: the application tunes that (``gc.freeze``, thresholds),
    not a library, so ``longestCpu`` leaves the collector's pauses out. docs/limits.md
    gives every figure.
    """

    def __init__(self) -> None:
        self.longest = 0.0
        self.longestCpu = 0.0
        self.ticks = 0
        self._gcCpu = 0.0
        self._gcStarted = 0.0
        self._gcAtLastTick = 0.0
        self._last = time.monotonic()
        self._lastCpu = time.thread_time()
        self._loop = task.LoopingCall(self._tick)
        self._loop.clock = reactor

    def _gc(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._gcStarted = time.thread_time()
        else:
            self._gcCpu += time.thread_time() - self._gcStarted

    def __enter__(self) -> StallMeter:
        gc.callbacks.append(self._gc)
        self._last, self._lastCpu = time.monotonic(), time.thread_time()
        self._loop.start(0.001)
        return self

    def _tick(self) -> None:
        self.ticks += 1
        now, cpu = time.monotonic(), time.thread_time()
        self.longest = max(self.longest, now - self._last)
        gcInGap = self._gcCpu - self._gcAtLastTick
        self.longestCpu = max(self.longestCpu, cpu - self._lastCpu - gcInGap)
        self._gcAtLastTick = self._gcCpu
        self._last, self._lastCpu = now, cpu

    def __exit__(self, *exc: object) -> None:
        self._tick()
        self._loop.stop()
        gc.callbacks.remove(self._gc)

    def __str__(self) -> str:
        return (
            f"longest stall {self.longestCpu * 1000:.1f} ms of CPU without the garbage "
            f"collector ({self.longest * 1000:.1f} ms of wall time, all included)"
        )

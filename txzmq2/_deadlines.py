"""
Deadlines of many items on one reactor timer, expiring in bounded batches.

Items with the same delay expire in the order they were added, so they are kept per delay in
an ``OrderedDict`` (a connection's requests mostly share one timeout): adding, cancelling and
expiring are O(1), the earliest deadline is at the head of one of a few groups, and nothing
of an ended item stays behind. Invariant: the timer is armed while any item is, no later
than the earliest deadline (or, while expiries wait for a socket to drain, a batch from now).

An owner that can still end items before they expire (a reply waiting in its socket after
application code held the reactor) passes ``beforeExpiry``: run once per firing that finds
something due, before anything expires. An expiry waits for it by at most
``_POSTPONE_SECONDS`` past the first firing that found the item due.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable
from time import monotonic
from typing import TYPE_CHECKING, Generic, TypeVar

if TYPE_CHECKING:
    from twisted.internet.base import DelayedCall

    from txzmq2._reactor import ReactorLike

__all__: list[str] = []

K = TypeVar("K", bound=Hashable)

# Seconds one batch of expiries may run before yielding to the reactor.
_BATCH_SECONDS = 0.005
_NEVER = float("inf")
# Seconds (reactor time) expiries may wait, past the first firing that found messages still
# unread after its read pass, for the socket to drain. Bounded, so that a flood that never
# lets it drain cannot keep a request alive: past it, expiries run whatever still waits.
_POSTPONE_SECONDS = 0.05


class _Deadlines(Generic[K]):
    """
    :param expire: called with each item's key when its deadline passes (the item is no
        longer here by then).
    :param beforeExpiry: called when the timer finds items due, before any expires: it may
        end some of them (``cancel``), and returns whether more that could end them waits
        unread (then the expiries wait for it, by at most ``_POSTPONE_SECONDS``).
    """

    def __init__(
        self,
        reactor: ReactorLike,
        expire: Callable[[K], None],
        beforeExpiry: Callable[[], bool] | None = None,
    ) -> None:
        self._reactor = reactor
        self._expire = expire
        self._beforeExpiry = beforeExpiry
        # While the socket has not drained since a firing postponed: when that ends.
        self._postponeUntil: float | None = None
        # delay -> {key: deadline}, each group in deadline order.
        self._groups: dict[float, OrderedDict[K, float]] = {}
        self._call: DelayedCall | None = None
        self._callAt = _NEVER

    def __len__(self) -> int:
        return sum(len(group) for group in self._groups.values())

    def add(self, key: K, delay: float) -> None:
        """Expire ``key`` in ``delay`` seconds (again, if it was already waiting)."""
        deadline = self._reactor.seconds() + delay
        group = self._groups.get(delay)
        if group is None:
            group = self._groups[delay] = OrderedDict()
        else:
            group.pop(key, None)  # a new deadline goes to the back of its group
        group[key] = deadline
        if deadline < self._callAt:
            self._arm(deadline)

    def cancel(self, key: K, delay: float) -> None:
        """``key`` will not expire (its item ended). O(1)."""
        group = self._groups.get(delay)
        if group is not None and group.pop(key, None) is not None and not group:
            del self._groups[delay]
            if not self._groups:
                self.stop()  # nothing left: no timer left behind

    def stop(self) -> None:
        """Forget every item and disarm the timer."""
        self._groups.clear()
        self._postponeUntil = None
        if self._call is not None and self._call.active():
            self._call.cancel()
        self._call = None
        self._callAt = _NEVER

    def _earliest(self) -> tuple[float, float]:
        """The earliest deadline and its group's delay (``inf`` when empty)."""
        best, bestDelay = _NEVER, 0.0
        for delay, group in self._groups.items():
            deadline = group[next(iter(group))]
            if deadline < best:
                best, bestDelay = deadline, delay
        return best, bestDelay

    def _arm(self, at: float) -> None:
        if self._call is not None and self._call.active():
            self._call.cancel()
        self._callAt = at
        self._call = self._reactor.callLater(max(0.0, at - self._reactor.seconds()), self._fire)

    def _fire(self) -> None:
        self._call = None
        self._callAt = _NEVER
        now = self._reactor.seconds()
        if self._beforeExpiry is not None and self._earliest()[0] <= now:
            # After a reactor stall this timer can run before the reactor has read the
            # replies that came in time: deliver them first (one read pass, which cancels
            # what it answers), then expire only what is still due.
            if self._beforeExpiry():
                if self._postponeUntil is None:
                    self._postponeUntil = now + _POSTPONE_SECONDS
                if now < self._postponeUntil and self._groups:
                    # More waits unread (the read budget ran out): the connection's own
                    # passes read on meanwhile; look again a batch later.
                    self._arm(now + _BATCH_SECONDS)
                    return
        # Many deadlines can fall due together (a burst of requests to a dead server):
        # expire them a batch at a time, so the reactor is never held for long.
        stop = monotonic() + _BATCH_SECONDS
        while self._groups:
            deadline, delay = self._earliest()
            if deadline > now:
                break
            group = self._groups[delay]
            key, _ = group.popitem(last=False)
            if not group:
                del self._groups[delay]
            self._expire(key)
            if monotonic() > stop:
                break
        # An expiry may have added a later deadline (a retry) and armed the timer for it.
        deadline, _ = self._earliest()
        if deadline > now:
            # Everything due has expired: the next due item may wait again.
            self._postponeUntil = None
        if deadline < self._callAt:
            self._arm(deadline)

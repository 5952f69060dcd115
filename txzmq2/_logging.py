"""
Warnings a peer can provoke once per message, rate-limited per connection.

A malformed message, a reply to a forgotten request, or a handler that fails on every
request each log a warning. Logged once per message, a peer sending thousands of them a
second would flood the log (and the disk behind it) as surely as it floods the socket. So
the loggers of everything that reads from the network are :class:`RateLimitedLogger`: each
source (a connection, a broker) may log the same warning (by format) a few times per
window; beyond that the warnings are counted, and the count is logged when the window ends
with the next warning of its kind.
"""

from __future__ import annotations

from time import monotonic
from typing import Any, cast
from weakref import WeakKeyDictionary

from twisted.logger import Logger, LogLevel

__all__ = ["RateLimitedLogger"]

_LIMITED = frozenset({LogLevel.warn, LogLevel.error, LogLevel.critical})


class _Window:
    """How many warnings of one kind one source logged, and held back, since ``start``."""

    __slots__ = ("logged", "start", "suppressed")

    def __init__(self, start: float) -> None:
        self.start = start
        self.logged = 0
        self.suppressed = 0


class RateLimitedLogger(Logger):
    """
    A :class:`twisted.logger.Logger` that lets each source log at most :attr:`burst`
    events of one kind at warning level and above per :attr:`window` seconds. The first
    event held back says so; the next one of its kind after the window says how many were
    held back. Debug and info events always go through.

    Declared as a class attribute like any ``Logger``; the count is kept per instance
    (weakly: it goes with the instance). An event's kind is its format string, or the
    ``limitKind`` keyword when one format carries many kinds (a bridge from another
    logging API); ``limitKind`` is not passed on. Windows are fixed, not sliding: around
    a window's end up to twice :attr:`burst` events can pass in quick succession. Time is
    ``time.monotonic``: a logger has no reactor.
    """

    burst: int = 10
    """Events of one format one source logs per window before the rest are held back."""
    window: float = 10.0
    """Seconds over which :attr:`burst` applies."""

    def __init__(
        self,
        namespace: str | None = None,
        source: object | None = None,
        observer: Any = None,
    ) -> None:
        if namespace is None:
            namespace = self._namespaceFromCallingContext()
        super().__init__(namespace, source, observer)
        self._windows: WeakKeyDictionary[Any, dict[object, _Window]]
        self._unboundWindows: dict[object, _Window]
        if source is None:
            # The declared logger owns the counts; the ones __get__ hands out (which always
            # have a source) share them.
            self._windows = WeakKeyDictionary()
            self._unboundWindows = {}

    def __get__(self, instance: object, owner: type | None = None) -> RateLimitedLogger:
        bound = cast(RateLimitedLogger, super().__get__(instance, owner))
        bound._windows = self._windows
        bound._unboundWindows = self._unboundWindows
        return bound

    def emit(self, level: LogLevel, format: str | None = None, **kwargs: object) -> None:
        kind = kwargs.pop("limitKind", format)
        windows = self._windowsOfSource() if level in _LIMITED else None
        if windows is None:
            super().emit(level, format, **kwargs)
            return
        now = monotonic()
        window = windows.get(kind)
        if window is None or now - window.start >= self.window:
            if window is not None and window.suppressed:
                super().emit(
                    LogLevel.warn,
                    "{log_source}: {count} more like this were not logged in the last"
                    " {seconds:.0f} s: {suppressedFormat}",
                    count=window.suppressed,
                    seconds=now - window.start,
                    suppressedFormat=kind,
                )
            window = windows[kind] = _Window(now)
        if window.logged < self.burst:
            window.logged += 1
            super().emit(level, format, **kwargs)
            return
        window.suppressed += 1
        if window.suppressed == 1:
            super().emit(
                LogLevel.warn,
                "{log_source}: logged {burst} times in {seconds:.1f} s; more like it are"
                " counted, not logged, until this {window:.0f} s window ends: {suppressedFormat}",
                burst=self.burst,
                seconds=now - window.start,
                window=self.window,
                suppressedFormat=kind,
            )

    def _windowsOfSource(self) -> dict[object, _Window] | None:
        """The per-format windows of this logger's source; ``None`` if it cannot have any."""
        source = self.source
        if source is None or isinstance(source, type):
            return self._unboundWindows
        try:
            windows = self._windows.get(source)
            if windows is None:
                windows = self._windows[source] = {}
        except TypeError:  # neither hashable nor weakly referenceable: not limited
            return None
        return windows

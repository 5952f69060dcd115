"""
What txzmq2 uses of a reactor, as a type: any Twisted reactor with ``IReactorFDSet``,
``IReactorTime``, ``IReactorCore`` and ``IReactorThreads`` has it (IOCP has no ``addReader``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol, cast

from twisted.internet.base import DelayedCall

if TYPE_CHECKING:
    from twisted.internet.interfaces import IReactorTime

__all__ = ["ReactorLike", "asReactorTime"]


class ReactorLike(Protocol):
    """The reactor methods txzmq2 calls (Twisted's interfaces are opaque to mypy)."""

    running: bool

    def callLater(
        self, delay: float, callable: Callable[..., Any], *args: Any, **kw: Any
    ) -> DelayedCall: ...

    def seconds(self) -> float: ...

    # Any: zope interfaces are opaque to mypy (a reader is an IReadDescriptor).
    def addReader(self, reader: Any) -> None: ...

    def removeReader(self, reader: Any) -> None: ...

    def callFromThread(self, callable: Callable[..., Any], *args: Any, **kw: Any) -> None: ...

    def addSystemEventTrigger(
        self, phase: str, eventType: str, callable: Callable[..., Any], *args: Any, **kw: Any
    ) -> Any: ...

    def removeSystemEventTrigger(self, triggerID: Any) -> None: ...

    def callWhenRunning(self, callable: Callable[..., Any], *args: Any, **kw: Any) -> Any: ...


def asReactorTime(reactor: ReactorLike) -> IReactorTime:
    """The same reactor, as the ``IReactorTime`` Twisted's own APIs are typed with
    (``Deferred.addTimeout``, ``LoopingCall.clock``): zope interfaces are opaque to mypy."""
    return cast("IReactorTime", reactor)

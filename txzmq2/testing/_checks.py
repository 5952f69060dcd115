"""What a test may not leave behind on its factory (shared by the pytest and trial helpers)."""

from __future__ import annotations

from txzmq2.factory import ZmqFactory
from txzmq2.reqrep import ZmqREQConnection

__all__ = ["leftovers"]


def leftovers(factory: ZmqFactory, openConnections: bool = True) -> str | None:
    """
    Describe what the test left: requests still pending and, if ``openConnections``,
    connections still open. ``None`` when it left nothing.
    """
    problems = []
    pending = {
        repr(connection): connection.pendingRequests
        for connection in factory.connections
        if isinstance(connection, ZmqREQConnection) and connection.pendingRequests
    }
    if pending:
        problems.append(f"test left requests pending: {pending}")
    if openConnections:
        stillOpen = sorted(repr(c) for c in factory.connections if not c.closed)
        if stillOpen:
            problems.append(
                f"test left connections open: {', '.join(stillOpen)} "
                "(shut down what the test opened before it ends)"
            )
    return "; ".join(problems) or None

"""
Reliable request-reply beyond one machine, from the Guide's chapter 4:

- :class:`BinaryStar`: a primary/backup server pair that fails over when the clients vote,
  never to two active servers.
- :class:`FreelanceClient` and :class:`FreelanceServer`: brokerless reliability over any
  number of servers (10/FLP framing: ``PING``/``PONG`` and a control frame per request).
- :class:`TitanicService` and :class:`TitanicClient`: requests stored in SQLite and answered
  later, across restarts of anything but the database (9/TSP over 7/MDP).

See ``docs/reliability.md`` for which to use against which failure.
"""

from __future__ import annotations

from txzmq2.ha.binarystar import BinaryStar, BinaryStarState
from txzmq2.ha.freelance import FreelanceClient, FreelanceServer
from txzmq2.ha.titanic import TitanicClient, TitanicService

__all__ = [
    "BinaryStar",
    "BinaryStarState",
    "FreelanceClient",
    "FreelanceServer",
    "TitanicClient",
    "TitanicService",
]

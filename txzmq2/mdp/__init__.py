"""
Majordomo: service-oriented request-reply through a broker, per 7/MDP (MDP 0.1) and the
8/MMI ``mmi.service`` lookup.

- :class:`MajordomoBroker`: one ROUTER socket for clients and workers; queues requests per
  service, heartbeats workers, forgets silent ones.
- :class:`MajordomoWorker`: registers a service, answers its requests with a handler
  (a plain function, one returning a Deferred, or a coroutine function), reconnects with
  backoff when the broker goes away.
- :class:`MajordomoClient`: ``request(service, *frames, timeout=None, retries=0)`` returns a
  Deferred of the reply frames; any number may be outstanding.

The frames are exactly the RFC's (``MDPC01``, ``MDPW01``, commands ``0x01``-``0x05``), so each
part works with any other MDP implementation. See ``docs/mdp.md``.
"""

from __future__ import annotations

from txzmq2.mdp.broker import MajordomoBroker
from txzmq2.mdp.client import MajordomoClient
from txzmq2.mdp.worker import MajordomoWorker

__all__ = ["MajordomoBroker", "MajordomoClient", "MajordomoWorker"]

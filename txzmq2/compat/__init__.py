"""
The names txZMQ programs import, in one place: the modules ``req_rep`` and
``router_dealer`` (importable as ``txzmq2.req_rep`` and ``txzmq2.router_dealer`` too, as
txZMQ's ``txzmq.req_rep`` and ``txzmq.router_dealer`` were). New code imports from
:mod:`txzmq2`.
"""

from __future__ import annotations

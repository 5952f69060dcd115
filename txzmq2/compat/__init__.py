"""
The names txZMQ programs import, in one place: the modules ``req_rep`` and
``router_dealer`` (importable as ``txzmq2.req_rep`` and ``txzmq2.router_dealer`` too, as
txZMQ's ``txzmq.req_rep`` and ``txzmq.router_dealer`` were), and txZMQ's ``txzmq.compat``
helpers here. New code imports from :mod:`txzmq2` and has no use for the helpers: txZMQ ran
on Python 2 and 3, txzmq2 on Python 3 only.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["PY3", "binary_string_type", "is_nonstr_iter"]

PY3 = True
"""Always true: txzmq2 runs on Python 3 only."""

binary_string_type = bytes
"""The type of a frame: ``bytes``."""


def is_nonstr_iter(v: object) -> bool:
    """
    Whether ``v`` is iterable but not a ``str`` or ``bytes`` (a multipart message rather
    than one frame), as txZMQ's helper of the same name answers.

    :param v: any object.
    """
    if isinstance(v, (str, bytes)):
        return False
    return isinstance(v, Iterable)

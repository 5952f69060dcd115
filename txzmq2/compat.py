"""
txZMQ's ``txzmq.compat`` names, for programs that import them.

txZMQ ran on Python 2 and 3 and exported these helpers; txzmq2 is Python 3 only, so they
are constants and one plain function. New code has no use for them.
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

"""
``@expose`` and the table of a service's exposed methods, each with what it takes to check
a call's arguments quickly.
"""

from __future__ import annotations

import inspect
import sys
from collections.abc import Callable
from typing import Any, TypeVar

from txzmq2._echo import describeError
from txzmq2.rpc._wire import BAD_ARGUMENTS, Refusal

__all__ = ["ExposedMethod", "expose", "exposedMethods"]

_F = TypeVar("_F", bound=Callable[..., Any])
_MARK = "__txzmq2_rpc_exposed__"


def expose(function: _F) -> _F:
    """
    Mark a method of a service as callable over RPC, under its own name. Nothing else is:
    a call to any other attribute is refused with ``NoSuchMethod``.

    The method may return a value, a Deferred of one, or be a coroutine function
    (``async def``). Put ``@expose`` above ``@staticmethod`` or ``@classmethod``, or below
    them: either order works.
    """
    setattr(function, _MARK, True)
    return function


def _isExposed(attribute: object) -> bool:
    function = getattr(attribute, "__func__", attribute)  # staticmethod, classmethod
    # `is True`: an object answering every getattr (a Mock) must not expose everything.
    return getattr(attribute, _MARK, None) is True or getattr(function, _MARK, None) is True


class ExposedMethod:
    """
    One exposed method, bound to its service, with its signature looked up once.

    Calls that pass only positional arguments, as many as the method takes, are the common
    case: they are checked by counting. Anything else is bound to the cached signature.
    """

    __slots__ = ("function", "name", "positionalMax", "positionalMin", "signature")

    def __init__(self, name: str, function: Callable[..., Any]) -> None:
        self.name = name
        self.function = function
        try:
            self.signature: inspect.Signature | None = inspect.signature(function)
        except (TypeError, ValueError):
            self.signature = None  # a builtin without metadata: the call itself checks
        self.positionalMin, self.positionalMax = _positionalRange(self.signature)

    def checkArguments(self, args: list[Any], kwargs: dict[str, Any]) -> None:
        """
        :raises Refusal: ``BadArguments`` when the arguments do not bind to the signature.
        """
        if not kwargs and self.positionalMin <= len(args) <= self.positionalMax:
            return
        if self.signature is None:
            return
        try:
            self.signature.bind(*args, **kwargs)
        except TypeError as error:
            # The message may quote a keyword argument name the peer chose, of any length.
            raise Refusal(BAD_ARGUMENTS, f"{self.name}(): {describeError(error)}") from None


def _positionalRange(signature: inspect.Signature | None) -> tuple[int, int]:
    """
    The numbers of positional arguments that bind for certain when no keyword arguments
    are given; an empty range when none can be known without binding.
    """
    if signature is None:
        return 1, 0
    required = allowed = 0
    for parameter in signature.parameters.values():
        kind = parameter.kind
        if kind in (parameter.POSITIONAL_ONLY, parameter.POSITIONAL_OR_KEYWORD):
            allowed += 1
            if parameter.default is parameter.empty:
                required = allowed
        elif kind == parameter.VAR_POSITIONAL:
            allowed = sys.maxsize
        elif kind == parameter.KEYWORD_ONLY and parameter.default is parameter.empty:
            return 1, 0  # a required keyword-only argument: positional ones never suffice
    return required, allowed


def exposedMethods(service: object) -> dict[str, ExposedMethod]:
    """
    The methods of ``service`` marked with :func:`expose`, by name.

    :raises ValueError: when ``service`` exposes nothing (most likely a forgotten
        ``@expose``).
    """
    methods = {}
    for name in dir(service):
        try:
            attribute = inspect.getattr_static(service, name)
        except AttributeError:
            continue
        if _isExposed(attribute):
            methods[name] = ExposedMethod(name, getattr(service, name))
    if not methods:
        raise ValueError(f"{service!r} has no method marked with @expose")
    return methods

"""
``@expose`` decides what is callable: marked methods, wherever they are defined, and nothing
else; argument checking follows each method's own signature.
"""

from __future__ import annotations

import functools
from typing import Any
from unittest import mock

import pytest

from txzmq2.rpc import expose
from txzmq2.rpc._methods import exposedMethods
from txzmq2.rpc._wire import Refusal


class Base:
    @expose
    def inherited(self) -> str:
        return "base"

    @expose
    def overridden(self) -> str:
        return "base"


class Service(Base):
    @expose
    @staticmethod
    def exposedStatic(x: int) -> int:
        return x

    @staticmethod
    @expose
    def staticExposed(x: int) -> int:
        return x

    @expose
    @classmethod
    def exposedClass(cls) -> str:
        return cls.__name__

    @classmethod
    @expose
    def classExposed(cls) -> str:
        return cls.__name__

    def overridden(self) -> str:  # no @expose here: no longer callable
        return "service"

    @property
    def broken(self) -> Any:
        raise AssertionError("properties are not read while looking for exposed methods")


def test_marked_methods_are_found_in_every_form_and_base_class():
    methods = exposedMethods(Service())
    assert sorted(methods) == [
        "classExposed",
        "exposedClass",
        "exposedStatic",
        "inherited",
        "staticExposed",
    ]
    assert methods["exposedClass"].function() == "Service"
    assert methods["staticExposed"].function(3) == 3
    assert methods["inherited"].function() == "base"


def test_an_object_answering_every_attribute_exposes_nothing():
    with pytest.raises(ValueError, match="no method marked with @expose"):
        exposedMethods(mock.Mock())


def test_a_wrapped_method_is_checked_against_the_wrapped_signature():
    def logged(function: Any) -> Any:
        @functools.wraps(function)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            return function(*args, **kwargs)

        return wrapper

    class Wrapped:
        @expose
        @logged
        def add(self, a: int, b: int) -> int:
            return a + b

    method = exposedMethods(Wrapped())["add"]
    method.checkArguments([1, 2], {})
    with pytest.raises(Refusal, match="missing a required argument: 'b'"):
        method.checkArguments([1], {})


class Flexible:
    @expose
    def call(self, a: int, b: int = 2, *rest: int, c: int = 3, **more: int) -> None:
        pass


class Strict:
    @expose
    def call(self, a: int, b: int = 2, *, c: int = 3) -> None:
        pass


@pytest.mark.parametrize(
    ("args", "kwargs", "flexible", "strict"),
    [
        ([1], {}, True, True),
        ([1, 2], {}, True, True),
        ([1, 2, 3, 4], {}, True, False),
        ([], {}, False, False),
        ([1], {"c": 3}, True, True),
        ([], {"a": 1, "b": 2}, True, True),
        ([1], {"d": 3}, True, False),
        ([1, 2], {"a": 1}, False, False),
    ],
)
def test_arguments_are_checked_against_the_signature(args, kwargs, flexible, strict):
    assert _binds(exposedMethods(Flexible())["call"], args, kwargs) is flexible
    assert _binds(exposedMethods(Strict())["call"], args, kwargs) is strict


def _binds(method: Any, args: list[Any], kwargs: dict[str, Any]) -> bool:
    try:
        method.checkArguments(args, kwargs)
    except Refusal as refusal:
        assert refusal.remoteType == "BadArguments"
        return False
    return True

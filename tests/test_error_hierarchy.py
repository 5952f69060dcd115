"""
Every exception txzmq2 defines is a ``ZmqError``, so ``except ZmqError`` catches all of
them; the one exception to that ends a ``twistd`` run and is named here.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import txzmq2
from txzmq2.errors import ZmqError, ZmqProtocolError

NOT_ZMQ_ERRORS = {
    # A SystemExit (and an Exception, for twistd's start-up handling): not for callers.
    "txzmq2.app.tap._StartFailed",
}


def _definedExceptions() -> dict[str, type[BaseException]]:
    found: dict[str, type[BaseException]] = {}
    for module in pkgutil.walk_packages(txzmq2.__path__, "txzmq2."):
        if module.name.endswith(".__main__") or module.name.startswith("txzmq2.bench.txzmq"):
            continue  # programs, not modules; txZMQ's cases need txZMQ and define no exception
        loaded = importlib.import_module(module.name)
        for _, value in inspect.getmembers(loaded, inspect.isclass):
            if issubclass(value, BaseException) and value.__module__ == module.name:
                found[f"{value.__module__}.{value.__qualname__}"] = value
    return found


def test_every_exception_txzmq2_defines_is_a_zmq_error() -> None:
    exceptions = _definedExceptions()
    assert len(exceptions) > 10
    outside = {name for name, cls in exceptions.items() if not issubclass(cls, ZmqError)}
    assert outside == NOT_ZMQ_ERRORS


def test_a_malformed_majordomo_command_is_a_protocol_error() -> None:
    from txzmq2.mdp._protocol import Malformed, parseClientMessage

    assert issubclass(Malformed, ZmqProtocolError)
    try:
        parseClientMessage([b"only one frame"])
    except ZmqProtocolError as error:
        assert "4 or more frames" in str(error)
    else:
        raise AssertionError("a one-frame MDP client message was accepted")

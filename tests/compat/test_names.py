"""
The names a txZMQ program imports or sets, as txzmq2 offers them: ``txzmq2.compat``'s
helpers, the endpoint names in ``txzmq2.connection``, the deprecated ``ZmqXREQConnection``
and ``ZmqXREPConnection``, and ``ZmqFactory.reactor`` assigned on an instance or a class.
"""

from __future__ import annotations

import importlib
import inspect
import pathlib
import re
from types import ModuleType
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.selectreactor import SelectReactor
from txzmq2.req_rep import ZmqXREPConnection, ZmqXREQConnection

import txzmq2.connection
from txzmq2 import ZmqEndpoint, ZmqEndpointType, ZmqFactory
from txzmq2.compat import PY3, binary_string_type, is_nonstr_iter


def test_compat_says_python_3_and_bytes():
    assert PY3 is True
    assert binary_string_type is bytes


@pytest.mark.parametrize(
    ("value", "expected"),
    [(b"frame", False), ("text", False), ([b"a", b"b"], True), ((b"a",), True), (7, False)],
)
def test_is_nonstr_iter_tells_a_multipart_message_from_one_frame(value, expected):
    assert is_nonstr_iter(value) is expected


def test_connection_module_exports_the_endpoint_names():
    assert {"ZmqEndpoint", "ZmqEndpointType"} <= set(txzmq2.connection.__all__)
    assert txzmq2.connection.ZmqEndpoint is ZmqEndpoint
    assert txzmq2.connection.ZmqEndpointType is ZmqEndpointType


class EchoXREP(ZmqXREPConnection):
    def gotMessage(self, messageId: bytes, *parts: bytes) -> None:
        self.reply(messageId, *parts)


@pytest_twisted.ensureDeferred
async def test_deprecated_xreq_and_xrep_warn_and_still_talk(zmq_factory, zmq_address):
    first, second = zmq_address("inproc"), zmq_address("ipc")
    with pytest.deprecated_call(match="ZmqXREPConnection"):
        server = EchoXREP(
            zmq_factory,
            ZmqEndpoint(ZmqEndpointType.bind, first),
            ZmqEndpoint(ZmqEndpointType.bind, second),
        )
    with pytest.deprecated_call(match="ZmqREQConnection or txzmq2.ZmqDealerConnection"):
        client = ZmqXREQConnection(zmq_factory, ZmqEndpoint(ZmqEndpointType.connect, second))
    assert [endpoint.address for endpoint in server.endpoints] == [first, second]
    assert await client.sendMsg(b"ping", timeout=10) == [b"ping"]
    client.shutdown()
    server.shutdown()


def test_factory_reactor_assigned_on_the_instance_is_its_reactor():
    clock = SelectReactor()
    factory = ZmqFactory()
    try:
        factory.reactor = clock
        assert factory.reactor is clock
    finally:
        factory.context.term()


def test_factory_reactor_defaults_to_the_global_reactor():
    factory = ZmqFactory()
    try:
        assert factory.reactor is reactor
        assert ZmqFactory.reactor is reactor
    finally:
        factory.context.term()


def test_factory_reactor_set_on_the_class_is_every_factorys_unless_one_was_given(monkeypatch):
    theirs, mine = SelectReactor(), SelectReactor()
    monkeypatch.setattr(ZmqFactory, "reactor", theirs)
    factories = [ZmqFactory(), ZmqFactory(reactor=mine)]
    try:
        assert [factory.reactor for factory in factories] == [theirs, mine]
    finally:
        for factory in factories:
            factory.context.term()


def test_factory_subclass_reactor_attribute_is_its_reactor():
    theirs: Any = SelectReactor()

    class Factory(ZmqFactory):
        reactor = theirs

    factory = Factory()
    try:
        assert factory.reactor is theirs
    finally:
        factory.context.term()


def test_factory_given_a_reactor_by_assignment_shuts_down_when_that_reactor_stops():
    other = SelectReactor()
    factory = ZmqFactory()
    factory.reactor = other
    factory.registerForShutdown()
    other.callWhenRunning(other.stop)
    other.run(installSignalHandlers=False)
    assert factory.shuttingDown
    assert factory.context.closed


# -- every public name of txZMQ: present in txzmq2, or in docs/migrating.md -------------------

_MODULES = [
    "",
    ".connection",
    ".factory",
    ".compat",
    ".pubsub",
    ".pushpull",
    ".req_rep",
    ".router_dealer",
]
_GUIDE = (pathlib.Path(__file__).parent.parent.parent / "docs" / "migrating.md").read_text()


def _isPublic(module: ModuleType, name: str, value: object) -> bool:
    """Whether ``name`` in txZMQ's ``module`` is its API, not a name it imported."""
    if name.startswith("_") or inspect.ismodule(value):
        return False
    if module.__name__ == "txzmq.compat" or name.isupper():
        return True  # PY3, binary_string_type (which is bytes), ZMQ3: constants
    defined = str(getattr(value, "__module__", ""))
    # Its own, or for the package, what it re-exports from its modules.
    return defined == module.__name__ or (module.__name__ == "txzmq" and defined[:6] == "txzmq.")


def _txzmqPublicNames() -> list[tuple[str, str]]:
    """(module suffix, dotted name) of every public name of txZMQ's modules and of the
    public attributes of its classes."""
    names = []
    for suffix in _MODULES:
        module = importlib.import_module("txzmq" + suffix)
        for name, value in vars(module).items():
            if not _isPublic(module, name, value):
                continue
            names.append((suffix, name))
            if inspect.isclass(value) and value.__module__ == module.__name__:
                names += [
                    (suffix, f"{name}.{attribute}")
                    for attribute in vars(value)
                    if not attribute.startswith("_")
                ]
    return names


def _presentInTxzmq2(suffix: str, dotted: str) -> bool:
    target: object = importlib.import_module("txzmq2" + suffix)
    for part in dotted.split("."):
        if not hasattr(target, part):
            return False
        target = getattr(target, part)
    return True


def _inGuide(name: str) -> bool:
    """Whether the migration guide names ``name`` in code (within backticks)."""
    return re.search(rf"`[^`]*\b{re.escape(name)}\b[^`]*`", _GUIDE) is not None


def test_every_public_txzmq_name_is_in_txzmq2_or_in_the_migration_guide():
    assert len(_txzmqPublicNames()) > 80  # txZMQ 1.0's API, as read from the installed package
    missing = [
        f"txzmq{suffix}.{dotted}"
        for suffix, dotted in _txzmqPublicNames()
        if not _presentInTxzmq2(suffix, dotted) and not _inGuide(dotted.rsplit(".", 1)[-1])
    ]
    assert missing == []

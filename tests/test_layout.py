"""
The package's layout as a contract: library layers flat in ``txzmq2``, applications in
``txzmq2.app``, txZMQ's module names in ``txzmq2.compat``, and every name importable before
a module moved still importable under it (the same object, not a copy).
"""

from __future__ import annotations

import importlib
import subprocess
import sys
import textwrap

import pytest

import txzmq2
from txzmq2.app import ZmqDeviceService, ZmqService
from txzmq2.app.service import ZmqService as ServiceModuleZmqService


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("txzmq2.req_rep", "txzmq2.compat.req_rep"),
        ("txzmq2.router_dealer", "txzmq2.compat.router_dealer"),
        ("txzmq2.cli", "txzmq2.app.cli"),
    ],
)
def test_a_moved_module_is_importable_under_its_old_name_as_the_same_module(
    old: str, new: str
) -> None:
    assert importlib.import_module(old) is importlib.import_module(new)


def test_txzmq_req_rep_names_are_the_library_classes() -> None:
    from txzmq2.req_rep import ZmqREPConnection, ZmqREQConnection, ZmqRequestTimeoutError

    assert (ZmqREPConnection, ZmqREQConnection, ZmqRequestTimeoutError) == (
        txzmq2.ZmqREPConnection,
        txzmq2.ZmqREQConnection,
        txzmq2.ZmqRequestTimeoutError,
    )


def test_txzmq_router_dealer_names_are_the_library_classes() -> None:
    from txzmq2.router_dealer import ZmqDealerConnection, ZmqRouterConnection

    assert (ZmqDealerConnection, ZmqRouterConnection) == (
        txzmq2.ZmqDealerConnection,
        txzmq2.ZmqRouterConnection,
    )


def test_an_unknown_submodule_still_fails_to_import() -> None:
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module("txzmq2.no_such_module")


def test_zmq_service_is_public_in_the_app_package() -> None:
    assert ZmqService is ServiceModuleZmqService
    assert issubclass(ZmqDeviceService, ZmqService)
    assert ZmqService.__doc__


def test_importing_the_library_does_not_import_the_application_package() -> None:
    source = textwrap.dedent(
        """
        import sys
        import txzmq2, txzmq2.mdp, txzmq2.rpc, txzmq2.testing
        loaded = sorted(name for name in sys.modules if name.startswith("txzmq2.app"))
        assert not loaded, loaded
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", source], capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0, result.stderr

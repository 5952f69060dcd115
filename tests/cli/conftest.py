"""Fixtures of the command-line tests: subprocesses that are always ended, a pyzmq context."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import IO, Any

import pytest
import zmq

from tests.cli.support import Process


@pytest.fixture
def launch() -> Iterator[Callable[..., Process]]:
    """Start a command in a subprocess (``launch(argv, stdin=...)``); killed after the test."""
    started: list[Process] = []

    def start(argv: list[str], stdin: bytes | IO[bytes] | None = None) -> Process:
        process = Process(argv, stdin)
        started.append(process)
        return process

    yield start
    for process in started:
        process.close()


@pytest.fixture
def context() -> Iterator[Any]:
    """A pyzmq context for blocking peers; their sockets (linger 0) close with it."""
    context = zmq.Context()
    yield context
    context.destroy(linger=0)

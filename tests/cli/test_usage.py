"""
``txzmq2 --help`` and each command's ``--help`` exit 0; a bad option, a malformed address
or an address libzmq refuses is one line on stderr and exit status 2, never a traceback.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli.support import assertUsageError, run

COMMANDS = [
    "demo",
    "broker",
    "lbbroker",
    "forwarder",
    "streamer",
    "req",
    "rep",
    "pub",
    "sub",
    "push",
    "pull",
    "keygen",
    "info",
]
"""Every command that has a ``--help`` of its own (``bench`` passes it to its suite)."""


@pytest.fixture
def portInUse() -> Iterator[int]:
    """A loopback TCP port something is listening on."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        yield listener.getsockname()[1]


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help_exiting_zero(command: str) -> None:
    result = run(command, "--help")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"usage: txzmq2 {command} ")
    assert result.stderr == ""


def test_top_level_help_lists_every_command() -> None:
    result = run("--help")
    assert result.returncode == 0, result.stderr
    listed = {line.split()[0] for line in result.stdout.splitlines() if line.startswith("    ")}
    assert {*COMMANDS, "bench"} <= listed


@pytest.mark.parametrize(
    "arguments",
    [
        ["frobnicate"],
        [],
        ["broker", "--frontend", "tcp://*:5559"],
        ["broker", "--frontend", "tcp://*:5559", "--backend", "tcp://*:5560", "--bogus"],
        [
            "lbbroker",
            "--frontend",
            "tcp://*:1",
            "--backend",
            "tcp://*:2",
            "--capture",
            "tcp://*:3",
        ],
        ["streamer", "--frontend", "tcp://*:1", "--backend", "tcp://*:2", "--linger", "-1"],
        ["req"],
        ["req", "--timeout", "soon", "tcp://127.0.0.1:5555"],
        ["rep", "--count", "0", "tcp://127.0.0.1:5555"],
        ["sub", "--separator", "", "tcp://127.0.0.1:5555"],
        ["pub", "--wait-subscriptions", "many", "tcp://127.0.0.1:5555"],
    ],
    ids=lambda arguments: " ".join(arguments) or "no command",
)
def test_bad_option_is_one_line_and_exit_2(arguments: list[str]) -> None:
    line = assertUsageError(run(*arguments))
    assert line.startswith("txzmq2")
    assert "error:" in line


@pytest.mark.parametrize(
    "arguments",
    [
        ["broker", "--frontend", "tpc://*:5559", "--backend", "tcp://*:5560"],
        ["forwarder", "--frontend", "tcp://*:5559", "--backend", "localhost:5560"],
        ["req", "127.0.0.1:5555"],
        ["sub", "tcp://127.0.0.1:5555", "nonsense"],
        ["push", ">"],
    ],
    ids=lambda arguments: " ".join(arguments),
)
def test_malformed_address_is_one_line_and_exit_2(arguments: list[str]) -> None:
    line = assertUsageError(run(*arguments))
    assert "endpoint address" in line


@pytest.mark.parametrize(
    ("command", "backend"),
    [("broker", "DEALER"), ("lbbroker", "ROUTER"), ("forwarder", "XPUB"), ("streamer", "PUSH")],
)
def test_device_address_in_use_is_one_line_and_exit_2(
    command: str, backend: str, portInUse: int
) -> None:
    address = f"tcp://127.0.0.1:{portInUse}"
    result = run(command, "--frontend", "tcp://127.0.0.1:*", "--backend", address)
    assert assertUsageError(result) == (
        f"txzmq2 {command}: error: cannot bind backend ({backend}) to {address}: "
        f"Address already in use (see txzmq2 {command} --help)"
    )


def test_one_liner_address_in_use_is_one_line_and_exit_2(portInUse: int) -> None:
    line = assertUsageError(run("rep", f"@tcp://127.0.0.1:{portInUse}"))
    assert f"cannot bind ROUTER to tcp://127.0.0.1:{portInUse}: Address already in use" in line


def test_connecting_to_a_wildcard_is_one_line_and_exit_2() -> None:
    line = assertUsageError(run("req", ">tcp://*:5555"))
    assert "cannot connect DEALER to tcp://*:5555" in line


def test_bench_hands_every_argument_to_the_benchmark_suite() -> None:
    result = run("bench", "--help")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: txzmq2 bench ")
    assert "--quick" in result.stdout


def test_mistyped_option_is_named_before_a_missing_required_one() -> None:
    line = assertUsageError(run("broker", "--frontnd", "tcp://*:5559", "--backend", "tcp://*:1"))
    assert line == (
        "txzmq2 broker: error: unrecognized option --frontnd (did you mean --frontend?) "
        "(see txzmq2 broker --help)"
    )


def test_unknown_option_of_a_command_names_that_command() -> None:
    line = assertUsageError(run("req", "--bogus", "tcp://127.0.0.1:5555"))
    assert line.startswith("txzmq2 req: error: unrecognized option --bogus")


def test_extra_argument_of_a_command_names_that_command(tmp_path: Path) -> None:
    line = assertUsageError(run("keygen", str(tmp_path), "server", "extra"))
    assert line == (
        "txzmq2 keygen: error: unrecognized arguments: extra (see txzmq2 keygen --help)"
    )
    assert not list(tmp_path.iterdir())


def test_unknown_option_before_the_command_is_named() -> None:
    line = assertUsageError(run("--bogus", "demo"))
    assert line.startswith("txzmq2: error: unrecognized option --bogus")


def test_option_value_starting_with_a_dash_is_left_to_the_option() -> None:
    line = assertUsageError(run("pub", "--separator", "-x", "tcp://127.0.0.1:5555"))
    assert "argument -s/--separator: expected one argument" in line


def test_abbreviated_option_still_works() -> None:
    result = run("demo", "--round", "1")
    assert result.returncode == 0, result.stderr

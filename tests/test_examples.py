"""
Every program in ``examples/`` runs as a user would run it, finishes by itself, exits 0 and
prints what its docstring promises.
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys

import pytest

from tests.examples import ROOT, TIMEOUT, exampleOutput, runExample

EXAMPLES = ROOT / "examples"

# Example file -> what its output must contain: a line (str) or a pattern with a count
# (regular expression, how many lines match it; None for "at least one").
Expectation = str | tuple[str, int | None]
EXPECTED: dict[str, list[Expectation]] = {
    "hello_server.py": [
        (r"^hello server: received b'Hello'$", 5),
        (r"^hello client: received reply \d: \[b'World'\]$", 5),
        "hello client: done, 5 replies",
    ],
    "hello_client.py": [
        (r"^hello client: started a hello server on tcp://127\.0\.0\.1:\d+$", 1),
        (r"^hello client: received reply \d: \[b'World'\]$", 5),
        "hello client: done, 5 replies",
    ],
    "rr_broker.py": [
        (r"^client \d: request \d -> World \(from worker \d\)$", 12),
        "all 3 clients got all 12 replies",
        (r"^worker \d answered \d+ requests$", None),
        "broker: forwarded 24 messages (requests and replies)",
    ],
    "lb_broker.py": [
        (r"^client \d: job \d -> OK from the (fast|medium|slow) worker$", 24),
        "all 4 clients got all 24 replies",
        (r"^fast worker \(5 ms a job\) handled \d+ jobs$", 1),
        (r"^slow worker \(60 ms a job\) handled \d+ jobs$", 1),
    ],
    "lazy_pirate.py": [
        "server: crashing, with request 4 unanswered",
        "supervisor: the server crashed; restarting it in 0.5 s",
        (r"^client: request 4 answered with 4 in [\d.]+ s \(after retries: .*\)$", 1),
        (r"^client: request \d answered with \d in ", 8),
        "client: all 8 requests answered; it recovered from the crash",
        (r"^client: no reply to 4 tries in [\d.]+ s; server seems to be offline, abandoning$", 1),
    ],
    "paranoid_pirate.py": [
        (r"^queue: worker w\d\.1 ready$", 3),
        "worker w3.1: freezing for good, with request",
        "queue: forgot worker w3.1 (expired: no heartbeat)",
        "queue: crashing; back in 1.0 s",
        (r"^worker w[12]\.\d: heartbeat failure, .*; reconnecting in 0\.1 s$", 2),
        (r"^worker w[12]\.\d: heartbeat failure, .*; reconnecting in 0\.2 s$", None),
        "queue: restarted on the same ports",
        (r"^client: request \d+ answered with \d+ in ", 12),
        "client: all 12 requests answered",
        (r"^queue: live workers: w1\.\d+, w2\.\d+ \(w3 stays frozen\)$", 1),
    ],
    "binary_star.py": [
        "primary: active",
        "backup: passive",
        "operator: stopping the primary",
        "backup: active",
        "primary: passive",
        (r"^client: request \d+ answered by the primary in ", 4),
        (r"^client: request \d+ answered by the backup in ", 6),
        "client: all 10 requests answered in",
        "the backup is active, the primary passive",
    ],
    "freelance.py": [
        (r"^client: request ([1-4]) answered by server one$", 4),
        "operator: stopping server one",
        (r"^client: request ([5-8]) answered by server two$", 4),
        "operator: stopping server two",
        (r"^client: request (9|1[0-2]) answered by server three$", 4),
        "client: all 12 requests answered (one 4, two 4, three 4)",
    ],
    "titanic.py": [
        (r"^client: submitted [0-9a-f]{32}$", 3),
        "client: reply to the first: None (pending)",
        "operator: restarting Titanic on the same database",
        (r"^client: reply to [0-9a-f]{8}\.\.\.: (ALPHA|BRAVO|CHARLIE)$", 3),
        "client: closed requests are forgotten",
        "client: all 3 requests answered across a restart",
    ],
    "async_consumer.py": [
        "producer: sent 10 jobs and END",
        (r"^consumer: finished job \d+$", 10),
        "consumer: done, 10 jobs",
    ],
    "stream_http.py": [
        (r"^server: listening on http://127\.0\.0\.1:\d+$", 1),
        "client: GET / -> 200 hello from a ZeroMQ STREAM socket",
        "client: GET /hello -> 200 hello from a ZeroMQ STREAM socket",
        "client: GET /missing -> 404 no such page",
    ],
    "async_client_server.py": [
        (r"^client-[abc]: sent 5 requests$", 3),
        (r"^client-[abc]: reply to request \d from worker \d$", 15),
        (r"^client-[abc]: all 5 replies, to requests [1-5]( [1-5]){4} in turn$", 3),
        "server: forwarded 30 messages",
    ],
}


def assertOutput(output: str, expected: list[Expectation]) -> None:
    lines = output.splitlines()
    for expectation in expected:
        if isinstance(expectation, str):
            assert any(expectation in line for line in lines), f"no line has {expectation!r}"
        else:
            pattern, count = expectation
            matching = [line for line in lines if re.search(pattern, line)]
            if count is None:
                assert matching, f"no line matches {pattern!r}"
            else:
                assert len(matching) == count, f"{len(matching)} lines match {pattern!r}"


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_example_runs_to_completion_and_prints_its_story(name: str) -> None:
    assertOutput("\n".join(exampleOutput(f"examples/{name}")), EXPECTED[name])


# Examples whose feature has a test directory of its own are run there.
RUN_ELSEWHERE = {
    # On every reactor, in a network namespace of its own, for each multicast transport.
    "multicast_ticker.py": "tests/core/test_transports.py",
    "websocket_echo.py": "tests/core/test_transports.py",
    "mdp_demo.py": "tests/mdp/test_example.py",
    "rpc_service.py": "tests/rpc/test_example.py",
    "secure_service.py": "tests/security/test_secure_example.py",
}


def test_every_example_is_run_by_a_test() -> None:
    assert {path.name for path in EXAMPLES.glob("*.py")} == set(EXPECTED) | set(RUN_ELSEWHERE)
    root = EXAMPLES.parent
    for name, testFile in RUN_ELSEWHERE.items():
        assert name in (root / testFile).read_text(), f"{testFile} does not run {name}"


def test_hello_server_and_client_talk_as_two_programs() -> None:
    server = subprocess.Popen(
        [sys.executable, "examples/hello_server.py", "tcp://127.0.0.1:*"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        listening = server.stdout.readline()
        found = re.fullmatch(r"hello server: listening on (tcp://127\.0\.0\.1:\d+)\n", listening)
        assert found, listening
        client = runExample("examples/hello_client.py", found.group(1))
        assert client.returncode == 0, client.stderr
        assertOutput(
            client.stdout,
            [(r"^hello client: received reply \d: \[b'World'\]$", 5), "done, 5 replies"],
        )
        # Ctrl-C stops the server cleanly.
        server.send_signal(signal.SIGINT)
        rest, errors = server.communicate(timeout=TIMEOUT)
        assert server.returncode == 0, errors
        assertOutput(rest, [(r"^hello server: received b'Hello'$", 5)])
    finally:
        if server.poll() is None:
            server.kill()
            server.communicate()

"""
``examples/rpc_service.py`` runs as a user would run it: it starts a queue and two worker
processes, makes its calls, stops the workers and exits 0, printing what its docstring
promises.
"""

from __future__ import annotations

import re

import pytest

from tests.examples import exampleOutput


@pytest.mark.timeout(90)
def test_rpc_service_example_runs_two_workers_and_a_client():
    lines = exampleOutput("examples/rpc_service.py", timeout=60)

    def matching(pattern: str) -> list[re.Match[str]]:
        return [found for line in lines if (found := re.fullmatch(pattern, line))]

    assert "queue: 2 workers connected" in lines
    assert len(matching(r"worker-[12]: serving add, divide, greet, log, slowSquare")) == 2
    sums = matching(r"client: add\((\d), \1\) = (\d+) \(by (worker-[12])\)")
    assert [int(found.group(2)) for found in sums] == [2, 4, 6, 8]
    assert {found.group(3) for found in sums} == {"worker-1", "worker-2"}
    for line in (
        "client: 4 quick calls answered while slowSquare(7) was still running",
        "client: slowSquare(7) = 49",
        "client: divide(1, 0) failed remotely: ZeroDivisionError: division by zero",
        "client: shutdownEverything() refused: NoSuchMethod: "
        "no exposed method 'shutdownEverything'",
        "client: slowSquare(3, seconds=2) gave up after its own timeout of 0.2 s",
        "client: done",
    ):
        assert line in lines, line
    assert len(matching(r"client: Hi, RPC! \(from worker-[12]\)")) == 1
    assert len(matching(r"worker-[12]: notified: hello from the client")) == 1
    served = matching(r"(worker-[12]): served (\d+) calls")
    assert sorted(found.group(1) for found in served) == ["worker-1", "worker-2"]
    # 4 + 1 + 4 + greet + divide + slowSquare(3) + notify + 2: the refused call runs nothing.
    assert sum(int(found.group(2)) for found in served) == 15

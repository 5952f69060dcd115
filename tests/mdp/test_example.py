"""
``examples/mdp_demo.py`` runs as the README says (one command), finishes by itself, and
prints the story its docstring tells, with correct answers.
"""

from __future__ import annotations

import re

import pytest

from tests.examples import exampleOutput


@pytest.mark.timeout(60)
def test_mdp_demo_answers_every_request_through_the_broker() -> None:
    lines = exampleOutput("examples/mdp_demo.py", timeout=50)
    assert re.fullmatch(r"broker: listening on tcp://127\.0\.0\.1:\d+", lines[0])
    assert "client: sent 12 requests to upper and 8 to add" in lines
    assert "workers: started 3 for upper, 2 for add" in lines

    uppers = [
        re.fullmatch(r"client: upper\('(\w+)'\) -> '(\w+)' from upper-[123]", line)
        for line in lines
    ]
    uppers = [found for found in uppers if found]
    assert len(uppers) == 12
    assert all(found[2] == found[1].upper() for found in uppers)

    sums = [
        re.fullmatch(r"client: add\((\d+), (\d+)\) -> (\d+) from add-[12]", line) for line in lines
    ]
    sums = [found for found in sums if found]
    assert len(sums) == 8
    assert all(int(found[3]) == int(found[1]) + int(found[2]) for found in sums)

    for answer in [
        "mmi.service upper -> 200",
        "mmi.service add -> 200",
        "mmi.service nope -> 404",
        "mmi.workers -> 501",
    ]:
        assert f"client: {answer}" in lines
    workers = [line for line in lines if re.fullmatch(r"worker \S+ handled \d+ requests?", line)]
    assert len(workers) == 5
    assert lines[-1] == "done: 20 requests answered by 5 workers of 2 services"

"""
Every code block in README.md and docs/ is run here, or marked as a fragment where it is.

How a block is marked, by the words after its opening fence:

- ```` ```python ````: a complete program; it must exit 0 (run from the repository root).
- ```` ```python test ````: a pytest module (as a user's project would have: the txzmq2 and
  pytest-twisted plugins); every test in it must pass.
- ```` ```python trial ````: a trial module; every test in it must pass.
- ```` ```LANGUAGE fragment ````: part of a program, a signature, a shell session, output:
  shown, not run here (a test elsewhere may run it in a context it sets up, as
  tests/rpc/test_wire_document.py does the RPC client). Any language other than Python is a
  fragment.

Sphinx directives (```` ```{toctree} ````) are not code blocks.
"""

from __future__ import annotations

import os
import pkgutil
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
RUNNERS = {"", "test", "trial"}
TIMEOUT = 60


@dataclass(frozen=True)
class Block:
    """One fenced code block: where it is, its language, its label and its text."""

    path: Path
    line: int
    language: str
    label: str
    code: str

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


_FENCE = re.compile(r"^(`{3,})(.*)$")


def _blocks(path: Path) -> list[Block]:
    blocks: list[Block] = []
    lines = path.read_text().splitlines()
    index = 0
    while index < len(lines):
        opening = _FENCE.match(lines[index])
        if opening is None:
            index += 1
            continue
        fence, info = opening.group(1), opening.group(2).strip()
        end = index + 1
        while end < len(lines) and lines[end].strip() != fence:
            end += 1
        if not info.startswith("{"):
            language, _, label = info.partition(" ")
            code = "\n".join(lines[index + 1 : end]) + "\n"
            blocks.append(Block(path, index + 1, language, label.strip(), code))
        index = end + 1
    return blocks


BLOCKS = [block for path in DOCUMENTS for block in _blocks(path)]


def _select(label: str) -> list[Block]:
    return [b for b in BLOCKS if b.language == "python" and b.label == label]


def test_every_code_block_is_run_or_marked_a_fragment() -> None:
    unmarked = [
        f"{block.where}: ```{block.language} {block.label}".rstrip()
        for block in BLOCKS
        if block.label != "fragment"
        and not (block.language == "python" and block.label in RUNNERS)
    ]
    assert unmarked == [], "label these blocks (see tests/test_docs.py)"


def test_the_documents_have_blocks_of_every_kind() -> None:
    assert len(_select("")) >= 5 and _select("test") and _select("trial")


@pytest.mark.timeout(TIMEOUT + 10)
@pytest.mark.parametrize("block", _select(""), ids=lambda block: block.where)
def test_documented_program_runs(block: Block) -> None:
    result = subprocess.run(
        [sys.executable, "-c", block.code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.timeout(TIMEOUT + 10)
@pytest.mark.parametrize("block", _select("test"), ids=lambda block: block.where)
def test_documented_pytest_module_passes(block: Block, tmp_path: Path) -> None:
    (tmp_path / "test_documented.py").write_text(block.code)
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_documented.py"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert " passed" in result.stdout and "failed" not in result.stdout


@pytest.mark.timeout(TIMEOUT + 10)
@pytest.mark.parametrize("block", _select("trial"), ids=lambda block: block.where)
def test_documented_trial_module_passes(block: Block, tmp_path: Path) -> None:
    (tmp_path / "documented_trial.py").write_text(block.code)
    environment = dict(os.environ, PYTHONPATH=str(tmp_path))
    result = subprocess.run(
        [sys.executable, "-m", "twisted.trial", "documented_trial"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        env=environment,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "PASSED" in result.stdout


def test_every_public_module_is_in_the_api_reference() -> None:
    import txzmq2

    documented = set(
        re.findall(
            r"^\.\. automodule:: (\S+)$", (ROOT / "docs" / "reference.md").read_text(), re.M
        )
    )
    public = {
        module.name
        for module in pkgutil.walk_packages(txzmq2.__path__, "txzmq2.")
        if not any(part.startswith("_") for part in module.name.split("."))
        and not module.name.startswith("txzmq2.bench.")  # tooling: its package is listed
    }
    assert public - documented == set(), "add these to docs/reference.md"

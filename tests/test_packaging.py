"""
What an installed txzmq2 tells about itself: its version (declared once), where its
documentation is, and what to install when the pytest plugin's dependency is missing.

The built distributions themselves (license inside, the sdist running the whole suite,
``twine check``) are checked by ``.ci/run``, which builds them.
"""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import txzmq2

ROOT = Path(__file__).resolve().parent.parent


def _pyproject() -> dict[str, object]:
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    with (ROOT / "pyproject.toml").open("rb") as file:
        return dict(tomllib.load(file))


def _projectURL(label: str) -> str:
    project = _pyproject()["project"]
    assert isinstance(project, dict)
    return str(project["urls"][label])


def _command(*arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "txzmq2", *arguments],
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_version_option_prints_the_package_version() -> None:
    result = _command("--version")
    assert result.returncode == 0, result.stderr
    # Then, in parentheses, what it runs on (txzmq2 info says more).
    assert result.stdout.startswith(f"txzmq2 {txzmq2.__version__} (pyzmq ")


def test_version_is_written_only_in_the_package() -> None:
    pyproject = _pyproject()
    project = pyproject["project"]
    assert isinstance(project, dict)
    assert "version" not in project and "version" in project["dynamic"]
    assert re.fullmatch(r"\d+\.\d+\.\d+(\.dev\d+|rc\d+)?", txzmq2.__version__)


def test_help_points_at_the_documentation_site() -> None:
    result = _command("--help")
    assert result.returncode == 0, result.stderr
    assert _projectURL("Documentation").rstrip("/") + "/cli.html" in " ".join(
        result.stdout.split()
    )


def test_readme_links_pages_by_address_not_by_relative_path() -> None:
    readme = (ROOT / "README.md").read_text()
    relative = re.findall(r"\]\((?!https?://|#)([^)]+)\)", readme)
    assert relative == []
    assert _projectURL("Repository") in readme
    assert _projectURL("Documentation") in readme


def test_license_is_declared_and_its_text_shipped() -> None:
    project = _pyproject()["project"]
    assert isinstance(project, dict)
    assert project["license"] == "MIT"
    assert project["license-files"] == ["LICENSE"]
    assert (ROOT / "LICENSE").read_text().startswith("MIT License")


def test_pytest_plugin_without_pytest_twisted_fails_in_one_line(tmp_path: Path) -> None:
    # pytest_twisted made unimportable, and its plugin not loaded: as for a project that
    # installed txzmq2 without the testing extra.
    (tmp_path / "conftest.py").write_text("import sys\nsys.modules['pytest_twisted'] = None\n")
    (tmp_path / "test_uses_factory.py").write_text(
        textwrap.dedent(
            """
            def test_needs_a_factory(zmq_factory):
                pass
            """
        )
    )
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:twisted", "-p", "no:cacheprovider", "-q"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stdout and "ModuleNotFoundError" not in result.stdout
    assert (
        "txzmq2's zmq_factory fixture needs pytest-twisted (it runs the reactor): "
        "pip install 'txzmq2[testing]'" in result.stdout
    )

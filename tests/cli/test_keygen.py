"""
``txzmq2 keygen DIRECTORY NAME``: a CURVE key pair as certificate files, as a user runs it.
"""

from __future__ import annotations

import stat
from pathlib import Path

import zmq

from tests.cli.support import assertUsageError, run
from txzmq2.auth import loadCertificate


def test_keygen_writes_a_matching_pair_and_prints_the_public_key(tmp_path: Path) -> None:
    result = run("keygen", str(tmp_path / "certs"), "server")
    assert result.returncode == 0, result.stderr
    public, secret = loadCertificate(tmp_path / "certs" / "server.key_secret")
    assert secret is not None and zmq.curve_public(secret) == public
    assert loadCertificate(tmp_path / "certs" / "server.key") == (public, None)
    assert f"public key: {public.decode()}" in result.stdout.splitlines()
    mode = (tmp_path / "certs" / "server.key_secret").stat().st_mode
    assert stat.S_IMODE(mode) == 0o600


def test_keygen_refuses_to_replace_a_pair_without_force(tmp_path: Path) -> None:
    assert run("keygen", str(tmp_path), "server").returncode == 0
    before = (tmp_path / "server.key_secret").read_bytes()
    line = assertUsageError(run("keygen", str(tmp_path), "server"), status=1)
    assert "exists" in line and "--force" in line
    assert (tmp_path / "server.key_secret").read_bytes() == before


def test_keygen_with_force_replaces_the_pair(tmp_path: Path) -> None:
    assert run("keygen", str(tmp_path), "server").returncode == 0
    before = loadCertificate(tmp_path / "server.key_secret")
    assert run("keygen", str(tmp_path), "server", "--force").returncode == 0
    assert loadCertificate(tmp_path / "server.key_secret") != before


def test_keygen_name_with_a_path_is_a_usage_error(tmp_path: Path) -> None:
    line = assertUsageError(run("keygen", str(tmp_path), "../escape"))
    assert "not a file name" in line
    assert not list(tmp_path.parent.glob("escape.key*"))


def test_keygen_into_an_unwritable_place_is_one_line_and_exit_1(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    line = assertUsageError(run("keygen", str(blocker / "certs"), "server"), status=1)
    assert line.startswith("txzmq2 keygen: error: cannot write to")


def test_keygen_pointed_at_a_file_says_it_is_not_a_directory(tmp_path: Path) -> None:
    target = tmp_path / "file"
    target.write_text("a file")
    line = assertUsageError(run("keygen", str(target), "server"), status=1)
    assert line == f"txzmq2 keygen: error: {target} is not a directory"

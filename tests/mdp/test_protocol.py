"""
The frame formats of 7/MDP, checked against the RFC text (the constants of
``tests.mdp.reference`` are typed in from it), and the parsers' verdicts on what is not one.
"""

from __future__ import annotations

import pytest

from tests.mdp import reference as rfc
from txzmq2.mdp import _protocol as mdp


def test_headers_and_command_bytes_are_the_rfcs():
    assert (mdp.CLIENT, mdp.WORKER) == (rfc.MDPC01, rfc.MDPW01)
    ours = [mdp.READY, mdp.REQUEST, mdp.REPLY, mdp.HEARTBEAT, mdp.DISCONNECT]
    assert ours == [rfc.READY, rfc.REQUEST, rfc.REPLY, rfc.HEARTBEAT, rfc.DISCONNECT]
    assert ours == [bytes([n]) for n in range(1, 6)]


def test_client_message_is_empty_frame_header_service_body():
    assert mdp.clientMessage(b"echo", [b"a", b"b"]) == [b"", b"MDPC01", b"echo", b"a", b"b"]
    assert mdp.parseClientMessage([b"", b"MDPC01", b"echo", b"a", b"b"]) == (
        b"echo",
        [b"a", b"b"],
    )


def test_worker_command_is_empty_frame_header_command_frames():
    assert mdp.workerCommand(mdp.READY, b"echo") == [b"", b"MDPW01", b"\x01", b"echo"]


@pytest.mark.parametrize(
    ("frames", "parsed"),
    [
        ([b"", b"MDPW01", b"\x01", b"echo"], (b"\x01", b"echo", b"", [])),
        ([b"", b"MDPW01", b"\x02", b"c", b"", b"x", b"y"], (b"\x02", b"", b"c", [b"x", b"y"])),
        ([b"", b"MDPW01", b"\x03", b"c", b"", b"x"], (b"\x03", b"", b"c", [b"x"])),
        ([b"", b"MDPW01", b"\x04"], (b"\x04", b"", b"", [])),
        ([b"", b"MDPW01", b"\x05"], (b"\x05", b"", b"", [])),
    ],
    ids=["READY", "REQUEST", "REPLY", "HEARTBEAT", "DISCONNECT"],
)
def test_each_worker_command_of_the_rfc_parses(frames, parsed):
    assert tuple(mdp.parseWorkerCommand(frames)) == parsed


@pytest.mark.parametrize(
    "frames",
    [
        [b"", b"MDPW01"],
        [b"x", b"MDPW01", b"\x04"],
        [b"", b"MDPC01", b"\x04"],
        [b"", b"MDPW01", b"\x06"],
        [b"", b"MDPW01", b""],
        [b"", b"MDPW01", b"\x01"],
        [b"", b"MDPW01", b"\x01", b""],
        [b"", b"MDPW01", b"\x01", b"echo", b"more"],
        [b"", b"MDPW01", b"\x02", b"c", b""],
        [b"", b"MDPW01", b"\x03", b"c", b"not empty", b"x"],
        [b"", b"MDPW01", b"\x04", b"extra"],
        [b"", b"MDPW01", b"\x05", b"extra"],
    ],
)
def test_what_is_not_a_worker_command_is_malformed(frames):
    with pytest.raises(mdp.Malformed):
        mdp.parseWorkerCommand(frames)


@pytest.mark.parametrize(
    "frames",
    [
        [b"", b"MDPC01", b"echo"],
        [b"", b"MDPC01", b"", b"x"],
        [b"x", b"MDPC01", b"echo", b"x"],
        [b"", b"MDPW01", b"echo", b"x"],
    ],
)
def test_what_is_not_a_client_message_is_malformed(frames):
    with pytest.raises(mdp.Malformed):
        mdp.parseClientMessage(frames)

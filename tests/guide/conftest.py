"""The Guide-pattern tests share the Majordomo tests' reference-peer fixtures."""

from tests.mdp.conftest import peerContext, runPeer

__all__ = ["peerContext", "runPeer"]

"""The pub/sub scenario under trial: ``python -m twisted.trial tests.scenarios.trial_pubsub``."""

from __future__ import annotations

from twisted.internet.defer import Deferred

from tests.scenarios.pubsub import EXPECTED, publishAfterSubscription
from txzmq2.testing import ZmqTestCase


class PubSubUnderTrial(ZmqTestCase):
    def test_subscriber_gets_what_is_published_after_subscription(self) -> Deferred[None]:
        async def run() -> None:
            received = await publishAfterSubscription(self.zmqFactory, self.zmqAddress)
            self.assertEqual(received, EXPECTED)

        return Deferred.fromCoroutine(run())

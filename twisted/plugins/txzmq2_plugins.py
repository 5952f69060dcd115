"""
The ``twistd`` plugins of txzmq2: each ZeroMQ device as a Twisted service.

    twistd -n txzmq2-broker --frontend tcp://*:5559 --backend tcp://*:5560

This module is imported by every ``twistd`` run that looks for plugins, so it imports
nothing of txzmq2 (nor ZeroMQ): ``ServiceMaker`` loads ``txzmq2.app.tap`` when a plugin is
used. (``twisted/`` and ``twisted/plugins/`` have no ``__init__.py`` on purpose: Twisted
finds plugin directories by that.)
"""

from twisted.application.service import ServiceMaker

txzmq2Broker = ServiceMaker(
    "txzmq2 broker",
    "txzmq2.app.tap.broker",
    "ZeroMQ request-reply broker (ROUTER frontend, DEALER backend)",
    "txzmq2-broker",
)
txzmq2LoadBalancingBroker = ServiceMaker(
    "txzmq2 lbbroker",
    "txzmq2.app.tap.lbbroker",
    "ZeroMQ load-balancing broker (each request to a ready worker)",
    "txzmq2-lbbroker",
)
txzmq2Forwarder = ServiceMaker(
    "txzmq2 forwarder",
    "txzmq2.app.tap.forwarder",
    "ZeroMQ pub-sub forwarder (XSUB frontend, XPUB backend)",
    "txzmq2-forwarder",
)
txzmq2Streamer = ServiceMaker(
    "txzmq2 streamer",
    "txzmq2.app.tap.streamer",
    "ZeroMQ pipeline streamer (PULL frontend, PUSH backend)",
    "txzmq2-streamer",
)

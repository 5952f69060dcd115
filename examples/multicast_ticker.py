"""
A multicast ticker: a PUB publishing price ticks over PGM multicast (``epgm://``), and a
SUB printing them.

Multicast addresses name an interface, a group and a port: ``epgm://IFACE;GROUP:PORT``
(epgm is PGM inside UDP; ``pgm://`` is raw PGM and needs root; ``norm://`` works the same
way). Every subscriber that joined the group on that network hears every tick; there is no
connection and no handshake, so the first ticks go out before anyone listens, and a
subscriber on the publisher's own host hears them only with ``allowLoopbackMulticast``.
``multicastRate`` caps the bandwidth (kbit/s). It needs a libzmq with pgm: the pyzmq
wheels' has none, Debian's ``libzmq3-dev`` has it (see docs/transports.md, ``txzmq2 info``).

By default it multicasts on the loopback interface, which must have multicast on. Keep the
traffic on this host with a network namespace of its own (as root)::

    unshare --net sh -c 'ip link set lo up && ip link set lo multicast on &&
        ip route add 224.0.0.0/4 dev lo && python examples/multicast_ticker.py'

Options: ``python examples/multicast_ticker.py [ADDRESS] [--ticks N] [--reactor NAME]``
(NAME: epoll, poll, select or asyncio). It exits once the SUB has heard N ticks (status 0),
or after 20 seconds without (status 1).
"""

from __future__ import annotations

import argparse
import importlib
import sys

REACTORS = {
    "epoll": "twisted.internet.epollreactor",
    "poll": "twisted.internet.pollreactor",
    "select": "twisted.internet.selectreactor",
    "asyncio": "twisted.internet.asyncioreactor",
}


def run(address: str, ticks: int) -> int:
    from twisted.internet import reactor
    from twisted.internet.task import LoopingCall

    from txzmq2 import ZmqEndpoint, ZmqFactory, ZmqPubConnection, ZmqSubConnection

    class Ticker(ZmqPubConnection):
        allowLoopbackMulticast = 1  # the SUB below is on this host
        multicastRate = 1000  # kbit/s

    heard: list[bytes] = []

    class Screen(ZmqSubConnection):
        allowLoopbackMulticast = 1

        def gotMessage(self, message: bytes, tag: bytes) -> None:
            heard.append(message)
            print(f"sub: {tag.decode()} {message.decode()}")
            if len(heard) == ticks:
                reactor.stop()

    factory = ZmqFactory(reactor, lingerPeriod=0)
    screen = Screen(factory, ZmqEndpoint("connect", address))
    screen.subscribe(b"ACME")
    ticker = Ticker(factory, ZmqEndpoint("connect", address))
    prices = iter(range(100, 10_000))

    def tick() -> None:
        ticker.publish(b"%d" % next(prices), b"ACME")

    publishing = LoopingCall(tick)
    publishing.clock = reactor
    publishing.start(0.05)
    print(f"pub: ticking on {address}")
    reactor.callLater(20, reactor.stop)
    reactor.run()
    factory.shutdown()
    print(f"sub: heard {len(heard)} ticks")
    return 0 if len(heard) >= ticks else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("address", nargs="?", default="epgm://127.0.0.1;239.192.1.1:5555")
    parser.add_argument("--ticks", type=int, default=5)
    parser.add_argument("--reactor", choices=sorted(REACTORS), default="epoll")
    args = parser.parse_args()
    importlib.import_module(REACTORS[args.reactor]).install()
    from txzmq2 import capabilities

    transport = args.address.split("://", 1)[0]
    if transport not in capabilities().transports:
        print(
            f"this libzmq ({capabilities().libzmq}) has no {transport} transport; "
            "see docs/transports.md for one that has",
            file=sys.stderr,
        )
        return 1
    return run(args.address, args.ticks)


if __name__ == "__main__":
    sys.exit(main())

"""
An ``async for`` consumer: a ``ZmqSocket`` read by a coroutine, one message at a time.

A PUSH connection sends ten jobs and an ``END`` marker; the consumer is a plain ``async def``
function iterating over a PULL ``ZmqSocket`` with ``async for``. It takes each job when it is
ready for it: jobs that arrive meanwhile wait in the socket's bounded buffer (and, beyond it,
in libzmq's queues and at the sender), so nothing is lost and nothing floods the consumer.
It stops at ``END`` by shutting the socket down, which ends the loop. Run it with::

    python examples/async_consumer.py
"""

from __future__ import annotations

import zmq
from twisted.internet.defer import Deferred
from twisted.internet.task import deferLater, react

from txzmq2 import ZmqEndpoint, ZmqEndpointType, ZmqFactory, ZmqPushConnection, ZmqSocket

JOBS = 10


async def consume(jobs: ZmqSocket) -> int:
    """Work through the jobs, slowly, until the END marker; return how many there were."""
    done = 0
    async for message in jobs:
        if message == [b"END"]:
            jobs.shutdown()  # ends the async for
            continue
        # A job takes a while; the next ones wait in the socket meanwhile.
        await deferLater(jobs.factory.reactor, 0.01, lambda: None)
        done += 1
        print(f"consumer: finished {message[0].decode()}")
    return done


async def main(reactor: object) -> None:
    factory = ZmqFactory(reactor)
    jobs = ZmqSocket(factory, zmq.PULL, ZmqEndpoint(ZmqEndpointType.bind, "tcp://127.0.0.1:*"))
    producer = ZmqPushConnection(factory, ZmqEndpoint(ZmqEndpointType.connect, jobs.lastEndpoint))
    consumer = Deferred.fromCoroutine(consume(jobs))
    for number in range(1, JOBS + 1):
        producer.push(b"job %d" % number)
    producer.push(b"END")
    print(f"producer: sent {JOBS} jobs and END")
    finished = await consumer
    print(f"consumer: done, {finished} jobs")
    await factory.shutdown()


if __name__ == "__main__":
    react(lambda reactor: Deferred.fromCoroutine(main(reactor)))

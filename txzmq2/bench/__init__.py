"""
The txzmq2 benchmark suite: txzmq2 against plain blocking pyzmq doing the same work, and
against txZMQ when it is installed (``pip install 'txzmq2[bench]'``).

Run it from a checkout with ``python -m txzmq2.bench`` (or ``txzmq2 bench``); ``--help`` lists
the options. Layout:

- ``txzmq2.bench.common``: the cases, a measurement's spec and result, the peer process.
- ``txzmq2.bench.cases``: the txzmq2 side of each case, on one reactor, and the loops
  every reactor-based implementation shares.
- ``txzmq2.bench.txzmq_cases``: the txZMQ side of the cases txZMQ can run (not RPC).
- ``txzmq2.bench.baseline``: the same work in blocking pyzmq, with two threads or processes.
- ``txzmq2.bench.worker``: one measurement per fresh process (own reactor, own peak RSS).
- ``txzmq2.bench.peer``: the far side of a measurement in a process of its own.
- ``txzmq2.bench.report``: the markdown table, JSON lines and latency plot.
- ``txzmq2.bench.runner``: the command line.
- ``txzmq2.bench.soak``: request-replies through a broker, checking memory and bookkeeping
  stay flat (``python -m txzmq2.bench.soak``).

Results on one machine, and the project's targets, are in the documentation's performance page.
"""

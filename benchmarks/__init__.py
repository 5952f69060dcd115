"""
The txzmq2 benchmark suite: txzmq2 against plain blocking pyzmq doing the same work, and
against txZMQ when it is installed (``pip install 'txzmq2[bench]'``).

Run it from a checkout with ``python -m benchmarks`` (or ``txzmq2 bench``); ``--help`` lists
the options. Layout:

- :mod:`benchmarks.common`: the cases, a measurement's spec and result, the peer process.
- :mod:`benchmarks.cases`: the txzmq2 side of each case, on one reactor, and the loops
  every reactor-based implementation shares.
- :mod:`benchmarks.txzmq_cases`: the txZMQ side of the cases txZMQ can run (not RPC).
- :mod:`benchmarks.baseline`: the same work in blocking pyzmq, with two threads or processes.
- :mod:`benchmarks.worker`: one measurement per fresh process (own reactor, own peak RSS).
- :mod:`benchmarks.peer`: the far side of a measurement in a process of its own.
- :mod:`benchmarks.report`: the markdown table, JSON lines and latency plot.
- :mod:`benchmarks.runner`: the command line.
- :mod:`benchmarks.soak`: request-replies through a broker, checking memory and bookkeeping
  stay flat (``python -m benchmarks.soak``).

Results on one machine, and the project's targets, are in ``docs/performance.md``.
"""

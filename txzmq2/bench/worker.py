"""
One measurement in a fresh process: ``python -m txzmq2.bench.worker SPEC``.

Prints the :class:`~txzmq2.bench.common.Measurement` as one JSON line on stdout (or
``{"error": ...}`` and exits 1). The runner starts one worker per measurement, so each gets a
reactor of its own and its own peak-RSS figure.
"""

from __future__ import annotations

import json
import sys
import traceback
from dataclasses import asdict

from txzmq2.bench.common import Spec, freezeStartupHeap

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    """Run the measurement described by the JSON :class:`~txzmq2.bench.common.Spec` in argv."""
    arguments = sys.argv[1:] if argv is None else argv
    spec = Spec.fromJson(arguments[0])
    try:
        if spec.impl in ("txzmq2", "txzmq2_pure"):
            from txzmq2.bench.cases import measure
        elif spec.impl == "txzmq":
            from txzmq2.bench.txzmq_cases import measure
        elif spec.impl in ("zmq_asyncio", "aiozmq"):
            from txzmq2.bench.asyncio_cases import measure
        else:
            from txzmq2.bench.baseline import measure
        freezeStartupHeap()
        result = measure(spec)
    except Exception as error:
        traceback.print_exc()
        print(json.dumps({"error": f"{type(error).__name__}: {error}"}), flush=True)
        return 1
    print(json.dumps(asdict(result)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

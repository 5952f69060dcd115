"""
Run the whole test suite on every reactor txzmq2 supports.

- the default reactor (epoll on Linux) and the asyncio reactor: every test;
- Twisted's poll and select reactors: the core tests (``tests/core``).

``--core`` runs only the core tests (which hold the transport and draft socket tests), on
all four reactors: what the extra CI environments with other libzmq builds run.
``--lean`` runs every test on the default reactor only: what CI runs on the second code path
(``TXZMQ2_PURE_PYTHON=1``, see txzmq2/_fastpath.py), whose difference from the first is in
the read and send primitives, not in how the reactor drives them.
Other arguments are passed to every pytest run (for example ``-x`` or ``-k name``).
Exits non-zero if any run fails.
"""

from __future__ import annotations

import subprocess
import sys
import time

RUNS = [
    ("default reactor (epoll)", ["tests"]),
    ("asyncio reactor", ["tests", "--reactor=asyncio"]),
    ("poll reactor, core tests", ["tests/core", "--reactor-impl=poll"]),
    ("select reactor, core tests", ["tests/core", "--reactor-impl=select"]),
]
CORE_RUNS = [
    ("default reactor (epoll), core tests", ["tests/core"]),
    ("asyncio reactor, core tests", ["tests/core", "--reactor=asyncio"]),
    *RUNS[2:],
]
LEAN_RUNS = [RUNS[0]]


def main(extra: list[str]) -> int:
    runs = RUNS
    for flag, selected in (("--core", CORE_RUNS), ("--lean", LEAN_RUNS)):
        if flag in extra:
            extra = [argument for argument in extra if argument != flag]
            runs = selected
    failed = []
    for title, arguments in runs:
        print(f"\n===== {title} =====", flush=True)
        started = time.monotonic()
        code = subprocess.call([sys.executable, "-m", "pytest", "-q", *arguments, *extra])
        print(f"===== {title}: exit {code} in {time.monotonic() - started:.0f} s", flush=True)
        if code != 0:
            failed.append(title)
    if failed:
        print(f"\nFAILED on: {', '.join(failed)}")
        return 1
    print("\nAll reactors passed.")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

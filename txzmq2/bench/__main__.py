"""``python -m txzmq2.bench``: run the benchmark suite (see :mod:`txzmq2.bench.runner`)."""

from __future__ import annotations

import sys

from txzmq2.bench.runner import main

sys.exit(main())

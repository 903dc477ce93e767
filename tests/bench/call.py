"""Call a benchmark function in a fresh process, optionally pinned to one core; print the result.

    python -m tests.bench.call '{"target": "tests.bench.bench_matching:run", "kwargs": {...},
                                 "one_core": true}'

Used for the matching and stories rows: they must run on one core, and bench_stories pins the
process it runs in, which must not be the harness's own.
"""

from __future__ import annotations

import importlib
import json
import os
import resource
import sys
import time
from typing import Any


def call(spec: dict[str, Any]) -> dict[str, Any]:
    module_name, _, function_name = spec["target"].partition(":")
    function = getattr(importlib.import_module(module_name), function_name)
    if spec.get("one_core") and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {max(os.sched_getaffinity(0))})
    started = time.perf_counter()
    value = function(*spec.get("args", []), **spec.get("kwargs", {}))
    return {
        "value": value,
        "wall_s": time.perf_counter() - started,
        "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    print(json.dumps(call(json.loads(args[0])), default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

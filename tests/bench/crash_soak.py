"""Crash soak: SIGKILL a real `watcher run` daemon N times while it polls and delivers, then check
the delivery guarantee (nothing lost, at most one repeat per crash, same key) and the database.

    .venv/bin/python tests/bench/crash_soak.py --kills 100 [--seed 1] [--feeds 6]

Every second kill lands while a webhook post is in flight (the receiver holds it, the daemon dies
before the answer: the documented repeat); the others at a random moment 0–2 s after start-up.
Prints one line per kill and the verdict; exits 1 when the guarantee is broken. tests/test_crash.py
runs the same rig with 5 kills.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `tests` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.hostile.crash import CrashRig


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--kills", type=int, default=50, help="how many SIGKILLs (default 50)")
    parser.add_argument("--seed", type=int, default=1, help="random seed (timing, items)")
    parser.add_argument("--feeds", type=int, default=6, help="feeds on the test site")
    args = parser.parse_args(argv)
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # the test site's request log
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="crash-soak-") as tmp:
        rig = CrashRig(Path(tmp), feeds=args.feeds, seed=args.seed)
        try:
            rig.prime()
            for n in range(args.kills):
                moment = rig.crash_round(mid_send=n % 2 == 1)
                print(f"kill {n + 1}/{args.kills}: {moment}", flush=True)
            rig.settle(timeout=180)
            report = rig.report()
        finally:
            rig.close()
    print(report.line())
    print(f"seed {args.seed}, {time.monotonic() - started:.0f} s")
    broken = [
        *(["integrity_check is not ok"] if report.integrity != "ok" else []),
        *([f"{len(report.lost)} items lost"] if report.lost else []),
        *([f"{len(report.undelivered)} matches undelivered"] if report.undelivered else []),
        *(["more repeats than kills"] if report.repeats > report.kills else []),
        *([f"{report.dead} deliveries dead"] if report.dead else []),
    ]
    for problem in broken:
        print(f"BROKEN: {problem}")
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())

"""`python -m tests.bench [--quick] [--only SCENARIO ...]`: every scenario against its baseline.

The full run (`make bench`) takes a few minutes and rewrites tests/bench/results.json and the
table in the README's Performance section; `--quick` uses small sizes for development and writes
results.json only. See tests/bench/README.md.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from tests.bench.report import RESULTS, machine, print_table, update_readme, write_results
from tests.bench.scenarios import FULL, QUICK, SCENARIOS, TINY, run_scenarios


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.bench", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--quick", action="store_true", help="small sizes, for development")
    parser.add_argument("--tiny", action="store_true", help=argparse.SUPPRESS)  # smoke test
    parser.add_argument(
        "--only", action="append", choices=SCENARIOS, metavar="SCENARIO",
        help=f"run only this scenario (repeatable): {', '.join(SCENARIOS)}",
    )  # fmt: skip
    parser.add_argument("--no-rss2email", action="store_true", help="skip the rss2email rows")
    parser.add_argument("--profile", type=Path, help="write a pyinstrument profile per pass here")
    parser.add_argument("--out", type=Path, default=RESULTS, help="results file (JSON)")
    parser.add_argument(
        "--readme", action=argparse.BooleanOptionalAction, default=None,
        help="update the README table (default: only after a full run of every scenario)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    sizes = TINY if args.tiny else QUICK if args.quick else FULL
    command = "python -m tests.bench" + "".join(
        f" {a}" for a in (sys.argv[1:] if argv is None else argv)
    )
    started = time.perf_counter()

    def log(message: str) -> None:
        print(f"[{time.perf_counter() - started:6.1f} s] {message}", file=sys.stderr, flush=True)

    rows, facts = run_scenarios(
        sizes,
        set(args.only) if args.only else None,
        rss2email=not args.no_rss2email,
        profile_dir=args.profile,
        log=log,
    )
    info = machine()
    facts["total_s"] = round(time.perf_counter() - started, 1)
    print_table(rows, facts, info)
    write_results(rows, facts, info, command, args.out)
    log(f"wrote {args.out}")
    full_run = sizes is FULL and not args.only
    if args.readme if args.readme is not None else full_run:
        if update_readme(rows, info, command):
            log("updated the README's Performance table")
        else:
            log("README has no bench table markers; not updated")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

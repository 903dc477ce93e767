"""SIGKILL at random moments while a real daemon polls and delivers; then restart and verify: no
match lost, no delivery beyond the one-repeat-per-crash guarantee (a repeat carries the same
Idempotency-Key), and `PRAGMA integrity_check` = ok. tests/bench/crash_soak.py runs more kills."""

from __future__ import annotations

import os

import pytest

from tests.hostile.crash import CrashRig

pytestmark = pytest.mark.slow
KILLS = 5


def test_sigkill_during_polling_and_delivery_loses_nothing(tmp_path):
    seed = int(os.environ.get("CRASH_SEED", "20261121"))
    rig = CrashRig(tmp_path, feeds=4, seed=seed)
    try:
        rig.prime()
        moments = [rig.crash_round(mid_send=(n % 2 == 1)) for n in range(KILLS)]
        rig.settle()
        report = rig.report()
    finally:
        rig.close()
    print(f"\nseed {seed}, kills at: {', '.join(moments)}\n{report.line()}")
    assert report.integrity == "ok"
    assert report.lost == [], "published items without a match"
    assert report.matches >= report.published
    assert report.undelivered == [], "matches that never reached the receiver"
    assert report.dead == 0
    assert report.received >= report.deliveries  # every delivery arrived at least once
    assert report.repeats <= report.kills, "more repeats than crashes"
    assert report.repeats >= 1, "the mid-send kills must have caused a repeat (same key)"

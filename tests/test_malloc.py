"""`watcher.malloc`: freed heap pages go back to the system (the daemon's resident size after a
pass follows what it still holds), checked in a fresh process on this machine's C library."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from watcher import malloc

FRAGMENT_AND_TRIM = """
import json, psutil
from watcher import malloc
rss = lambda: psutil.Process().memory_info().rss
blocks = [bytes(1000) * 2 for _ in range(100_000)]  # 200 MB from malloc itself (not pymalloc)
kept = blocks[::50]  # survivors spread over the whole heap: nothing is free at its top
del blocks
before = rss()
trimmed = malloc.trim()
print(json.dumps({"before": before, "after": rss(), "trimmed": trimmed, "kept": len(kept)}))
"""


@pytest.mark.skipif(malloc._libc() is None, reason="not glibc: trimming is a no-op here")
def test_trim_gives_freed_pages_back_to_the_system() -> None:
    done = subprocess.run(
        [sys.executable, "-c", FRAGMENT_AND_TRIM], capture_output=True, text=True, check=True
    )
    figures = json.loads(done.stdout)
    freed = figures["before"] - figures["after"]
    assert figures["trimmed"] is True
    assert freed > 100 * 2**20, figures  # most of the ~196 MB freed between the survivors


def test_without_glibc_both_calls_do_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(malloc, "_libc", lambda: None)
    assert malloc.trim() is False and malloc.tune() is False


LARGE_BLOCKS = """
import json, psutil, sys
from watcher import malloc
rss = lambda: psutil.Process().memory_info().rss
tuned = malloc.tune() if sys.argv[1] == "tuned" else None
first = b"x" * 200_000; del first  # glibc's own rule would now serve such blocks from the heap
blocks = [b"x" * 200_000 for _ in range(500)]  # 100 MB in blocks of 200 KB
kept = blocks[::10]
before = rss()
del blocks
print(json.dumps({"before": before, "after": rss(), "tuned": tuned, "kept": len(kept)}))
"""


def freed_without_trim(mode: str) -> dict[str, int]:
    done = subprocess.run(
        [sys.executable, "-c", LARGE_BLOCKS, mode], capture_output=True, text=True, check=True
    )
    return json.loads(done.stdout)


@pytest.mark.skipif(malloc._libc() is None, reason="not glibc: tuning is a no-op here")
def test_tuned_large_blocks_go_back_to_the_system_when_freed() -> None:
    figures = freed_without_trim("tuned")
    assert figures["tuned"] is True
    assert figures["before"] - figures["after"] > 60 * 2**20, figures  # ~90 MB freed at once

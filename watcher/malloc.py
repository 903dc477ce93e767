"""Handing freed heap memory back to the system, so the daemon's resident size follows its data.

CPython returns freed objects to the C allocator, and glibc's keeps the freed pages unless they lie
at the very top of its heap. Loading 10,000 rules (unpickled from the child process that parsed
them) left about 17 MB resident with nothing in them, and every pass leaves some more: long-lived
objects allocated in between pin the pages around them. `trim()` (glibc's `malloc_trim`) gives
those pages back; the daemon calls it after loading rules and after each poll. `limit_arenas()`
keeps threads (the event loop's resolver, the pool's manager) from each growing an arena of their
own. Elsewhere than glibc both do nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
from functools import cache
from typing import Any

log = logging.getLogger("watcher.malloc")
M_ARENA_MAX = -8  # mallopt parameter (malloc.h)
ARENAS = 2


@cache
def _libc() -> Any | None:
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
    except OSError:
        return None
    if libc is None or not hasattr(libc, "malloc_trim") or not hasattr(libc, "mallopt"):
        return None  # not glibc (musl, macOS)
    return libc


def limit_arenas(arenas: int = ARENAS) -> bool:
    """At most `arenas` malloc arenas for the whole process; call before threads start."""
    libc = _libc()
    return bool(libc is not None and libc.mallopt(M_ARENA_MAX, arenas))


def trim() -> bool:
    """Return free heap pages to the system; True when some were returned."""
    libc = _libc()
    return bool(libc is not None and libc.malloc_trim(0))

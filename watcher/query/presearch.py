"""The multi-pattern scan that turns an article into candidate sub-queries.

One Aho–Corasick automaton holds the anchors of every rule. ahocorasick-rs (Rust) is used when
installed: on Hangul/Kana/Han text pyahocorasick walks a root node with thousands of children for
every character and was measured 5× slower (see tests/bench/bench_matching.py); pyahocorasick is
the fallback. Either way the scan is overlapping, so every anchor that occurs is reported.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

try:  # pragma: no cover - which branch runs depends on the environment
    import ahocorasick_rs
except ImportError:  # pragma: no cover
    ahocorasick_rs = None

import ahocorasick


class Presearch:
    """Maps automaton keys to the sub-query numbers anchored on them."""

    def __init__(self, keyed: dict[str, list[int]], *, backend: str | None = None) -> None:
        self.keys = list(keyed)
        self.numbers = [tuple(keyed[key]) for key in self.keys]
        self.backend = backend or ("rust" if ahocorasick_rs is not None else "python")
        self._rust: Any = None
        self._python: Any = None
        if not self.keys:
            return
        if self.backend == "rust":
            self._rust = ahocorasick_rs.AhoCorasick(self.keys)
        else:
            automaton = ahocorasick.Automaton()
            for index, key in enumerate(self.keys):
                automaton.add_word(key, index)
            automaton.make_automaton()
            self._python = automaton

    def __len__(self) -> int:
        return len(self.keys)

    def scan(self, text: str) -> set[int]:
        """Numbers of the sub-queries whose anchors occur in `text`."""
        found: set[int] = set()
        numbers = self.numbers
        for index in self._hits(text):
            found.update(numbers[index])
        return found

    def _hits(self, text: str) -> Iterable[int]:
        if self._rust is not None:
            return {hit[0] for hit in self._rust.find_matches_as_indexes(text, overlapping=True)}
        if self._python is not None:
            return {index for _, index in self._python.iter(text)}
        return ()

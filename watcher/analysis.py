"""The CPU work on a new article's final text, run in the pool with the feed's other new articles.

Its story signature (with its LSH band keys) and content hash depend only on (title, text), so
the daemon's event loop, which also stores, clusters and matches, does not spend its time on them:
on a cold pass they were a third of the main process.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from watcher.identity import text_fingerprint
from watcher.story_index import with_band_keys
from watcher.story_signature import Signature, signature


@dataclass(frozen=True, slots=True)
class TextFacts:
    signature: Signature
    content_hash: str


def analyse(
    texts: Sequence[tuple[str, str]], hashes: Sequence[str | None] | None = None
) -> list[TextFacts]:
    """(title, text) pairs → their signature and content hash, in order. `hashes`: content
    hashes already known (an article of the feed's own text has its entry's fingerprint)."""
    known = hashes or [None] * len(texts)
    return [
        TextFacts(with_band_keys(signature(t, text)), content_hash or text_fingerprint(t, text))
        for (t, text), content_hash in zip(texts, known, strict=True)
    ]

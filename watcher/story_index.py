"""The in-memory story index: recent articles' signatures and a banded LSH over them.

Why not datasketch's MinHashLSH: it keeps a Python set per bucket, about 9.5 KB per article at the
32 bands a 0.3-Jaccard recall needs — about 1 GB for 100,000 articles (tests/bench/bench_stories.py
measures it). Here each band entry is a 32-bit key in a sorted numpy array (8 bytes with its slot),
queried with one `searchsorted`; new entries wait in a small dict and are merged in batches. A
32-bit key makes a chance bucket hit about 1 in 40,000 per band at 100,000 articles: a spurious
candidate the scoring then rejects. Signatures live in numpy slabs, so scoring
all candidates is one vectorised comparison (the same `overlap` the pair rule uses).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from functools import lru_cache

import numpy as np

from watcher.story_signature import (
    LEAD_PERM,
    MIN_LEAD,
    NUM_PERM,
    SHORT_HORIZON,
    Basis,
    Signature,
    overlap,
    overlap_rows,
    required,
)

BODY_BANDS = 32  # × 2 rows: a pair with Jaccard 0.3 is a candidate with p ≈ 0.95
LEAD_BANDS = 32  # a summary overlapping a lead by 0.75 can have Jaccard 0.27: p ≈ 0.91
BAND_ROWS = 2
MERGE_AT = 2048  # pending band entries (per article) merged into the sorted arrays in batches
SETTLE_AT = 64  # ... or sooner, before a batch lookup (`BandIndex.settle`)
_MIX = np.uint64(0x9E3779B97F4A7C15)
_NO_SLOTS = np.empty(0, dtype=np.int32)
_ARRAYS = (
    *("article_id", "story_id", "created", "title", "n_body", "n_lead", "long", "body", "lead"),
    "alive",
)


def _title_hash(key: str) -> int:
    """In-memory only (Python's str hash differs between processes); 0 means no title."""
    return (hash(key) or 1) if key else 0


def _fold(keys: np.ndarray) -> np.ndarray:
    """64-bit band hashes → 32-bit keys (multiply-shift: the high half mixes every input bit)."""
    return ((keys * _MIX) >> np.uint64(32)).astype(np.uint32)


@lru_cache(maxsize=8)
def _salts(bands: int, rows: int) -> np.ndarray:
    salts = np.random.default_rng(bands * 1000 + rows).integers(0, 2**63, bands, dtype=np.int64)
    return salts.astype(np.uint64)


def band_keys(sketch: np.ndarray, bands: int, rows: int = BAND_ROWS) -> np.ndarray:
    """The LSH keys of one MinHash: a pure function, so a CPU worker can compute them ahead."""
    values = sketch[: bands * rows].astype(np.uint64).reshape(bands, rows)
    acc = np.zeros(bands, dtype=np.uint64)
    for row in range(rows):
        acc = acc * _MIX + values[:, row]
    return _fold(acc ^ _salts(bands, rows))


def with_band_keys(sig: Signature) -> Signature:
    """`sig` carrying its band keys (what `StoryIndex.best` and `add` would compute)."""
    return replace(
        sig,
        body_keys=band_keys(sig.body, BODY_BANDS) if sig.is_long else None,
        lead_keys=band_keys(sig.lead, LEAD_BANDS) if sig.n_lead >= MIN_LEAD else None,
    )


class BandIndex:
    """LSH over fixed bands of a MinHash: which slots share at least one band with a query.

    New entries wait in dicts until MERGE_AT articles have come: `single` (key → slot) for the
    usual key no other article has, `multi` (key → slots) for the near-duplicates. Adding and
    looking up are whole-list set operations, not a Python step per band key (those steps were
    most of the story stage of a cold pass).
    """

    def __init__(self, bands: int, rows: int = BAND_ROWS) -> None:
        self.bands, self.rows = bands, rows
        self._salts = _salts(bands, rows)
        self._keys = np.empty(0, dtype=np.uint32)  # sorted
        self._slots = np.empty(0, dtype=np.int32)
        self._single: dict[int, int] = {}
        self._multi: dict[int, list[int]] = {}
        self._pending_count = 0
        self.generation = 0  # changes whenever the merged arrays do

    def band_keys(self, sketch: np.ndarray, keys: np.ndarray | None = None) -> np.ndarray:
        return band_keys(sketch, self.bands, self.rows) if keys is None else keys

    def add(self, slot: int, sketch: np.ndarray, keys: np.ndarray | None = None) -> None:
        listed = self.band_keys(sketch, keys).tolist()
        single, multi = self._single, self._multi
        if single.keys().isdisjoint(listed) and multi.keys().isdisjoint(listed):
            single.update(dict.fromkeys(listed, slot))
        else:
            for key in listed:
                if key in multi:
                    multi[key].append(slot)
                elif key in single:
                    multi[key] = [single.pop(key), slot]
                else:
                    single[key] = slot
        self._pending_count += 1
        if self._pending_count >= MERGE_AT:
            self._merge()

    def query(self, sketch: np.ndarray, keys: np.ndarray | None = None) -> np.ndarray:
        """Slots sharing a band with the sketch, sorted."""
        keys = self.band_keys(sketch, keys)
        lo = np.searchsorted(self._keys, keys, "left")
        hi = np.searchsorted(self._keys, keys, "right")
        hits = np.flatnonzero(hi != lo)
        found = [
            self._slots[a:b] for a, b in zip(lo[hits].tolist(), hi[hits].tolist(), strict=True)
        ]
        pending = self.pending(keys)
        if len(pending):
            found.append(pending)
        return np.unique(np.concatenate(found)) if found else _NO_SLOTS

    def pending(self, keys: np.ndarray) -> np.ndarray:
        """The slots not merged yet sharing a band key with `keys`, sorted. Their slots are all
        higher than the merged ones (slots only grow; a rebuild leaves nothing pending)."""
        if not self._pending_count:
            return _NO_SLOTS
        listed = keys.tolist()
        found = [self._single[key] for key in self._single.keys() & listed]
        for key in self._multi.keys() & listed:
            found += self._multi[key]
        return np.unique(np.array(found, dtype=np.int32)) if found else _NO_SLOTS

    def settle(self) -> None:
        """Merge the pending entries early when they are many for the merged ones' size: a
        batch lookup (`pairs`) then covers nearly everything and `pending` finds little. Each
        merge copies the arrays, so the smaller they are the sooner it pays."""
        merged = len(self._keys) // self.bands
        if self._pending_count >= max(SETTLE_AT, merged // 16):
            self._merge()

    def pairs(self, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(row, slot) for every merged slot sharing a band key with a row of `keys` (one
        sketch's keys per row), sorted by row then slot, each pair once: a whole batch's lookups
        in a handful of array operations. The keys are looked up in sorted order: the binary
        searches then walk nearby paths of arrays too big for the CPU cache."""
        flat = keys.ravel()
        order = np.argsort(flat)
        needles = flat[order]
        lo = np.searchsorted(self._keys, needles, "left")
        sizes = np.searchsorted(self._keys, needles, "right") - lo
        hit = np.flatnonzero(sizes)
        if not len(hit):
            return np.empty(0, dtype=np.int64), _NO_SLOTS
        sizes = sizes[hit]
        ends = np.cumsum(sizes)
        at = np.arange(int(ends[-1])) + np.repeat(lo[hit] - (ends - sizes), sizes)
        rows = np.repeat(order[hit] // self.bands, sizes).astype(np.int64)
        pairs = np.unique((rows << 32) | self._slots[at].astype(np.int64))
        return pairs >> 32, (pairs & 0xFFFFFFFF).astype(np.int32)

    def rebuild(self, slots: np.ndarray, sketches: np.ndarray) -> None:
        """Index exactly these slots (after loading or compacting the slab)."""
        self.generation += 1
        self._single, self._multi, self._pending_count = {}, {}, 0
        if len(slots) == 0:
            self._keys, self._slots = np.empty(0, dtype=np.uint32), np.empty(0, dtype=np.int32)
            return
        values = sketches[:, : self.bands * self.rows].astype(np.uint64)
        values = values.reshape(len(slots), self.bands, self.rows)
        acc = np.zeros((len(slots), self.bands), dtype=np.uint64)
        for row in range(self.rows):
            acc = acc * _MIX + values[:, :, row]
        keys = _fold(acc ^ self._salts).ravel()
        order = np.argsort(keys, kind="stable")
        self._keys = keys[order]
        self._slots = np.repeat(slots.astype(np.int32), self.bands)[order]

    def _merge(self) -> None:
        self.generation += 1
        single, multi = self._single, self._multi
        keys = np.fromiter(single.keys(), dtype=np.uint32, count=len(single))
        slots = np.fromiter(single.values(), dtype=np.int32, count=len(single))
        if multi:
            keys = np.concatenate(
                (keys, np.array([k for k, v in multi.items() for _ in v], dtype=np.uint32))
            )
            slots = np.concatenate(
                (slots, np.array([s for v in multi.values() for s in v], dtype=np.int32))
            )
        order = np.argsort(keys, kind="stable")
        at = np.searchsorted(self._keys, keys[order], "right")
        self._keys = np.insert(self._keys, at, keys[order])
        self._slots = np.insert(self._slots, at, slots[order])
        self._single, self._multi, self._pending_count = {}, {}, 0

    def nbytes(self) -> int:
        pending = self._pending_count * self.bands * 90  # dict entry + list + ints, roughly
        return int(self._keys.nbytes + self._slots.nbytes + pending)


Candidate = tuple[float, float, int, Basis]  # score, created (newest wins a tie), slot, basis


@dataclass(frozen=True, slots=True)
class Ahead:
    """One article's candidates among the merged entries (`StoryIndex.lookahead`)."""

    token: tuple[int, int, int]
    body: list[Candidate]
    lead: list[Candidate]


@dataclass(frozen=True, slots=True)
class Found:
    """The best earlier article for a new one."""

    article_id: int
    story_id: int
    score: float
    basis: Basis


class StoryIndex:
    """Signatures of the articles in the window, by slot, and the lookups a new article needs."""

    def __init__(self, window: timedelta, threshold: float, capacity: int = 1024) -> None:
        self.window, self.threshold = window, threshold
        self.article_id = np.zeros(capacity, dtype=np.int64)
        self.story_id = np.zeros(capacity, dtype=np.int64)
        self.created = np.zeros(capacity, dtype=np.float64)  # POSIX seconds
        self.title = np.zeros(capacity, dtype=np.int64)  # hash of the title key (0: none)
        self.n_body = np.zeros(capacity, dtype=np.int32)
        self.n_lead = np.zeros(capacity, dtype=np.int32)
        self.long = np.zeros(capacity, dtype=bool)
        self.body = np.zeros((capacity, NUM_PERM), dtype=np.uint32)
        self.lead = np.zeros((capacity, LEAD_PERM), dtype=np.uint32)
        self.alive = np.zeros(capacity, dtype=bool)
        self.size = 0  # slots used (alive or dead); new rows append
        self.slot_of: dict[int, int] = {}  # article id → slot
        self.by_title: dict[int, list[int]] = {}  # title hash → slots
        self.body_bands = BandIndex(BODY_BANDS)
        self.lead_bands = BandIndex(LEAD_BANDS)
        self._expired_until = float("-inf")
        self._removals = 0

    def __len__(self) -> int:
        return len(self.slot_of)

    def __contains__(self, article_id: int) -> bool:
        return article_id in self.slot_of

    # -- changes ----------------------------------------------------------------------------
    def add(self, article_id: int, story_id: int, created_at: datetime, sig: Signature) -> None:
        """Index an article (replacing its earlier signature, if any)."""
        self.remove(article_id)
        if self.size == len(self.alive):
            self._grow()
        slot, self.size = self.size, self.size + 1
        self._put(slot, article_id, story_id, created_at.timestamp(), sig)
        if sig.is_long:
            self.body_bands.add(slot, sig.body, sig.body_keys)
        if sig.n_lead >= MIN_LEAD:
            self.lead_bands.add(slot, sig.lead, sig.lead_keys)

    def add_many(self, rows: list[tuple[int, int, datetime, Signature]]) -> None:
        """Bulk load (at start): one sort per band index instead of many merges."""
        self._grow(self.size + len(rows) + len(rows) // 8)
        for article_id, story_id, created_at, sig in rows:
            self.remove(article_id)
            if self.size == len(self.alive):
                self._grow()
            slot, self.size = self.size, self.size + 1
            self._put(slot, article_id, story_id, created_at.timestamp(), sig)
        self._reindex()

    def remove(self, article_id: int) -> None:
        slot = self.slot_of.pop(article_id, None)
        if slot is None:
            return
        self._removals += 1
        self.alive[slot] = False
        key = int(self.title[slot])
        if key:
            slots = self.by_title[key]
            slots.remove(slot)
            if not slots:
                del self.by_title[key]
        if self.size - len(self.slot_of) >= max(4096, len(self.slot_of)):
            self._compact()

    def set_story(self, article_ids: Sequence[int], story_id: int) -> None:
        """Give indexed articles their story's real id (they were indexed under a placeholder)."""
        for article_id in article_ids:
            slot = self.slot_of.get(article_id)
            if slot is not None:
                self.story_id[slot] = story_id

    def remove_story(self, story_id: int) -> None:
        members = self.alive[: self.size] & (self.story_id[: self.size] == story_id)
        for slot in members.nonzero()[0].tolist():
            self.remove(int(self.article_id[slot]))

    def expire(self, now: datetime) -> int:
        """Forget articles older than the window; cheap to call often (scans once a minute)."""
        cutoff = (now - self.window).timestamp()
        if cutoff - self._expired_until < 60:
            return 0
        self._expired_until = cutoff
        old = np.nonzero(self.alive[: self.size] & (self.created[: self.size] < cutoff))[0]
        for slot in old.tolist():
            self.remove(int(self.article_id[slot]))
        return len(old)

    # -- lookup -----------------------------------------------------------------------------
    def lookahead(self, sigs: Sequence[Signature], created: Sequence[datetime]) -> list[Ahead]:
        """The candidates a batch of new articles (a feed's) has among the merged band entries,
        scored for the whole batch in a few array operations; `best` then only looks at entries
        added since (pending), such as the batch's own earlier articles. Per-article lookups
        were a few dozen small numpy calls each, most of the story stage of a cold pass."""
        self.body_bands.settle()
        self.lead_bands.settle()
        at = np.array([moment.timestamp() for moment in created])
        body = self._batch_candidates(sigs, at, Basis.BODY)
        lead = self._batch_candidates(sigs, at, Basis.LEAD)
        token = self._token()
        return [Ahead(token, body.get(i, []), lead.get(i, [])) for i in range(len(sigs))]

    def best(
        self, sig: Signature, created_at: datetime, ahead: Ahead | None = None
    ) -> Found | None:
        """The most similar article whose story `sig` joins (the rule of `joins`, vectorised).
        `ahead`: this signature's entry of `lookahead`, used unless the merged entries changed
        since (a merge, a removal)."""
        at, short = created_at.timestamp(), min(self.window, SHORT_HORIZON)
        if ahead is not None and ahead.token != self._token():
            ahead = None
        found: list[Candidate] = []
        if sig.is_long:  # long against long: bodies
            hits = self._hits(self.body_bands, sig.body, sig.body_keys, ahead and ahead.body, found)
            slots = self._usable(hits, at, self.window)
            slots = slots[self.long[slots]]
            if len(slots):  # most articles have no candidate: skip the scoring
                scores = overlap(sig.body, sig.n_body, self.body[slots], self.n_body[slots])
                found += self._passing(slots, scores, Basis.BODY)
        if sig.n_lead >= MIN_LEAD:  # a summary on either side: leads
            hits = self._hits(self.lead_bands, sig.lead, sig.lead_keys, ahead and ahead.lead, found)
            slots = self._usable(hits, at, short)
            slots = slots[self.n_lead[slots] >= MIN_LEAD]
            if sig.is_long:
                slots = slots[~self.long[slots]]
            if len(slots):
                scores = overlap(sig.lead, sig.n_lead, self.lead[slots], self.n_lead[slots])
                found += self._passing(slots, scores, Basis.LEAD)
        if _title_hash(sig.title_key) in self.by_title:  # too little text: headlines
            slots = self._usable(np.array(self.by_title[_title_hash(sig.title_key)]), at, short)
            if sig.n_lead >= MIN_LEAD:
                slots = slots[self.n_lead[slots] < MIN_LEAD]
            found += self._passing(slots, np.ones(len(slots)), Basis.TITLE)
        if not found:
            return None
        score, _, slot, basis = max(found, key=lambda item: (item[0], item[1]))
        return Found(int(self.article_id[slot]), int(self.story_id[slot]), score, basis)

    @staticmethod
    def _hits(
        bands: BandIndex,
        sketch: np.ndarray,
        keys: np.ndarray | None,
        ahead: list[Candidate] | None,
        found: list[Candidate],
    ) -> np.ndarray:
        """The slots left to score: all band hits, or with a lookahead (whose candidates join
        `found`) only the entries pending since."""
        if ahead is None:
            return bands.query(sketch, keys)
        found += ahead
        return bands.pending(bands.band_keys(sketch, keys))

    def _batch_candidates(
        self, sigs: Sequence[Signature], at: np.ndarray, basis: Basis
    ) -> dict[int, list[Candidate]]:
        """`best`'s body or lead candidates among the merged entries, for many signatures:
        the same filters and scores, on (signature, slot) pairs."""
        body = basis is Basis.BODY
        bands = self.body_bands if body else self.lead_bands
        rows = [
            i for i, sig in enumerate(sigs) if (sig.is_long if body else sig.n_lead >= MIN_LEAD)
        ]
        if not rows:
            return {}
        sketches = np.stack([sigs[i].body if body else sigs[i].lead for i in rows])
        keys = [sigs[i].body_keys if body else sigs[i].lead_keys for i in rows]
        row, slots = bands.pairs(
            np.stack([bands.band_keys(sketch, k) for sketch, k in zip(sketches, keys, strict=True)])
        )
        owner = np.array(rows, dtype=np.int64)[row]
        horizon = self.window if body else min(self.window, SHORT_HORIZON)
        keep = self.alive[slots] & (
            np.abs(self.created[slots] - at[owner]) <= horizon.total_seconds()
        )
        if body:
            keep &= self.long[slots]
        else:
            keep &= self.n_lead[slots] >= MIN_LEAD
            keep &= ~(self.long[slots] & np.array([sig.is_long for sig in sigs])[owner])
        row, owner, slots = row[keep], owner[keep], slots[keep]
        if not len(slots):
            return {}
        sizes = np.array([sig.n_body if body else sig.n_lead for sig in sigs])
        scores = overlap_rows(
            sketches[row],
            sizes[owner],
            (self.body if body else self.lead)[slots],
            (self.n_body if body else self.n_lead)[slots],
        )
        passing = scores >= required(basis, self.threshold)
        found: dict[int, list[Candidate]] = {}
        for i, slot, score, created in zip(
            owner[passing].tolist(),
            slots[passing].tolist(),
            scores[passing].tolist(),
            self.created[slots[passing]].tolist(),
            strict=True,
        ):
            found.setdefault(i, []).append((score, created, slot, basis))
        return found

    def _token(self) -> tuple[int, int, int]:
        """Changes whenever a `lookahead` may no longer hold: merged entries added or removed."""
        return self.body_bands.generation, self.lead_bands.generation, self._removals

    def _usable(self, slots: np.ndarray, at: float, horizon: timedelta) -> np.ndarray:
        if not len(slots):
            return slots
        slots = slots[self.alive[slots]]
        return slots[np.abs(self.created[slots] - at) <= horizon.total_seconds()]

    def _passing(self, slots: np.ndarray, scores: np.ndarray, basis: Basis) -> list[Candidate]:
        keep = scores >= required(basis, self.threshold)
        return [
            (float(score), float(self.created[slot]), int(slot), basis)
            for slot, score in zip(slots[keep].tolist(), scores[keep].tolist(), strict=True)
        ]

    # -- storage ----------------------------------------------------------------------------
    def _put(self, slot: int, article_id: int, story_id: int, at: float, sig: Signature) -> None:
        self.article_id[slot], self.story_id[slot], self.created[slot] = article_id, story_id, at
        self.n_body[slot], self.n_lead[slot], self.long[slot] = sig.n_body, sig.n_lead, sig.is_long
        self.body[slot], self.lead[slot] = sig.body, sig.lead
        self.alive[slot] = True
        self.slot_of[article_id] = slot
        self.title[slot] = key = _title_hash(sig.title_key)
        if key:
            self.by_title.setdefault(key, []).append(slot)

    def _grow(self, capacity: int = 0) -> None:
        if capacity <= len(self.alive) and capacity:
            return
        capacity = capacity or len(self.alive) + len(self.alive) // 2 + 1024
        for name in _ARRAYS:
            old = getattr(self, name)
            new = np.zeros((capacity, *old.shape[1:]), dtype=old.dtype)
            new[: len(old)] = old
            setattr(self, name, new)

    def _compact(self) -> None:
        live = np.nonzero(self.alive[: self.size])[0]
        remap = {int(old): new for new, old in enumerate(live.tolist())}
        for name in _ARRAYS:
            array = getattr(self, name)
            array[: len(live)] = array[live]
            array[len(live) :] = 0
        self.size = len(live)
        self.slot_of = {article: remap[slot] for article, slot in self.slot_of.items()}
        self.by_title = {}
        for slot, key in enumerate(self.title[: self.size].tolist()):
            if key:
                self.by_title.setdefault(key, []).append(slot)
        self._reindex()

    def _reindex(self) -> None:
        slots = np.nonzero(self.alive[: self.size])[0]
        long = slots[self.long[slots]]
        self.body_bands.rebuild(long, self.body[long])
        leads = slots[self.n_lead[slots] >= MIN_LEAD]
        self.lead_bands.rebuild(leads, self.lead[leads])

    def nbytes(self) -> int:
        """Memory of the arrays and band indexes (the dicts by article and title come on top)."""
        return sum(getattr(self, name).nbytes for name in _ARRAYS) + (
            self.body_bands.nbytes() + self.lead_bands.nbytes()
        )

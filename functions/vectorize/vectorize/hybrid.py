"""Hybrid search: BM25 over the chunks' texts beside the dense vectors, fused by reciprocal rank fusion.

``BM25`` is Okapi BM25 (k1 = 1.2, b = 0.75, Lucene's idf, which never goes negative) over lowercase word
tokens, English stop words dropped and plurals folded (``volcanoes`` -> ``volcano``). ``rrf`` fuses rankings
by summing ``1 / (k + rank)`` (k = 60, ranks from 1) over the rankings a key appears in.

``LexicalIndexes`` keeps one BM25 index per collection in the store's process: built from the collection's
rows on its first hybrid search (a Milvus query iterator, 1000 rows at a time), then kept current by the
store's writes and deletes. A write that lands while an index is being built is applied once the build
ends, so the index never misses a flushed row. With *max_age_s* (several store replicas, each seeing only
its own writes), an older index is rebuilt by the next search while the others go on with the old one.
"""

from __future__ import annotations

import math
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from typing import Any

RRF_K = 60
_WORD = re.compile(r"[0-9a-z]+")
STOP_WORDS = frozenset({"a", "an", "and", "are", "as", "at", "be", "been", "but", "by", "can", "do", "does", "for",
    "from", "had", "has", "have", "how", "i", "if", "in", "into", "is", "it", "its", "of", "on", "or", "so", "such",
    "than", "that", "the", "their", "them", "then", "there", "these", "they", "this", "those", "to", "was", "we",
    "were", "what", "when", "where", "which", "while", "who", "why", "will", "with", "would", "you", "your"})


def stem(word: str) -> str:
    """Folds the common English plural endings: ``eruptions`` -> ``eruption``, ``bodies`` -> ``body``."""
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 4 and word.endswith(("ches", "shes", "sses", "xes", "zes")):
        return word[:-2]
    if len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


def tokens(text: str) -> list[str]:
    return [stem(word) for word in _WORD.findall(text.lower()) if word not in STOP_WORDS]


class BM25:
    """An in-memory Okapi BM25 index of texts by key; ``add`` replaces a key's text."""

    def __init__(self, k1: float = 1.2, b: float = 0.75) -> None:
        self.k1, self.b = k1, b
        self._lengths: dict[str, int] = {}
        self._terms: dict[str, Counter[str]] = {}
        self._postings: dict[str, dict[str, int]] = {}
        self._total = 0

    def __len__(self) -> int:
        return len(self._lengths)

    def add(self, key: str, text: str) -> None:
        self.remove(key)
        counts = Counter(tokens(text))
        self._terms[key] = counts
        self._lengths[key] = sum(counts.values())
        self._total += self._lengths[key]
        for term, count in counts.items():
            self._postings.setdefault(term, {})[key] = count

    def remove(self, key: str) -> None:
        counts = self._terms.pop(key, None)
        if counts is None:
            return
        self._total -= self._lengths.pop(key)
        for term in counts:
            posting = self._postings[term]
            del posting[key]
            if not posting:
                del self._postings[term]

    def idf(self, term: str) -> float:
        having = len(self._postings.get(term, ()))
        return math.log(1 + (len(self) - having + 0.5) / (having + 0.5))

    def scores(self, query: str) -> dict[str, float]:
        """Every key that holds a query term, with its BM25 score (each distinct query term counted once)."""
        if not self._lengths:
            return {}
        average = self._total / len(self._lengths) or 1.0
        found: dict[str, float] = {}
        for term in dict.fromkeys(tokens(query)):
            posting = self._postings.get(term)
            if not posting:
                continue
            idf = self.idf(term)
            for key, count in posting.items():
                norm = self.k1 * (1 - self.b + self.b * self._lengths[key] / average)
                found[key] = found.get(key, 0.0) + idf * count * (self.k1 + 1) / (count + norm)
        return found

    def top(self, query: str, n: int) -> list[tuple[str, float]]:
        """The *n* best keys for *query*, best first (ties by key)."""
        return sorted(self.scores(query).items(), key=lambda pair: (-pair[1], pair[0]))[:n]


def rrf(rankings: Sequence[Sequence[str]], k: int = RRF_K) -> list[tuple[str, float]]:
    """Reciprocal rank fusion: each key scores the sum of ``1 / (k + rank)`` over the rankings it is in (rank 1 is
    the best). Best first; a tie goes to the key with the better best rank, then to the earlier ranking."""
    scores: dict[str, float] = {}
    best: dict[str, tuple[int, int]] = {}
    for which, ranking in enumerate(rankings):
        for rank, key in enumerate(ranking, 1):
            scores[key] = scores.get(key, 0.0) + 1.0 / (k + rank)
            best[key] = min(best.get(key, (rank, which)), (rank, which))
    return sorted(scores.items(), key=lambda pair: (-pair[1], best[pair[0]]))


class LexicalIndexes:
    """Per collection, the BM25 index of its rows' ``text``; *load(collection)* yields ``(pk, text)`` of every row."""

    def __init__(self, load: Callable[[str], Iterable[tuple[str, str]]], max_age_s: float | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._load = load
        self.max_age_s = max_age_s
        self._clock = clock
        self._lock = threading.Lock()
        self._ready: dict[str, BM25] = {}
        self._built: dict[str, float] = {}
        self._building: dict[str, tuple[threading.Event, list[tuple[str, Any]]]] = {}

    def search(self, collection: str, query: str, n: int) -> list[tuple[str, float]]:
        index = self._index(collection)
        with self._lock:  # writes change the index in place: score a consistent state
            return index.top(query, n)

    def _index(self, collection: str) -> BM25:
        while True:
            with self._lock:
                current = self._ready.get(collection)
                building = self._building.get(collection)
                fresh = current is not None and (self.max_age_s is None
                                                 or self._clock() - self._built[collection] <= self.max_age_s)
                if current is not None and (fresh or building is not None):
                    return current  # (a stale one serves while another search rebuilds it)
                if building is None:
                    self._building[collection] = (threading.Event(), [])
                    break
            building[0].wait()  # another search builds it
        index, built = BM25(), False
        try:
            for key, text in self._load(collection):
                index.add(key, text)
            built = True
        except Exception:
            if current is None:
                raise
            return current  # a failed rebuild: the old index goes on serving, and the next search tries again
        finally:
            with self._lock:
                done, pending = self._building.pop(collection)
                if built:  # else (the store failed) the next search builds it again
                    for change, value in pending:  # writes flushed while the rows were being read
                        self._apply(index, change, value)
                    self._ready[collection] = index
                    self._built[collection] = self._clock()
                done.set()
        return index

    @staticmethod
    def _apply(index: BM25, change: str, value: Any) -> None:
        if change == "written":
            for key, text in value:
                index.add(key, text)
        else:
            for key in value:
                index.remove(key)

    def _change(self, collection: str, change: str, value: Any) -> None:
        with self._lock:
            if collection in self._ready:
                self._apply(self._ready[collection], change, value)
            if collection in self._building:
                self._building[collection][1].append((change, value))
            # with neither, no index yet: its build will read these rows from the store

    def written(self, collection: str, rows: Iterable[dict[str, Any]]) -> None:
        """Rows the store has upserted and flushed: their texts replace the keys' old ones."""
        texts = [(str(row["pk"]), row["text"]) for row in rows if isinstance(row.get("text"), str)]
        if texts:
            self._change(collection, "written", texts)

    def deleted(self, collection: str, keys: Iterable[str]) -> None:
        self._change(collection, "deleted", list(keys))

    def drop(self, collection: str) -> None:
        with self._lock:
            self._ready.pop(collection, None)
            self._built.pop(collection, None)

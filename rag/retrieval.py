"""Hybrid retrieval: dense (FAISS) and keyword (BM25) chunk search, fused at paper level."""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass

import numpy as np

from rag.config import RetrievalSettings
from rag.embedder import Embedder
from rag.store import LoadedIndex
from rag.text import fold, keyword_tokens
from rag.types import Paper, Source

log = logging.getLogger(__name__)

FILTER_KEYS = ("source", "year", "author", "category")


@dataclass
class Retrieval:
    """Ranked sources plus the signals the abstention check uses."""

    sources: list[Source]
    best_dense: float
    query: str


_FOLLOW_UP_START = re.compile(r"^\s*(and|also|but|so|what about|how about)\b", re.I)
_PRONOUN = re.compile(r"\b(it|its|they|them|their|this one|that one|the same)\b", re.I)


def is_follow_up(question: str) -> bool:
    """True for a question that leans on the previous one ("and how fast is it?"); a
    self-contained new question in the same chat is searched on its own."""
    n = len(keyword_tokens(question))
    return n <= 3 or bool(_FOLLOW_UP_START.match(question)) or (
        n <= 8 and bool(_PRONOUN.search(question)))


def retrieval_query(question: str, history: list[dict] | None) -> str:
    """The text to search with: a follow-up is joined to the user's previous question."""
    previous = [m["content"] for m in (history or []) if m.get("role") == "user" and m.get("content")]
    if previous and is_follow_up(question):
        return f"{previous[-1]}\n{question}"
    return question


def paper_matches(paper: Paper, filters: dict | None) -> bool:
    """True when the paper passes every metadata filter (case-insensitive substring/equality)."""
    for key, want in (filters or {}).items():
        if want in (None, "", []):
            continue
        if key == "year":
            if paper.year != int(want):
                return False
        elif key == "source":
            if not any(fold(str(want)) in fold(f"{x.source} {x.date}") for x in paper.listings):
                return False
        elif key == "author":
            if not any(fold(str(want)) in fold(a) for a in paper.authors):
                return False
        elif key == "category":
            if fold(str(want)) not in {fold(c) for c in paper.categories}:
                return False
    return True


def _best_per_paper(chunk_ids, scores, index: LoadedIndex, allowed) -> dict[str, float]:
    best: dict[str, float] = {}
    keep = np.asarray(chunk_ids) >= 0
    chunk_ids, scores = np.asarray(chunk_ids)[keep], np.asarray(scores)[keep]
    for pid, score in zip(index.paper_ids_of(chunk_ids), scores):
        if allowed is not None and pid not in allowed:
            continue
        if score > best.get(pid, -np.inf):
            best[pid] = float(score)
    return best


class HybridRetriever:
    """Searches one loaded index; safe to share between threads (read-only)."""

    def __init__(self, index: LoadedIndex, embedder: Embedder, cfg: RetrievalSettings):
        self.index, self.embedder, self.cfg = index, embedder, cfg
        self._vocab = index.bm25.vocab_dict

    def _dense(self, query: str, n: int):
        vec = self.embedder.embed([query])
        scores, ids = self.index.vectors.search(vec, n)
        return ids[0], scores[0]

    def _keyword(self, query: str, n: int):
        tokens = [t for t in keyword_tokens(query) if t in self._vocab]
        if not tokens:
            return np.array([], dtype=int), np.array([], dtype=np.float32)
        ids, scores = self.index.bm25.retrieve([tokens], k=n, show_progress=False, n_threads=1)
        keep = scores[0] > 0
        return ids[0][keep], scores[0][keep]

    def search(self, question: str, *, k: int | None = None, history: list[dict] | None = None,
               filters: dict | None = None) -> Retrieval:
        """The top `k` papers for a question, best first, each with its chunks."""
        k = k or self.cfg.k
        query = retrieval_query(question, history)
        allowed = None
        n = min(self.cfg.candidates, len(self.index.chunks))
        if filters and any(v not in (None, "", []) for v in filters.values()):
            allowed = {pid for pid, p in self.index.papers.items() if paper_matches(p, filters)}
            n = len(self.index.chunks)  # filters can exclude every top hit: rank them all
        dense = _best_per_paper(*self._dense(query, n), self.index, allowed)
        keyword = _best_per_paper(*self._keyword(query, n), self.index, allowed)
        fused = self._fuse(dense, keyword)
        sources = []
        for n_, (pid, score) in enumerate(fused[:k], 1):
            sources.append(Source(n_, self.index.papers[pid], score, dense.get(pid, 0.0),
                                  keyword.get(pid, 0.0), self.index.chunks_of(pid)))
        return Retrieval(sources, max(dense.values(), default=0.0), query)

    def _fuse(self, dense: dict[str, float], keyword: dict[str, float]) -> list[tuple[str, float]]:
        """Reciprocal-rank fusion of the two paper rankings."""
        scores: dict[str, float] = {}
        for ranking, weight in ((dense, 1.0), (keyword, self.cfg.keyword_weight)):
            ordered = sorted(ranking, key=ranking.get, reverse=True)
            for rank, pid in enumerate(ordered, 1):
                scores[pid] = scores.get(pid, 0.0) + weight / (self.cfg.rrf_k + rank)
        return sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))

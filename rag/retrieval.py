"""Hybrid retrieval: dense (FAISS) and keyword (BM25) chunk search, fused at paper level."""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass

import numpy as np

from rag.abbreviations import expand
from rag.config import RetrievalSettings
from rag.embedder import Embedder
from rag.filters import active
from rag.store import LoadedIndex
from rag.text import keyword_tokens
from rag.types import Source

log = logging.getLogger(__name__)


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


def _best_per_paper(chunk_ids, scores, index: LoadedIndex) -> dict[str, float]:
    keep = np.asarray(chunk_ids) >= 0
    best: dict[str, float] = {}
    for pid, score in zip(index.paper_ids_of(np.asarray(chunk_ids)[keep]), np.asarray(scores)[keep], strict=True):
        if score > best.get(pid, -np.inf):
            best[pid] = float(score)
    return best


def _top_positive(scores: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows of the `n` highest positive scores and their scores, best first."""
    rows = np.flatnonzero(scores > 0)
    if len(rows) > n:
        rows = rows[np.argpartition(-scores[rows], n - 1)[:n]]
    rows = rows[np.argsort(-scores[rows], kind="stable")]
    return rows, scores[rows]


# Chunks read for an abbreviation's definition ("super-resolution (SR)") in the corpus.
ABBREV_CHUNKS = 20
# An abbreviation in at least this share of the chunks ("LLM", "CNN", "GPU") is one the
# embedder knows; spelling it out only dilutes the question (README, "Abbreviations").
ABBREV_MAX_SHARE = 0.02


class HybridRetriever:
    """Searches one loaded index; safe to share between threads (read-only)."""

    def __init__(self, index: LoadedIndex, embedder: Embedder, cfg: RetrievalSettings):
        self.index, self.embedder, self.cfg = index, embedder, cfg
        self._vocab = index.bm25.vocab_dict

    def _dense(self, query: str, n: int, filters: dict):
        vec = self.embedder.embed([query])
        scores, ids = self.index.vectors.search(vec, n, filters)
        return ids[0], scores[0]

    def _keyword(self, query: str, n: int, filters: dict):
        return self._scored([t for t in keyword_tokens(query) if t in self._vocab], n, filters)

    def _scored(self, tokens: list[str], n: int, filters: dict):
        if not tokens:
            return np.array([], dtype=int), np.array([], dtype=np.float32)
        mask = None
        if filters:  # BM25 scores of rows outside the filters are multiplied by 0
            mask = np.zeros(len(self.index.chunks), dtype=np.float32)
            mask[self.index.rows_where(filters)] = 1.0
        # Scores and top-n here rather than bm25s.retrieve, which starts a thread pool on
        # every call (30+ ms a query on 2 busy cores, 30x the scoring itself at 100K chunks).
        return _top_positive(self.index.bm25.get_scores(tokens, weight_mask=mask), n)

    def search_text(self, query: str) -> str:
        """The text searched for a query: its rare abbreviations spelled out as the indexed
        papers define them ("SR" -> "SR (super-resolution)", `rag.abbreviations`)."""
        return expand(query, self._texts_using)

    def _texts_using(self, abbrev: str) -> list[str]:
        """The text of the chunks that use an abbreviation most (keyword search, all papers)."""
        token = abbrev.lower()
        if token not in self._vocab:
            return []
        scores = self.index.bm25.get_scores([token])
        if np.mean(scores > 0) >= ABBREV_MAX_SHARE:
            return []
        rows, _ = _top_positive(scores, ABBREV_CHUNKS)
        return [self.index.chunks[int(r)].text for r in rows]

    def search(self, question: str, *, k: int | None = None, history: list[dict] | None = None,
               filters: dict | None = None) -> Retrieval:
        """The top `k` papers for a question, best first, each with its chunks."""
        k = k or self.cfg.k
        # Rare abbreviations spelled out: the decision and the quotes read this text too.
        query = self.search_text(retrieval_query(question, history))
        filters = active(filters)
        n = min(self.cfg.candidates, len(self.index.chunks))
        dense = _best_per_paper(*self._dense(query, n, filters), self.index)
        keyword = _best_per_paper(*self._keyword(query, n, filters), self.index)
        fused = self._fuse(dense, keyword)
        sources = []
        for n_, (pid, score) in enumerate(fused[:k], 1):
            sources.append(Source(n_, self.index.papers[pid], score, dense.get(pid, 0.0),
                                  keyword.get(pid, 0.0), self.index.chunks_of(pid)))
        return Retrieval(sources, max(dense.values(), default=0.0), query)

    def keyword_papers(self, query: str, k: int, filters: dict | None = None) -> list[Source]:
        """The top `k` papers for a keyword search alone (no embedding): a cheap lookup of
        the papers that write a name."""
        keyword = _best_per_paper(*self._keyword(query, min(self.cfg.candidates,
                                                             len(self.index.chunks)),
                                                 active(filters)), self.index)
        return self._keyword_sources(keyword)[:k]

    def papers_writing(self, token: str, most: int, filters: dict | None = None
                       ) -> list[Source] | None:
        """The papers whose chunks hold a keyword token, best first; None when more than
        `most` papers do (the token is no mark of a few) or none does."""
        if token not in self._vocab:
            return None
        n = min(self.cfg.candidates, len(self.index.chunks))
        keyword = _best_per_paper(*self._scored([token], n, active(filters)), self.index)
        if not keyword or len(keyword) > most:
            return None
        return self._keyword_sources(keyword)

    def _keyword_sources(self, keyword: dict[str, float]) -> list[Source]:
        """Papers scored by keyword search alone, best first (no dense score)."""
        ranked = sorted(keyword, key=lambda pid: (-keyword[pid], pid))
        return [Source(n, self.index.papers[pid], keyword[pid], 0.0, keyword[pid],
                       self.index.chunks_of(pid)) for n, pid in enumerate(ranked, 1)]

    def _fuse(self, dense: dict[str, float], keyword: dict[str, float]) -> list[tuple[str, float]]:
        """Reciprocal-rank fusion of the two paper rankings."""
        scores: dict[str, float] = {}
        for ranking, weight in ((dense, 1.0), (keyword, self.cfg.keyword_weight)):
            ordered = sorted(ranking, key=ranking.get, reverse=True)
            for rank, pid in enumerate(ordered, 1):
                scores[pid] = scores.get(pid, 0.0) + weight / (self.cfg.rrf_k + rank)
        return sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))

"""The FAISS backend: vectors in files inside the build folder (vectors.faiss).

Three kinds, all inner product over L2-normalised vectors (so scores are cosines):

    flat    exact search; every query scans every vector. Right while the corpus is small.
    hnsw    a graph (HNSWFlat, M=32): fast and accurate, but keeps every vector plus the
            graph in memory and builds slowly (minutes per 100K vectors on 2 cores).
    ivfpq   an inverted file of product-quantised codes (IVF<nlist>,PQ<d/4>: 96 bytes a
            vector at 384-d instead of 1,536); the top candidates are re-scored exactly
            against the build's memory-mapped embeddings.npy, so scores stay exact cosines
            and memory stays small.

`choose_kind` picks one from the corpus size and the `index.ann` setting; `auto` means
flat below `index.ann_threshold` vectors and ivfpq from there on (bench/scale.py measures
why). Search-time parameters (nprobe, efSearch) are stored inside the FAISS file, so a
loaded index searches as it was built to.

Filtered searches look only at the rows the build's records select: small selections
(up to EXACT_FILTERED rows) are scored exactly, larger ones through FAISS's ID selector.
"""
from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np

from rag.errors import IndexCorruptError
from rag.filters import active

log = logging.getLogger(__name__)

KINDS = ("flat", "hnsw", "ivfpq")
# Below this many vectors `auto` keeps exact search (see bench/scale.py and README "Scale").
DEFAULT_THRESHOLD = 100_000
HNSW_M, HNSW_EF_CONSTRUCTION, HNSW_EF_SEARCH = 32, 80, 256
IVF_NPROBE = 48
# ivfpq fetches max(k * REFINE_FACTOR, REFINE_MIN) candidates, then re-scores them exactly.
REFINE_FACTOR, REFINE_MIN = 4, 256
_TRAIN_PER_LIST = 50  # k-means training points per inverted list (FAISS warns below 39)
# Filtered searches score up to this many selected rows exactly (a 150 MB slice at 384-d).
EXACT_FILTERED = 100_000
FILE = "vectors.faiss"


def choose_kind(n_vectors: int, setting: str = "auto", threshold: int = DEFAULT_THRESHOLD) -> str:
    """The index kind for a corpus of `n_vectors`: the setting itself unless it is 'auto'.

    Raises ValueError for an unknown setting.
    """
    if setting in KINDS:
        return setting
    if setting != "auto":
        raise ValueError(f"Unknown vector index kind {setting!r}; use auto, {', '.join(KINDS)}.")
    return "flat" if n_vectors < threshold else "ivfpq"


def ivf_lists(n_vectors: int) -> int:
    """Inverted lists for ivfpq: the power of two nearest sqrt(n), at least 16.

    Fewer, longer lists than the usual 4 * sqrt(n): training k-means is what makes a
    large build slow on 2 cores, and the exact re-scoring makes longer lists cheap."""
    return max(16, 2 ** round(math.log2(math.sqrt(max(n_vectors, 1)))))


def pq_subquantizers(dim: int) -> int:
    """PQ sub-vectors: one per 4 dimensions (96 bytes a vector at 384-d), a divisor of `dim`."""
    m = max(1, dim // 4)
    while dim % m:
        m -= 1
    return m


def make_vector_index(embeddings: np.ndarray, kind: str):
    """A FAISS inner-product index of `kind` holding every row of `embeddings` (float32, normalised).

    Raises ValueError for an unknown kind.
    """
    import faiss

    x = np.ascontiguousarray(embeddings, dtype=np.float32)
    n, dim = x.shape
    if kind == "flat":
        index = faiss.IndexFlatIP(dim)
    elif kind == "hnsw":
        index = faiss.IndexHNSWFlat(dim, HNSW_M, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
        index.hnsw.efSearch = HNSW_EF_SEARCH
    elif kind == "ivfpq":
        index = _trained_ivfpq(x)
    else:
        raise ValueError(f"Unknown vector index kind {kind!r}; use {', '.join(KINDS)}.")
    for start in range(0, n, 100_000):  # bounded temporaries for large corpora
        index.add(x[start:start + 100_000])
    return index


def _trained_ivfpq(x: np.ndarray):
    import faiss

    n, dim = x.shape
    nlist, m = ivf_lists(n), pq_subquantizers(dim)
    # L2 for the approximate stage: on normalised vectors it ranks as inner product does, and
    # it trained better lists than IP k-means here (recall@10 0.85 -> 0.99 on clustered
    # test vectors); the exact re-scoring restores inner-product scores.
    index = faiss.IndexIVFPQ(faiss.IndexFlatL2(dim), dim, nlist, m, 8)
    sample = x
    if n > nlist * _TRAIN_PER_LIST:
        rows = np.sort(np.random.default_rng(0).choice(n, nlist * _TRAIN_PER_LIST, replace=False))
        sample = x[rows]
    log.info("training IVF%d,PQ%d on %d of %d vectors", nlist, m, len(sample), n)
    index.train(sample)
    index.nprobe = min(IVF_NPROBE, nlist)
    return index


def describe(index) -> dict:
    """The kind and parameters of an index, for the manifest."""
    import faiss

    index = faiss.downcast_index(index)
    if isinstance(index, faiss.IndexHNSW):
        return {"kind": "hnsw", "factory": f"HNSW{HNSW_M},Flat",
                "ef_construction": index.hnsw.efConstruction, "ef_search": index.hnsw.efSearch}
    if isinstance(index, faiss.IndexIVFPQ):
        return {"kind": "ivfpq", "factory": f"IVF{index.nlist},PQ{index.pq.M}",
                "nprobe": index.nprobe, "refine": "exact re-scoring against embeddings.npy",
                "refine_factor": REFINE_FACTOR, "refine_min": REFINE_MIN}
    return {"kind": "flat", "factory": "Flat"}


class FaissSearcher:
    """A build's FAISS index open for search, with metadata filters and, for ivfpq, exact
    re-scoring of the candidates against the build's memory-mapped embeddings."""

    def __init__(self, index, embeddings: np.ndarray, rows_where=None):
        import faiss

        # A downcast SWIG proxy does not own its index: keep the proxy that does alive.
        self._owner, self.index = index, faiss.downcast_index(index)
        self.embeddings, self.rows_where = embeddings, rows_where
        self._rescore = isinstance(self.index, faiss.IndexIVFPQ)
        self.ntotal, self.d = index.ntotal, index.d

    def search(self, x: np.ndarray, k: int, filters: dict | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Top-k cosines and rows per query row, -1 where fewer than k rows qualify."""
        x = np.ascontiguousarray(x, dtype=np.float32)
        params = None
        if active(filters):
            rows = np.asarray(self.rows_where(filters), dtype=np.int64)
            if len(rows) <= EXACT_FILTERED:
                return _top_k(self.embeddings, rows, x, k)
            params = self._params(rows)
        if not self._rescore:
            return self.index.search(x, k, params=params)
        _, cand = self.index.search(x, min(self.ntotal, max(k * REFINE_FACTOR, REFINE_MIN)),
                                    params=params)
        results = [_top_k(self.embeddings, row[row >= 0], x[q:q + 1], k) for q, row in enumerate(cand)]
        return np.vstack([r[0] for r in results]), np.vstack([r[1] for r in results])

    def _params(self, rows: np.ndarray):
        import faiss

        sel = faiss.IDSelectorBatch(rows)
        if isinstance(self.index, faiss.IndexIVF):
            params = faiss.SearchParametersIVF(sel=sel, nprobe=self.index.nprobe)
        elif isinstance(self.index, faiss.IndexHNSW):
            params = faiss.SearchParametersHNSW(sel=sel, efSearch=self.index.hnsw.efSearch)
        else:
            params = faiss.SearchParameters(sel=sel)
        params._selector = sel  # the parameters do not own the selector
        return params

    def reconstruct_batch(self, rows) -> np.ndarray:
        """The stored (exact) vectors of these rows."""
        return np.asarray(self.embeddings[np.asarray(rows, dtype=np.int64)], dtype=np.float32)


def _top_k(embeddings: np.ndarray, rows: np.ndarray, x: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-k of `rows` of `embeddings` for each query row of `x`, -1 padded."""
    scores = np.full((len(x), k), -np.inf, dtype=np.float32)
    ids = np.full((len(x), k), -1, dtype=np.int64)
    rows = np.sort(rows)  # sorted rows read the memory map in order
    for lo in range(0, max(len(rows), 1), EXACT_FILTERED):
        part = rows[lo:lo + EXACT_FILTERED]
        exact = np.asarray(embeddings[part], dtype=np.float32) @ x.T  # (rows, queries)
        for q in range(len(x)):
            merged_s = np.concatenate([scores[q], exact[:, q]])
            merged_i = np.concatenate([ids[q], part])
            top = np.argsort(-merged_s, kind="stable")[:k]
            scores[q], ids[q] = merged_s[top], merged_i[top]
    return scores, ids


class FaissBackend:
    """Vectors in `vectors.faiss` inside the build folder; kind chosen by `choose_kind`."""

    name = "faiss"

    def __init__(self, ann: str = "auto", threshold: int = DEFAULT_THRESHOLD):
        self.ann, self.threshold = ann, threshold

    def write(self, build: Path, embeddings: np.ndarray, fields=None) -> dict:
        """Build the FAISS index over every row and write it; returns the manifest section."""
        import faiss

        index = make_vector_index(embeddings, choose_kind(len(embeddings), self.ann, self.threshold))
        faiss.write_index(index, str(build / FILE))
        return {"backend": self.name, "file": FILE, **describe(index),
                "setting": self.ann, "threshold": self.threshold}

    def open(self, build: Path, section: dict, embeddings: np.ndarray, rows_where=None) -> FaissSearcher:
        """The build's index, memory-mapped. Raises IndexCorruptError."""
        import faiss

        path = build / section.get("file", FILE)
        try:
            # Memory-mapped: flat and HNSW vectors are paged in from the file, not copied.
            index = faiss.read_index(str(path), faiss.IO_FLAG_MMAP_IFC | faiss.IO_FLAG_READ_ONLY)
        except RuntimeError as e:
            raise IndexCorruptError(f"{path} is unreadable ({str(e)[:120]}); "
                                    "run: askpapers index build --full") from None
        return FaissSearcher(index, embeddings, rows_where)

    def drop(self, build: Path, section: dict) -> None:
        """Nothing lives outside the build folder."""

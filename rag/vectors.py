"""The dense vector index: the one module that makes and configures FAISS indexes.

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
"""
from __future__ import annotations

import logging
import math

import numpy as np

log = logging.getLogger(__name__)

KINDS = ("flat", "hnsw", "ivfpq")
# Below this many vectors `auto` keeps exact search (see bench/scale.py and README "Scale").
DEFAULT_THRESHOLD = 100_000
HNSW_M, HNSW_EF_CONSTRUCTION, HNSW_EF_SEARCH = 32, 80, 256
IVF_NPROBE = 48
# ivfpq fetches max(k * REFINE_FACTOR, REFINE_MIN) candidates, then re-scores them exactly.
REFINE_FACTOR, REFINE_MIN = 4, 256
_TRAIN_PER_LIST = 50  # k-means training points per inverted list (FAISS warns below 39)


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


def ready_for_search(index, embeddings: np.ndarray | None = None):
    """What the retriever should search: the index itself, or for ivfpq the index with exact
    re-scoring against `embeddings` (the build's memory-mapped rows, needed then)."""
    import faiss

    inner = faiss.downcast_index(index)
    if isinstance(inner, faiss.IndexIVFPQ):
        if embeddings is None:
            raise ValueError("an ivfpq index needs the build's embeddings to re-score candidates")
        return RescoredIndex(inner, embeddings, owner=index)
    return index


class RescoredIndex:
    """An approximate FAISS index whose candidates are re-scored exactly against stored rows.

    Offers the parts of the faiss.Index interface askpapers uses: `ntotal`, `d`,
    `search(x, k)` and `reconstruct_batch(rows)` (exact rows, not PQ reconstructions).
    """

    def __init__(self, index, embeddings: np.ndarray, owner=None):
        self.index, self.embeddings = index, embeddings
        # A downcast SWIG proxy does not own its index: keep the proxy that does alive.
        self._owner = owner
        self.ntotal, self.d = index.ntotal, index.d

    def search(self, x: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-k inner products and row ids per query row, -1 where fewer than k exist."""
        x = np.ascontiguousarray(x, dtype=np.float32)
        fetch = min(self.ntotal, max(k * REFINE_FACTOR, REFINE_MIN))
        _, cand = self.index.search(x, fetch)
        scores = np.full((len(x), k), -np.inf, dtype=np.float32)
        ids = np.full((len(x), k), -1, dtype=np.int64)
        for q, row in enumerate(cand):
            row = np.sort(row[row >= 0])  # sorted rows read the memory map in order
            exact = np.asarray(self.embeddings[row], dtype=np.float32) @ x[q]
            top = np.argsort(-exact, kind="stable")[:k]
            scores[q, :len(top)], ids[q, :len(top)] = exact[top], row[top]
        return scores, ids

    def reconstruct_batch(self, rows) -> np.ndarray:
        """The stored (exact) vectors of these rows."""
        rows = np.asarray(rows, dtype=np.int64)
        return np.asarray(self.embeddings[rows], dtype=np.float32)

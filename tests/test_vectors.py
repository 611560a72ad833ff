"""The FAISS index kinds (rag/vectorstores/faiss_store.py): chosen by size, approximate ones close to exact,
recorded in the manifest, and loadable through the real build and store code."""
from __future__ import annotations

import numpy as np
import pytest

from index.build import build_index
from rag import store
from rag.config import load_settings
from rag.embedder import load_embedder
from rag.retrieval import HybridRetriever
from rag.vectorstores import faiss_store as vectors


def clustered(n: int, dim: int, seed: int = 0) -> np.ndarray:
    """Normalised vectors around 300 random centres: clustered like sentence embeddings."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((300, dim)).astype(np.float32)
    x = centres[rng.integers(0, 300, n)] + rng.standard_normal((n, dim)).astype(np.float32) * 0.6
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_kind_is_chosen_by_size_unless_set():
    assert vectors.choose_kind(1_000, "auto", 100_000) == "flat"
    assert vectors.choose_kind(100_000, "auto", 100_000) == "ivfpq"
    assert vectors.choose_kind(10, "auto", 5) == "ivfpq"
    assert vectors.choose_kind(5_000_000, "flat") == "flat"
    assert vectors.choose_kind(10, "hnsw") == "hnsw"
    with pytest.raises(ValueError, match="annoy"):
        vectors.choose_kind(10, "annoy")


def test_ivf_and_pq_shapes_follow_the_corpus():
    assert vectors.ivf_lists(1_000_000) == 1024
    assert vectors.ivf_lists(100_000) == 256 and vectors.ivf_lists(10) == 16
    assert vectors.pq_subquantizers(384) == 96 and 100 % vectors.pq_subquantizers(100) == 0


@pytest.mark.parametrize("kind", ["hnsw", "ivfpq"])
def test_approximate_search_keeps_recall_at_10_against_exact(kind, tmp_path):
    import faiss

    x, queries = clustered(30_000, 64), clustered(200, 64, seed=1)
    exact = vectors.make_vector_index(x, "flat").search(queries, 10)[1]
    # Through a file, as the store does: search parameters must survive writing and reading.
    faiss.write_index(vectors.make_vector_index(x, kind), str(tmp_path / "v.faiss"))
    np.save(tmp_path / "e.npy", x)
    index = vectors.FaissSearcher(faiss.read_index(str(tmp_path / "v.faiss")),
                                  np.load(tmp_path / "e.npy", mmap_mode="r"))
    scores, found = index.search(queries, 10)
    recall = np.mean([len(set(f) & set(e)) / 10 for f, e in zip(found, exact, strict=True)])
    assert recall >= 0.95, f"{kind} recall@10 {recall:.3f}"
    assert np.all(np.diff(scores, axis=1) <= 1e-6)  # best first
    assert index.reconstruct_batch([3, 7]).shape == (2, 64)


def test_ivfpq_scores_are_exact_cosines(tmp_path):
    x = clustered(20_000, 64)
    index = vectors.FaissSearcher(vectors.make_vector_index(x, "ivfpq"), x)
    scores, ids = index.search(x[:5], 3)
    assert ids[:, 0].tolist() == [0, 1, 2, 3, 4]
    assert np.allclose(scores, np.einsum("qd,qkd->qk", x[:5], x[ids]), atol=1e-5)


def test_seed_build_is_flat_and_says_so(seed_settings):
    m = store.load_index(seed_settings.index_dir, seed_settings).manifest
    v = m["vector_store"]
    assert v["backend"] == "faiss" and v["kind"] == "flat" and v["setting"] == "auto"
    assert v["threshold"] == seed_settings.index.ann_threshold


@pytest.mark.parametrize("index_settings, kind", [
    ({"ann": "hnsw"}, "hnsw"),
    ({"ann": "auto", "ann_threshold": 100}, "ivfpq"),  # a tiny threshold makes the seeds "large"
])
def test_approximate_builds_load_and_search_like_exact(index_copy, index_settings, kind):
    flat = store.load_index(index_copy.index_dir, index_copy)
    settings = load_settings(home=index_copy.home, index=index_settings)
    build_index(settings)
    index = store.load_index(settings.index_dir, settings)
    assert index.manifest["vector_store"]["kind"] == kind and index.vectors.ntotal == flat.vectors.ntotal
    embedder = load_embedder(settings.embedder.model)
    question = "YOLACT real-time instance segmentation"
    vec = embedder.embed([question])
    assert index.vectors.search(vec, 10)[1][0].tolist() == flat.vectors.search(vec, 10)[1][0].tolist()
    top = HybridRetriever(index, embedder, settings.retrieval).search(question, k=3).sources[0]
    assert "YOLACT" in top.paper.title

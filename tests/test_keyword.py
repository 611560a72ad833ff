"""Keyword search scores and ranks chunks exactly as bm25s.retrieve does (real seed index)."""
from __future__ import annotations

import numpy as np
import pytest

from rag import store
from rag.retrieval import HybridRetriever
from rag.text import keyword_tokens

QUERIES = ["classifier guidance FID on ImageNet", "sparse attention long context memory",
           "medical image segmentation pre-training", "zzzz unknownword", "the of and"]


@pytest.mark.parametrize("query", QUERIES)
@pytest.mark.parametrize("filters", [{}, {"source": "001"}])
def test_keyword_search_matches_bm25s_retrieve(seed_settings, query, filters):
    index = store.load_index(seed_settings.index_dir, seed_settings)
    retriever = HybridRetriever(index, None, seed_settings.retrieval)
    rows, scores = retriever._keyword(query, 60, filters)
    tokens = [t for t in keyword_tokens(query) if t in index.bm25.vocab_dict]
    if not tokens:
        assert len(rows) == 0
        return
    mask = None
    if filters:
        mask = np.zeros(len(index.chunks), dtype=np.float32)
        mask[index.rows_where(filters)] = 1.0
    ids, want = index.bm25.retrieve([tokens], k=60, show_progress=False, weight_mask=mask)
    keep = want[0] > 0
    assert len(rows) == keep.sum() > 0
    assert np.allclose(scores, np.sort(want[0][keep])[::-1]) and np.all(np.diff(scores) <= 0)
    assert set(rows[scores > scores[-1]]) <= set(ids[0][keep])


def test_accents_do_not_split_or_hide_a_word():
    """A user may type "Frechet" for "Fréchet" (or the reverse)."""
    assert keyword_tokens("Fréchet mean, Rényi, naïve") == keyword_tokens("Frechet mean, Renyi, naive")
    assert keyword_tokens("Fréchet") == ["frechet"]
    assert keyword_tokens("Poincaré-ball") == ["poincare-ball", "poincare", "ball"]

"""Chunk bounds and offsets, measured with the embedder's own tokenizer."""
from __future__ import annotations

from index.chunking import chunk_papers
from rag.config import ChunkSettings
from rag.embedder import load_embedder
from rag.store import load_index
from rag.tokens import get_encoding
from rag.types import Paper


def test_tiktoken_works_offline():
    assert get_encoding("cl100k_base").encode("hello world") == [15339, 1917]


def test_seed_chunks_fit_the_embedder_and_point_into_their_abstract(seed_settings):
    index = load_index(seed_settings.index_dir, seed_settings)
    embedder = load_embedder(seed_settings.embedder.model)
    lengths = []
    for c in index.chunks:
        paper = index.papers[c.paper_id]
        assert paper.abstract[c.start:c.end] == c.text
        assert c.embed_text(paper.title).startswith(paper.title)
        lengths.append(embedder.count_tokens(c.embed_text(paper.title)))
    assert max(lengths) <= embedder.max_tokens == 256
    covered = {pid: 0 for pid in index.papers}
    for c in index.chunks:
        covered[c.paper_id] = max(covered[c.paper_id], c.end)
    assert all(covered[pid] >= len(p.abstract.rstrip()) - 1 for pid, p in index.papers.items())


def test_chunks_end_at_sentence_boundaries_and_overlap():
    sentences = [f"Sentence number {i} says something about scaling models well." for i in range(40)]
    paper = Paper("p1", "A title", " ".join(sentences))
    chunks = chunk_papers([paper], ChunkSettings(chunk_tokens=60, overlap_tokens=20))
    assert len(chunks) > 3
    assert all(c.text.endswith(".") for c in chunks)
    assert all(chunks[i + 1].start < chunks[i].end for i in range(len(chunks) - 1)), "overlap"
    no_overlap = chunk_papers([paper], ChunkSettings(chunk_tokens=60, overlap_tokens=0))
    assert all(no_overlap[i + 1].start >= no_overlap[i].end for i in range(len(no_overlap) - 1))

"""The fast contract tier: the build, the index format and every vector backend, driven by a
small deterministic FAKE embedder instead of the real model, so the contract runs in
seconds. The real-model tier (tests/test_vectorstores.py, tests/test_build.py) checks the
same contract with all-MiniLM-L6-v2; this tier checks the code paths, not the model."""
from __future__ import annotations

import hashlib
import importlib.util
import shutil
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import pytest

from index.build import build_index
from index.steps import BuildSteps
from rag import store
from rag.config import load_settings
from rag.filters import active, fields_match, filter_fields
from rag.retrieval import HybridRetriever
from rag.text import keyword_tokens

SEEDS = Path(__file__).resolve().parent.parent / "seeds"
needs_milvus = pytest.mark.skipif(
    not all(importlib.util.find_spec(m) for m in ("pymilvus", "milvus_lite")),
    reason="Milvus is not installed (pip install 'askpapers[scale]')")
BACKENDS = ["faiss", pytest.param("milvus", marks=needs_milvus)]


class FakeHashEmbedder:
    """A FAKE embedder: each word hashed into one of `dim` signed buckets, normalised.
    Deterministic across runs and processes; texts sharing words get close vectors."""

    id = "fake-hash-embedder"
    max_tokens = 10_000

    def __init__(self, dim: int = 512):
        self.dim, self.texts = dim, 0

    def embed(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        self.texts += len(texts)
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, text in enumerate(texts):
            for word in keyword_tokens(text) or ["_"]:
                h = int.from_bytes(hashlib.blake2b(word.encode(), digest_size=8).digest(), "big")
                out[i, h % self.dim] += 1.0 if (h >> 32) & 1 else -1.0
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.where(norms == 0, 1, norms)

    def count_tokens(self, text: str) -> int:
        return len(text.split())


def fake_steps(fake: FakeHashEmbedder) -> BuildSteps:
    """The in-process build steps with the fake embedder in place of the model."""
    def embed(settings, report):
        def batches(items: Iterable[tuple[int, list[str]]]) -> Iterator[tuple[int, np.ndarray]]:
            for j, texts in items:
                yield j, fake.embed(texts)
        return batches
    return BuildSteps(embed=embed)


def fake_settings(home: Path, backend: str):
    index = {"vector_uri": str(home / "vectors.db")} if backend == "milvus" else {}
    return load_settings(home=home, embedder={"model": FakeHashEmbedder.id}, index=index)


@pytest.fixture(params=BACKENDS)
def built(request, tmp_path):
    """(settings, fake embedder, sources folder): a private copy of the seeds, built."""
    seeds = tmp_path / "seeds"
    shutil.copytree(SEEDS, seeds)
    settings, fake = fake_settings(tmp_path / "home", request.param), FakeHashEmbedder()
    build_index(settings, [seeds], steps=fake_steps(fake))
    return settings, fake, seeds


def assert_exact(ids: np.ndarray, scores: np.ndarray, emb: np.ndarray, rows, x: np.ndarray) -> None:
    """The hits are the brute-force top among `rows` (compared by score: the fake's vectors tie)."""
    rows = np.asarray(list(rows), dtype=np.int64)
    found = ids[ids >= 0]
    best = np.sort(np.asarray(emb[rows]) @ x)[::-1][:len(ids)]
    assert len(found) == len(best) and set(found.tolist()) <= set(rows.tolist())
    assert np.allclose(scores[:len(found)], best, atol=1e-5)
    assert np.allclose(np.asarray(emb[found]) @ x, scores[:len(found)], atol=1e-5)


def test_search_and_filters_equal_brute_force(built):
    settings, fake, _ = built
    index = store.load_index(settings.index_dir, settings)
    emb = np.asarray(store.read_embeddings(index.path))
    assert index.manifest["embedder"] == {"model": FakeHashEmbedder.id, "dim": fake.dim}
    assert fake.texts == len(index.chunks) == index.vectors.ntotal
    x = fake.embed(["real-time instance segmentation"])[0]
    scores, ids = index.vectors.search(x[None, :], 10)
    assert_exact(ids[0], scores[0], emb, range(len(emb)), x)
    source = next(iter(index.papers.values())).listings[0].source
    fields = {pid: filter_fields(p) for pid, p in index.papers.items()}
    for filters in ({"source": source}, {"source": "%"}, {"year": 2020}, {"author": "_"}):
        allowed = [c.chunk_id for c in index.chunks if fields_match(fields[c.paper_id], active(filters))]
        scores, ids = index.vectors.search(x[None, :], len(allowed) + 2, filters)
        assert_exact(ids[0], scores[0], emb, allowed, x)
        assert (ids[0][len(allowed):] == -1).all(), filters


def test_an_edit_re_embeds_one_paper_and_a_removal_leaves_search(built):
    settings, fake, seeds = built
    before = store.load_index(settings.index_dir, settings)
    page = seeds / "000_3e40f1ba127451b8.txt"
    marker = "zebrafish retina scans"
    page.write_text(page.read_text().replace("Notably, the 1.4B STU-Net", f"Remarkably, {marker}, the 1.4B STU-Net"))
    (seeds / "004_b886cb7b092b6069.txt").unlink()
    fake.texts = 0
    report = build_index(settings, [seeds], steps=fake_steps(fake))
    index = store.load_index(settings.index_dir, settings)
    assert 0 < report.embedded == fake.texts < 6 and report.reused == len(index.chunks) - report.embedded
    gone = set(before.papers) - set(index.papers)
    assert gone and report.removed == len(gone) and index.vectors.ntotal == len(index.chunks)
    retriever = HybridRetriever(index, fake, settings.retrieval)
    top = retriever.search(marker, k=3).sources[0]
    assert top.paper.title.startswith("STU-Net")
    ids = index.vectors.search(fake.embed([before.papers[sorted(gone)[0]].title]), index.vectors.ntotal)[1][0]
    assert (ids >= 0).all() and not gone & set(index.paper_ids_of(ids))


def test_a_full_rebuild_reproduces_the_index(built):
    settings, fake, seeds = built
    first = store.load_index(settings.index_dir, settings)
    emb = np.array(store.read_embeddings(first.path))
    report = build_index(settings, [seeds], full=True, steps=fake_steps(fake))
    again = store.load_index(settings.index_dir, settings)
    assert report.reused == 0 and again.path != first.path
    assert np.array_equal(np.asarray(store.read_embeddings(again.path)), emb)
    assert [c.text for c in again.chunks] == [c.text for c in first.chunks]
    assert store.verify_index(settings.index_dir, settings)["chunks"] == len(emb)

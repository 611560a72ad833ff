"""Build or refresh the index: read sources, chunk, embed what changed, publish atomically."""
from __future__ import annotations

import hashlib
import logging
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from index.chunking import chunk_papers
from index.readers import ReadReport, read_sources
from rag import store
from rag.config import ChunkSettings, Settings
from rag.embedder import load_embedder
from rag.errors import AskPapersError
from rag.types import Chunk, Paper
from rag.vectorstores import make_backend

log = logging.getLogger(__name__)

Progress = Callable[[int, int], None]


@dataclass
class BuildReport:
    """What a build did, for the CLI to print and tests to check."""

    build_dir: Path
    papers: int = 0
    added: int = 0
    changed: int = 0
    removed: int = 0
    unchanged: int = 0
    chunks: int = 0
    embedded: int = 0
    reused: int = 0
    over_limit: int = 0
    skipped: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)


def content_hash(paper: Paper) -> str:
    """Hash of what gets embedded; metadata such as listings does not count."""
    return hashlib.sha256(f"{paper.title}\n{paper.abstract}".encode()).hexdigest()[:20]


@dataclass
class _Previous:
    hashes: dict[str, str]
    chunks: dict[str, list[Chunk]]
    embeddings: np.ndarray


def _load_previous(index_dir: Path, settings: Settings) -> _Previous | None:
    """The live build's reusable parts, or None when it is absent or built differently."""
    try:
        build = store.current_build(index_dir)
        if build is None:
            return None
        manifest = store.read_manifest(build)
        if store.embedding_mismatches(manifest, settings):
            log.info("previous index was built with other settings; embedding everything")
            return None
        _, chunks = store.read_records(build)
        emb = store.read_embeddings(build)
    except AskPapersError as e:
        log.warning("previous index unusable (%s); embedding everything", e)
        return None
    if len(emb) != len(chunks):
        return None
    by_paper: dict[str, list[Chunk]] = {}
    for c in chunks:
        by_paper.setdefault(c.paper_id, []).append(c)
    return _Previous(manifest.get("paper_hashes", {}), by_paper, emb)


def _plan(papers: list[Paper], prev: _Previous | None, settings: Settings, report: BuildReport,
          chunk: Callable[[list[Paper], ChunkSettings], list[Chunk]] = chunk_papers):
    """Chunks for every paper, reusing unchanged papers' chunks.

    Returns (chunks, reuse_rows: [(new_row, previous_row)], rows_to_embed, paper_hashes).
    """
    hashes = {p.paper_id: content_hash(p) for p in papers}
    old = prev.hashes if prev else {}
    fresh = [p for p in papers
             if old.get(p.paper_id) != hashes[p.paper_id] or p.paper_id not in prev.chunks]
    fresh_ids = {p.paper_id for p in fresh}
    new_chunks: dict[str, list[Chunk]] = {}
    for c in chunk(fresh, settings.chunking) if fresh else []:
        new_chunks.setdefault(c.paper_id, []).append(c)
    chunks, reuse_rows, new_idx = [], [], []
    for p in papers:
        reuse = p.paper_id not in fresh_ids
        for c in prev.chunks[p.paper_id] if reuse else new_chunks.get(p.paper_id, []):
            cid = len(chunks)
            chunks.append(Chunk(cid, c.paper_id, c.start, c.end, c.text))
            if reuse:
                reuse_rows.append((cid, c.chunk_id))
            else:
                new_idx.append(cid)
    report.added = sum(1 for p in papers if p.paper_id not in old)
    report.changed = len(fresh) - report.added
    report.removed = len(set(old) - set(hashes))
    report.unchanged = len(papers) - len(fresh)
    return chunks, reuse_rows, new_idx, hashes


def _embed(texts: list[str], settings: Settings, progress: Progress | None,
           report: BuildReport) -> np.ndarray:
    """Vectors for `texts`, in batches so progress can be shown; counts over-long texts."""
    embedder = load_embedder(settings.embedder.model)
    report.over_limit = sum(embedder.count_tokens(t) > embedder.max_tokens for t in texts)
    batch = max(settings.embedder.batch_size, 1) * 4
    parts = [np.zeros((0, embedder.dim), np.float32)]
    for i in range(0, len(texts), batch):
        parts.append(embedder.embed(texts[i:i + batch], batch_size=settings.embedder.batch_size))
        if progress:
            progress(min(i + batch, len(texts)), len(texts))
    return np.concatenate(parts)


@dataclass(frozen=True)
class BuildSteps:
    """How a build reads, chunks and embeds; index/ray_build.py supplies a Ray-distributed set.

    Each step must give what the in-process default gives: the same papers in the same
    order, chunks numbered from 0 in paper order, and vectors in the order of the texts.
    """

    read: Callable[[Sequence[Path]], ReadReport] = read_sources
    chunk: Callable[[list[Paper], ChunkSettings], list[Chunk]] = chunk_papers
    embed: Callable[[list[str], Settings, Progress | None, BuildReport], np.ndarray] = _embed


def build_index(settings: Settings, sources: Sequence[Path] | None = None, *, full: bool = False,
                progress: Progress | None = None, ray_address: str | None = None) -> BuildReport:
    """Build the index from `sources` (default: the configured ones), reusing unchanged papers.

    With `ray_address` ("local" for a Ray started in this process, "auto", "host:port" or
    "ray://host:port") reading, chunking and embedding run on that Ray cluster; writing
    and publishing stay here.
    Raises SourceError for unusable sources (the live index is untouched), IndexBusyError
    when another build runs, IndexWriteError when the index folder is not writable,
    MissingExtraError / ClusterError when Ray is not installed or the cluster fails.
    """
    if ray_address is None:
        return _build(settings, sources, full, progress, BuildSteps())
    from index.ray_build import ray_steps

    with ray_steps(ray_address) as steps:
        return _build(settings, sources, full, progress, steps)


def _build(settings: Settings, sources: Sequence[Path] | None, full: bool,
           progress: Progress | None, steps: BuildSteps) -> BuildReport:
    index_dir = settings.index_dir
    sources = [Path(s) for s in (sources or settings.sources)]
    t0 = time.perf_counter()
    with store.BuildLock(index_dir):
        backend = make_backend(settings.index)  # an unreachable vector store fails here, early
        store.remove_stale_builds(index_dir)
        read = steps.read(sources)
        papers = read.papers
        report = BuildReport(build_dir=index_dir, papers=len(papers), skipped=read.skipped)
        prev = None if full else _load_previous(index_dir, settings)
        chunks, reuse_rows, new_idx, hashes = _plan(papers, prev, settings, report, steps.chunk)
        report.seconds["read_chunk"] = time.perf_counter() - t0
        titles = {p.paper_id: p.title for p in papers}
        texts = [chunks[i].embed_text(titles[chunks[i].paper_id]) for i in new_idx]
        t1 = time.perf_counter()
        # With nothing new to embed, the model need not even be loaded.
        new_vecs = steps.embed(texts, settings, progress, report) if texts else None
        report.seconds["embed"] = time.perf_counter() - t1
        dim = new_vecs.shape[1] if new_vecs is not None else prev.embeddings.shape[1]
        emb = np.zeros((len(chunks), dim), dtype=np.float32)
        if new_idx:
            emb[new_idx] = new_vecs
        if reuse_rows:
            dst, src = zip(*reuse_rows)
            emb[list(dst)] = prev.embeddings[list(src)]
        report.chunks, report.embedded, report.reused = len(chunks), len(new_idx), len(reuse_rows)
        manifest = {
            **store.shaping_settings(settings, dim),
            "sources": [str(s) for s in sources],
            "paper_hashes": hashes,
            "skipped": read.skipped,
        }
        t2 = time.perf_counter()
        stage = store.new_stage(index_dir)
        try:
            store.write_build(stage, papers, chunks, emb, manifest, backend=backend)
            report.build_dir = store.publish(index_dir, stage)
        except BaseException:
            shutil.rmtree(stage, ignore_errors=True)
            raise
        report.seconds["write"] = time.perf_counter() - t2
    report.seconds["total"] = time.perf_counter() - t0
    return report

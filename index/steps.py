"""The seam between a build and where its steps run: what a build did (`BuildReport`) and
how it reads, chunks and embeds (`BuildSteps`); index/build.py runs them in process,
index/ray_build.py supplies Ray-distributed ones."""
from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from index.chunking import chunk_papers
from index.readers import ReadReport, iter_papers
from index.staging import PAGE, BatchEmbedder, Chunker
from rag.config import Settings
from rag.embedder import load_embedder
from rag.types import Paper


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
    batches: int = 0
    resumed_batches: int = 0
    seconds: dict[str, float] = field(default_factory=dict)


def embed_in_process(settings: Settings, report: BuildReport) -> BatchEmbedder:
    """Batches embedded here with the configured model (loaded on first use, so a build with
    nothing new never loads it); counts over-long texts on `report`."""
    def embed(batches: Iterable[tuple[int, list[str]]]) -> Iterator[tuple[int, np.ndarray]]:
        for j, texts in batches:
            embedder = load_embedder(settings.embedder.model)
            report.over_limit += sum(embedder.count_tokens(t) > embedder.max_tokens for t in texts)
            yield j, embedder.embed(texts, batch_size=settings.embedder.batch_size)
    return embed


@dataclass(frozen=True)
class BuildSteps:
    """How a build reads, chunks and embeds; index/ray_build.py supplies Ray-distributed ones.

    Each step gives what the in-process one gives: the files' papers in reading order
    (duplicates included; the stage merges them), the chunks of a list of papers numbered
    from 0 in paper order, and each batch's vectors in the order of its texts.
    """

    read: Callable[[list[Path], ReadReport], Iterable[Paper]] = iter_papers
    chunk: Chunker = chunk_papers
    embed: Callable[[Settings, BuildReport], BatchEmbedder] = embed_in_process
    plan_page: int = PAGE  # papers chunked per call of `chunk`

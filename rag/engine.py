"""The loaded parts a question needs (index, embedder, retriever, term weights), cached per process."""
from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

from rag.config import Settings
from rag.embedder import Embedder, load_embedder
from rag.evidence import TermWeights
from rag.retrieval import HybridRetriever
from rag.store import LoadedIndex, current_build, load_index

log = logging.getLogger(__name__)


@dataclass
class Engine:
    settings: Settings
    index: LoadedIndex
    embedder: Embedder
    retriever: HybridRetriever
    weights: TermWeights


_engines: dict[str, Engine] = {}
_lock = threading.Lock()


def get_engine(settings: Settings) -> Engine:
    """The engine for these settings, reloaded when a rebuild has published a new index.

    Raises IndexMissingError, IndexMismatchError or IndexCorruptError; never rebuilds.
    """
    key = settings.model_dump_json()
    with _lock:
        engine = _engines.get(key)
        if engine is not None and current_build(settings.index_dir) == engine.index.path:
            return engine
        index = load_index(settings.index_dir, settings)
        embedder = load_embedder(settings.embedder.model)
        engine = Engine(settings, index, embedder,
                        HybridRetriever(index, embedder, settings.retrieval),
                        TermWeights.from_bm25(index.bm25))
        _engines[key] = engine
        log.info("loaded index %s (%d chunks)", index.path, len(index.chunks))
        return engine

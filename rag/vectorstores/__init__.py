"""The vector-store seam: where a build's chunk vectors live and how they are searched.

One backend per file, chosen by `index.vector_uri`:

    ""                      faiss   FAISS files inside the build folder (the default)
    a path ending in .db    milvus  embedded Milvus Lite, one file
    http(s)://host:19530    milvus  a Milvus server or cluster, same code

Builds are immutable (see rag.store): a backend writes one build's vectors once, opens
them for search, and drops them when the build is retired. Adding, changing and deleting
papers therefore happen as a new build that reuses unchanged vectors and is published
atomically; every backend passes the same contract suite (tests/test_vectorstores.py).

Every backend searches by inner product over L2-normalised vectors (scores are cosines)
and takes the metadata filters of rag.filters: FAISS restricts the search to the rows the
build's records select, Milvus pushes them down into a filter expression.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path

from rag.config import IndexSettings
from rag.errors import VectorStoreError
from rag.vectorstores.base import EXTERNAL_NOTE, RowFields, RowsWhere, VectorBackend, VectorSearcher

__all__ = ["EXTERNAL_NOTE", "RowFields", "RowsWhere", "VectorBackend", "VectorSearcher",
           "backend_for", "backend_name", "drop_retired", "make_backend"]

log = logging.getLogger(__name__)


def backend_name(uri: str) -> str:
    """Which backend a `index.vector_uri` value selects: faiss or milvus."""
    return "milvus" if uri else "faiss"


def make_backend(settings: IndexSettings) -> VectorBackend:
    """The backend the index settings ask for, connected (a build calls this before it
    embeds anything). Raises VectorStoreError or ConfigError for an unusable Milvus URI."""
    if backend_name(settings.vector_uri) == "milvus":
        from rag.vectorstores.milvus_store import MilvusBackend

        return MilvusBackend(settings.vector_uri, connect=True)
    from rag.vectorstores.faiss_store import FaissBackend

    return FaissBackend(settings.ann, settings.ann_threshold)


def backend_for(section: dict) -> VectorBackend:
    """The backend that wrote a manifest's "vector_store" section (for opening and dropping)."""
    if section.get("backend") == "milvus":
        from rag.vectorstores.milvus_store import MilvusBackend

        return MilvusBackend(section["uri"])
    from rag.vectorstores.faiss_store import FaissBackend

    return FaissBackend()


def drop_retired(build: Path, vector_uri: str) -> None:
    """Drop what a retired build keeps outside its folder (a Milvus collection), found in its
    manifest or, for a build killed while writing, in the note its backend left first.

    Only a collection at `vector_uri`, the configured one, is dropped: an address that only
    an old manifest names is never contacted. Failures are logged, not raised."""
    try:
        try:
            section = json.loads((build / "manifest.json").read_text(encoding="utf-8"))["vector_store"]
        except FileNotFoundError:
            section = json.loads((build / EXTERNAL_NOTE).read_text(encoding="utf-8"))
        if section.get("backend") != "milvus":
            return
        if not vector_uri or not _same_uri(section, vector_uri):
            log.info("left the vectors of retired build %s at %s alone: not the configured "
                     "index.vector_uri", build.name, section.get("uri"))
            return
        backend_for(section).drop(build, section)
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        pass  # the build never reached an external store
    except VectorStoreError as e:
        log.warning("could not drop the vectors of retired build %s: %s", build.name, e)


def _same_uri(section: dict, vector_uri: str) -> bool:
    """A manifest section's Milvus address is the configured one (as written and resolved)."""
    from rag.vectorstores.milvus_store import resolve_uri

    want = resolve_uri(vector_uri)
    return section.get("uri") == vector_uri and section.get("resolved_uri", want) == want

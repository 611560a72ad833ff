r"""The Milvus backend: a build's vectors in one Milvus collection, by URI.

    index.vector_uri = ~/askpapers/vectors.db     embedded Milvus Lite (a folder ending in .db)
    index.vector_uri = http://host:19530          a Milvus server or cluster, same code

One collection per build, named from the index folder and the build folder
(`askpapers_<index hash>_<build stamp>`), so a build writes its own collection while readers
search the live one, and publishing stays the atomic swap of CURRENT (rag.store). The
collection holds `row` (INT64 primary key = chunk row), `vector` (FLOAT_VECTOR, IP metric
over L2-normalised vectors, so scores are cosines as in FAISS) and the filter fields of
rag.filters.filter_fields (`paper_id`, `year`, `authors`, `categories`, `sources`).
Records, bm25/ and embeddings.npy stay in the local build folder: embeddings.npy feeds
incremental builds and `reconstruct_batch` without a round trip.

Index: FLAT (exact) on Milvus Lite, whose FLAT is a NumPy scan and whose AUTOINDEX is a
FAISS HNSW that would make results differ from FAISS flat; AUTOINDEX on a server, where
Milvus picks and tunes a graph index for the cluster's size (exact search over 6.5M
vectors per query is the wrong default there).

Filters are pushed down as a Milvus expression with the semantics of
rag.filters.fields_match: `year == N`, substrings as `like "%...%"`, a category as
`like "%\t<cat>\t%"`. Quotes and backslashes are escaped in the string literal. LIKE
itself cannot be escaped portably (Milvus Lite accepts `\%`, the Milvus server documents
`%` and `_` as always wildcards: milvus-io/milvus-docs#2525), so a value containing `%`,
`_` or `\` is never put in a LIKE: that one filter becomes `row in [...]` over the rows
the build's local records select. Nothing user-typed can widen or break the expression.

Hybrid search keeps our bm25s keyword index beside Milvus (local, like the records).
Milvus Lite 3.2 does support BM25 (a sparse field filled by a BM25 function), so both were
measured on the dev set, each fused with the same dense ranking by HybridRetriever's
paper-level RRF (bench/vectorstore_bench.py --hybrid, 35 answerable questions, seeds):
recall@5 1.000 / MRR 1.000 with bm25s and 1.000 / 1.000 with Milvus BM25 (dense alone:
0.971 / 0.953), at p50 42 ms vs 157 ms per question. Equal quality (the small dev set is
saturated), ~4x slower, the chunk text stored twice, and a second keyword engine with
another tokenizer than the evidence scoring uses: not better, so not used.

Milvus Lite takes an exclusive lock on its folder: one process at a time. A second
process (the UI serving while `askpapers index build` runs) gets a VectorStoreError
saying so; run builds with the UI stopped, or use a Milvus server, which has no such limit.
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import re
import threading
from pathlib import Path

import numpy as np

from rag.errors import ConfigError, IndexCorruptError, MissingExtraError, VectorStoreError
from rag.filters import SEP, active
from rag.vectorstores.base import EXTERNAL_NOTE

log = logging.getLogger(__name__)

PREFIX = "askpapers_"
INSERT_BATCH = 2_000  # rows per insert: ~3 MB of vectors at 384-d, under gRPC's 64 MB cap
MAX_VARCHAR = 65_535  # bytes; Milvus's VARCHAR limit
MAX_TOPK = 16_384  # Milvus refuses larger limits
_LIKE_UNSAFE = ("%", "_", "\\")
_REBUILD = "run: askpapers index build --full"
_INSTALL = ("Milvus support is not installed; run: pip install 'askpapers[scale]' "
            "(or set index.vector_uri to '' to keep vectors in FAISS files)")

_clients: dict[str, object] = {}
_clients_lock = threading.Lock()


def is_lite(uri: str) -> bool:
    """True for a Milvus Lite path, False for a server URL."""
    return not re.match(r"^(https?|tcp|unix):", uri, re.I)


def resolve_uri(uri: str) -> str:
    """A Lite path made absolute (with ~ expanded); a server URL unchanged.

    Raises ConfigError for a path that does not end in .db.
    """
    if not is_lite(uri):
        return uri
    if not uri.endswith(".db"):
        raise ConfigError(f"index.vector_uri {uri!r} is neither http://host:19530 nor a "
                          "Milvus Lite path ending in .db; fix ASKPAPERS_INDEX__VECTOR_URI.")
    return str(Path(uri).expanduser().absolute())


def collection_name(build: Path) -> str:
    """The collection of a build folder (a stage or its published name: the same)."""
    index_dir = build.resolve().parent.parent
    tag = hashlib.sha256(str(index_dir).encode()).hexdigest()[:8]
    stamp = re.sub(r"[^0-9A-Za-z_]", "_", build.name.removeprefix(".tmp-"))
    return f"{PREFIX}{tag}_{stamp}"


def _quiet() -> None:
    # pymilvus logs every failed call at ERROR; the typed errors below carry the message.
    logging.getLogger("pymilvus").setLevel(logging.CRITICAL)
    logging.getLogger("milvus_lite").setLevel(logging.WARNING)
    # Milvus Lite serves gRPC inside this process and lacks a few calls pymilvus makes
    # (AllocTimestamp after creating an index); grpc logs each as an ERROR with a traceback.
    logging.getLogger("grpc._server").setLevel(logging.CRITICAL)


def _lite_locked(path: str) -> bool:
    """True when another process holds Milvus Lite's lock on `path`."""
    try:
        fd = os.open(os.path.join(path, "LOCK"), os.O_RDWR)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    except OSError:
        return True
    finally:
        os.close(fd)


def _unreachable(uri: str, detail: str) -> VectorStoreError:
    if is_lite(uri):
        if _lite_locked(uri):
            return VectorStoreError(
                f"Milvus Lite file {uri} is open in another process (Lite allows one process "
                "per file); stop the other askpapers process (e.g. askpapers serve) and retry, "
                "or use a Milvus server: ASKPAPERS_INDEX__VECTOR_URI=http://host:19530")
        return VectorStoreError(f"Cannot open Milvus Lite at {uri} ({detail}); check the folder "
                                f"is writable and not damaged, or {_REBUILD} with another path.")
    return VectorStoreError(
        f"Cannot reach Milvus at {uri} ({detail}); check the server is running "
        "(docker compose ps in its folder) and that index.vector_uri / "
        "ASKPAPERS_INDEX__VECTOR_URI names it, then retry.")


def client(uri: str):
    """A shared MilvusClient for a resolved URI. Raises VectorStoreError, or MissingExtraError
    when pymilvus is not installed."""
    try:
        from pymilvus import MilvusClient, MilvusException
        if is_lite(uri):
            import milvus_lite  # noqa: F401  (pymilvus needs it for .db paths)
    except ImportError:
        raise MissingExtraError(_INSTALL) from None
    _quiet()
    with _clients_lock:
        if uri not in _clients:
            if is_lite(uri):
                Path(uri).parent.mkdir(parents=True, exist_ok=True)
            try:
                _clients[uri] = MilvusClient(uri=uri, timeout=10)
            except MilvusException as e:
                raise _unreachable(uri, getattr(e, "message", str(e))) from None
        return _clients[uri]


def release(uri: str) -> None:
    """Close this process's client for `uri` and, for Milvus Lite, its lock on the file,
    so another process can open it."""
    uri = resolve_uri(uri)
    with _clients_lock:
        c = _clients.pop(uri, None)
    if c is not None:
        c.close()
    if is_lite(uri):
        from milvus_lite.server_manager import server_manager_instance

        server_manager_instance.release_server(uri)


def _call(uri: str, what: str, fn, *args, **kwargs):
    """Run one client call, turning Milvus failures into VectorStoreError."""
    from pymilvus import MilvusException

    try:
        return fn(*args, **kwargs)
    except MilvusException as e:
        detail = getattr(e, "message", str(e))
        if getattr(e, "code", None) == 2 or "unavailable" in detail.lower():
            raise _unreachable(uri, detail) from None
        raise VectorStoreError(f"Milvus at {uri} refused to {what}: {detail}") from None


def _schema(dim: int):
    from pymilvus import DataType, MilvusClient

    schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
    schema.add_field("row", DataType.INT64, is_primary=True)
    schema.add_field("vector", DataType.FLOAT_VECTOR, dim=dim)
    schema.add_field("paper_id", DataType.VARCHAR, max_length=1_024)
    schema.add_field("year", DataType.INT64)
    for name in ("authors", "categories", "sources"):
        schema.add_field(name, DataType.VARCHAR, max_length=MAX_VARCHAR)
    return schema


def _fit(text: str, limit: int = MAX_VARCHAR) -> str:
    """Text cut to `limit` UTF-8 bytes at a character boundary (a 3,000-author paper)."""
    raw = text.encode()
    if len(raw) <= limit:
        return text
    log.warning("a filter field of %d bytes was cut to %d for Milvus", len(raw), limit)
    return raw[:limit].decode(errors="ignore")


def _string(text: str) -> str:
    """A Milvus string literal holding `text` exactly."""
    escaped = (text.replace("\\", "\\\\").replace('"', '\\"')
               .replace("\n", "\\n").replace("\r", "\\r"))
    return f'"{escaped}"'


def filter_expression(filters: dict, rows_where=None) -> str | None:
    """A Milvus expression with the meaning of rag.filters.fields_match for active `filters`;
    "" for no filter, None when a fallback row list shows nothing can match."""
    clauses = []
    for key, want in filters.items():
        if key == "year":
            clauses.append(f"year == {int(want)}")
            continue
        field, pattern = {"author": ("authors", want), "source": ("sources", want),
                          "category": ("categories", f"{SEP}{want}{SEP}")}[key]
        if any(ch in want for ch in _LIKE_UNSAFE):
            rows = np.asarray(rows_where({key: want}), dtype=np.int64)
            if not len(rows):
                return None
            clauses.append(f"row in [{','.join(map(str, rows.tolist()))}]")
        else:
            clauses.append(f"{field} like {_string(f'%{pattern}%')}")
    return " and ".join(f"({c})" for c in clauses)


class MilvusSearcher:
    """One build's collection, loaded for search; vectors for re-use read from embeddings.npy."""

    def __init__(self, uri: str, collection: str, embeddings: np.ndarray, rows_where=None):
        self.uri, self.collection = uri, collection
        self.embeddings, self.rows_where = embeddings, rows_where
        self._client = client(uri)
        stats = _call(uri, "describe a collection", self._client.get_collection_stats, collection)
        self.ntotal, self.d = int(stats["row_count"]), int(embeddings.shape[1])

    def search(self, x: np.ndarray, k: int, filters: dict | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Top-k cosines and rows per query row, -1 where fewer than k rows qualify."""
        x = np.ascontiguousarray(x, dtype=np.float32)
        scores = np.full((len(x), k), -np.inf, dtype=np.float32)
        ids = np.full((len(x), k), -1, dtype=np.int64)
        expr = filter_expression(active(filters), self.rows_where)
        if expr is None or not len(x):
            return scores, ids
        hits = _call(self.uri, "search", self._client.search, self.collection,
                     data=list(x), filter=expr, limit=min(k, MAX_TOPK), anns_field="vector",
                     search_params={"metric_type": "IP"}, output_fields=[])
        for q, row in enumerate(hits):
            for j, hit in enumerate(row):
                ids[q, j], scores[q, j] = hit["row"], hit["distance"]
        return scores, ids

    def reconstruct_batch(self, rows) -> np.ndarray:
        """The stored vectors of these rows, from the build's embeddings.npy."""
        return np.asarray(self.embeddings[np.asarray(rows, dtype=np.int64)], dtype=np.float32)


class MilvusBackend:
    """Vectors in Milvus (Lite by path, a server by URL); one collection per build."""

    name = "milvus"

    def __init__(self, uri: str, *, connect: bool = False):
        self.uri = uri
        if connect:  # fail before a build spends minutes embedding
            client(resolve_uri(uri))

    def _index(self, resolved: str) -> dict:
        return {"index_type": "FLAT" if is_lite(resolved) else "AUTOINDEX", "metric_type": "IP"}

    def write(self, build: Path, embeddings: np.ndarray, fields) -> dict:
        """Insert every row into a new collection for the build and load it; returns the
        manifest section. A failed write drops its partial collection. Raises VectorStoreError."""
        uri = resolve_uri(self.uri)
        c, name = client(uri), collection_name(build)
        index = self._index(uri)
        section = {"backend": self.name, "uri": self.uri, "resolved_uri": uri, "collection": name,
                   "metric": "IP", **{k: v for k, v in index.items() if k != "metric_type"}}
        (build / EXTERNAL_NOTE).write_text(json.dumps(section), encoding="utf-8")
        if _call(uri, "list collections", c.has_collection, name):
            _call(uri, "drop a leftover collection", c.drop_collection, name)
        params = c.prepare_index_params()
        params.add_index("vector", **index)
        _call(uri, "create a collection", c.create_collection, name,
              schema=_schema(int(embeddings.shape[1])), index_params=params)
        try:
            self._insert(uri, c, name, embeddings, fields)
            _call(uri, "flush", c.flush, name)
            _call(uri, "load a collection", c.load_collection, name)
        except BaseException:
            try:
                self._drop(uri, name)
            except VectorStoreError as e:
                log.warning("could not drop the partial collection %s: %s", name, e)
            raise
        return {**section, "rows": int(len(embeddings))}

    @staticmethod
    def _insert(uri: str, c, name: str, embeddings: np.ndarray, fields) -> None:
        for lo in range(0, len(embeddings), INSERT_BATCH):
            hi = min(lo + INSERT_BATCH, len(embeddings))
            vectors = np.asarray(embeddings[lo:hi], dtype=np.float32)  # one slice of the memory map
            rows = fields(lo, hi)
            for r, v in zip(rows, vectors, strict=True):
                r["vector"] = v
                for key in ("authors", "categories", "sources"):
                    r[key] = _fit(r[key])
            _call(uri, "insert rows", c.insert, name, rows)

    def open(self, build: Path, section: dict, embeddings: np.ndarray, rows_where=None) -> MilvusSearcher:
        """The build's collection, loaded. Raises IndexCorruptError or VectorStoreError."""
        uri = section.get("resolved_uri") or resolve_uri(section.get("uri", self.uri))
        name = section.get("collection", "")
        c = client(uri)
        if not _call(uri, "list collections", c.has_collection, name):
            raise IndexCorruptError(f"Milvus at {uri} has no collection {name!r} for index build "
                                    f"{build}; {_REBUILD}")
        _call(uri, "load a collection", c.load_collection, name)
        return MilvusSearcher(uri, name, embeddings, rows_where)

    def drop(self, build: Path, section: dict) -> None:
        """Drop the build's collection. Raises VectorStoreError."""
        uri = section.get("resolved_uri") or resolve_uri(section.get("uri", self.uri))
        self._drop(uri, section.get("collection") or collection_name(build))

    @staticmethod
    def _drop(uri: str, name: str) -> None:
        c = client(uri)
        if _call(uri, "list collections", c.has_collection, name):
            _call(uri, "drop a collection", c.drop_collection, name)

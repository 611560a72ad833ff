"""The on-disk index format, read side: the layout, the manifest, loading and checking.

The write side is rag/publish.py (seal a staged build, switch CURRENT, lock, retention);
index/staging.py creates, fills and resumes the stages a build is written into.
Layout under the index directory:

    CURRENT              name of the live build (replaced atomically)
    .lock                held by a running build
    builds/<name>/       one complete build:
        manifest.json    settings that shaped it, per-paper hashes, every file's size and
                         content hash (rag/integrity.py), versions, counts
        records.sqlite   papers and chunks (rag/records.py), chunk row i = vector i
        embeddings.npy   float32 (n_chunks, dim), L2-normalised
        vectors.faiss    FAISS inner-product index over the same rows (FAISS backend; a
                         Milvus backend keeps them in a collection named in the manifest)
        bm25/            bm25s keyword index over each chunk's rag.types.embed_text
    builds/.tmp-*/       a build in progress (index/staging.py); never read. The next build
                         resumes the one whose plan matches its own and removes the rest.

Everything is data (JSON, SQLite, NumPy without pickles, FAISS and bm25s' own array files):
nothing here runs code when loaded. A build becomes visible only when CURRENT is
replaced, so readers see the old build or the new one, never a half-written one.
A build folder is a sealed box (rag/integrity.py): loading refuses symbolic links, files
the manifest does not list and files whose size or hash differ, and checks the manifest's
counts and dimension against the records and vectors; `verify_index` checks in full.
"""
from __future__ import annotations

import functools
import json
import logging
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from rag import integrity
from rag import records as rec
from rag.config import Settings
from rag.errors import IndexCorruptError, IndexMismatchError, IndexMissingError
from rag.filters import active
from rag.types import Chunk
from rag.vectorstores import VectorSearcher, backend_for, backend_name

log = logging.getLogger(__name__)

FORMAT_VERSION = 5  # 3: files carry content hashes; 4: papers carry doi, arxiv_id, url;
# 5: keyword tokens drop accents
_REBUILD = "run: askpapers index build --full"
# Sections every manifest has; readers index into them without further checks.
_MANIFEST_SECTIONS = ("files", "counts", "embedder", "chunking", "paper_hashes")


@dataclass
class LoadedIndex:
    """A build read back from disk, ready for search; records stay on disk (SQLite).

    `papers` is a read-only Mapping paper_id -> Paper and `chunks` a Sequence (row i =
    vector i), both read on demand; safe to share between threads.
    """

    path: Path
    manifest: dict
    papers: rec.PaperRecords
    chunks: rec.ChunkRecords
    vectors: VectorSearcher
    bm25: object  # bm25s.BM25
    records: rec.Records = field(repr=False, default=None)

    def chunks_of(self, paper_id: str) -> list[Chunk]:
        """All chunks of one paper, in text order."""
        return self.chunks.of_paper(paper_id)

    def paper_ids_of(self, rows) -> list[str]:
        """The paper id of each chunk row, in order (one query). Raises IndexError for an unknown row."""
        return self.chunks.paper_ids_of(rows)

    def __post_init__(self):
        # Dense and keyword search of one question (and the next questions of a filtered
        # chat) ask for the same rows: the query runs once per distinct filters.
        self._rows_where = functools.lru_cache(maxsize=8)(self._select_rows)

    def _select_rows(self, key: tuple) -> np.ndarray:
        rows = rec.rows_where(self.records, dict(key))
        rows.flags.writeable = False  # shared by every caller of the cache
        return rows

    def rows_where(self, filters: dict | None) -> np.ndarray:
        """Sorted chunk rows (int64, read-only) whose paper passes the metadata filters,
        decided in SQL with the semantics of rag.filters.paper_matches. Raises QuestionError
        for a bad filter."""
        return self._rows_where(tuple(sorted(active(filters).items())))


def shaping_settings(settings: Settings, embedder_dim: int | None = None) -> dict:
    """The settings that change what an index contains; recorded in and checked against manifests."""
    shaped = {
        "embedder": {"model": settings.embedder.model},
        "chunking": settings.chunking.model_dump(),
        "format_version": FORMAT_VERSION,
    }
    if embedder_dim is not None:
        shaped["embedder"]["dim"] = embedder_dim
    return shaped


def mismatches(manifest: dict, settings: Settings) -> list[str]:
    """Human-readable differences between an index's manifest and the current settings."""
    return embedding_mismatches(manifest, settings) + _vector_mismatches(
        manifest.get("vector_store", {}), settings)


def embedding_mismatches(manifest: dict, settings: Settings) -> list[str]:
    """The differences that make an index's embeddings unusable; where the vectors live is
    not one (switching vector stores rebuilds the vectors from embeddings.npy)."""
    want = shaping_settings(settings)
    out = []
    if manifest.get("format_version") != FORMAT_VERSION:
        out.append(f"index format {manifest.get('format_version')} != {FORMAT_VERSION}")
    got_model = manifest.get("embedder", {}).get("model")
    if got_model != want["embedder"]["model"]:
        out.append(f"embedder.model: index {got_model!r}, settings {want['embedder']['model']!r}")
    for key, value in want["chunking"].items():
        got = manifest.get("chunking", {}).get(key)
        if got != value:
            out.append(f"chunking.{key}: index {got!r}, settings {value!r}")
    return out


def _vector_mismatches(section: dict, settings: Settings) -> list[str]:
    """Where the vectors live and how they are indexed, against the settings."""
    uri, ann = settings.index.vector_uri, settings.index.ann
    backend = section.get("backend", "faiss")
    if backend != backend_name(uri) or (backend == "milvus" and section.get("uri") != uri):
        where = f"milvus at {section.get('uri')}" if backend == "milvus" else "faiss"
        want = f"milvus at {uri}" if uri else "faiss"
        return [f"index.vector_uri: index vectors are in {where}, settings say {want} "
                "(switching vector stores is a rebuild)"]
    if backend == "faiss" and ann != "auto" and section.get("kind") != ann:
        return [f"index.ann: index is {section.get('kind')!r}, settings {ann!r}"]
    return []


# ---------------------------------------------------------------- locating builds

def current_build(index_dir: Path) -> Path | None:
    """The live build's folder, or None when nothing has been published."""
    pointer = index_dir / "CURRENT"
    try:
        name = pointer.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    except OSError as e:
        raise IndexCorruptError(f"Cannot read {pointer}: {e.strerror}; {_REBUILD}") from None
    build = index_dir / "builds" / name
    if not name or "/" in name or name.startswith(".") or not build.is_dir():
        raise IndexCorruptError(f"{pointer} names a missing build {name!r}; {_REBUILD}")
    integrity.check_inside(index_dir, build)
    return build


def read_manifest(build: Path) -> dict:
    """A build's manifest. Raises IndexCorruptError if it is missing or malformed."""
    path = build / "manifest.json"
    integrity.check_inside(build, path)
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise IndexCorruptError(f"{path} is missing; {_REBUILD}") from None
    except (OSError, ValueError) as e:
        raise IndexCorruptError(f"{path} is unreadable ({e}); {_REBUILD}") from None
    if not isinstance(manifest, dict) or not all(
            isinstance(manifest.get(key), dict) for key in _MANIFEST_SECTIONS):
        raise IndexCorruptError(f"{path} is not an askpapers manifest; {_REBUILD}")
    return manifest


def check_format(manifest: dict, build: Path) -> None:
    """Refuse a build written in another format version. Raises IndexMismatchError."""
    got = manifest.get("format_version")
    if got != FORMAT_VERSION:
        raise IndexMismatchError(f"The index build {build} is in format {got}, this askpapers "
                                 f"reads format {FORMAT_VERSION}; {_REBUILD}")


def check_build(build: Path, manifest: dict, *, full: bool = False) -> int:
    """A build folder matches its manifest: exactly its files, no links, sizes and hashes
    (large files by sample unless `full`), the vector file one of them. Returns bytes
    checked. Raises IndexMismatchError (another format) or IndexCorruptError."""
    check_format(manifest, build)
    checked = integrity.check_build(build, manifest["files"], full=full)
    section = manifest.get("vector_store", {})
    if section.get("backend", "faiss") == "faiss" and section.get("file") not in manifest["files"]:
        raise IndexCorruptError(f"{build / 'manifest.json'} names a vector file "
                                f"{section.get('file')!r} that is not one of its files; {_REBUILD}")
    return checked


# ---------------------------------------------------------------- reading

def open_records(build: Path) -> rec.Records:
    """A build's records file, opened read-only. Raises IndexCorruptError."""
    path = build / rec.FILE
    try:
        records = rec.Records(path)
        records.one("SELECT count(*) FROM papers, chunks WHERE 0")
    except sqlite3.Error as e:
        raise IndexCorruptError(f"{path} is unreadable ({e}); {_REBUILD}") from None
    return records


def read_records(build: Path) -> tuple[rec.PaperRecords, rec.ChunkRecords]:
    """Papers and chunks of a build (no vectors), read on demand. Raises IndexCorruptError."""
    records = open_records(build)
    return rec.PaperRecords(records), rec.ChunkRecords(records, records.counts()["chunks"])


def read_embeddings(build: Path) -> np.ndarray:
    """A build's chunk vectors, memory-mapped, float32 (n_chunks, dim)."""
    try:
        return np.load(build / "embeddings.npy", mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError) as e:
        raise IndexCorruptError(f"{build / 'embeddings.npy'} is unreadable ({e}); {_REBUILD}") from None


def _open_vectors(build: Path, manifest: dict, rows_where) -> VectorSearcher:
    section = manifest.get("vector_store", {"backend": "faiss"})
    return backend_for(section).open(build, section, read_embeddings(build), rows_where)


def import_bm25s():
    """The bm25s module, imported on first use and kept quiet."""
    import bm25s

    # bm25s sets its own logger to DEBUG on import; keep the library quiet.
    logging.getLogger("bm25s").setLevel(logging.WARNING)
    return bm25s


def _read_bm25(build: Path):
    bm25s = import_bm25s()

    try:
        return bm25s.BM25.load(str(build / "bm25"), mmap=True, load_corpus=False)
    except (OSError, ValueError, KeyError) as e:
        raise IndexCorruptError(f"{build / 'bm25'} is unreadable ({e}); {_REBUILD}") from None


def load_index(index_dir: Path, settings: Settings | None = None) -> LoadedIndex:
    """Load the live build, checked against `settings` when given.

    Raises IndexMissingError (nothing built), IndexMismatchError (built with other
    settings) or IndexCorruptError (damaged files). Never rebuilds.
    """
    build = current_build(index_dir)
    if build is None:
        raise IndexMissingError(f"No index at {index_dir}; run: askpapers index build")
    manifest = read_manifest(build)
    check_format(manifest, build)
    if settings is not None and (diff := mismatches(manifest, settings)):
        raise IndexMismatchError(
            f"The index at {index_dir} was built with other settings ({'; '.join(diff)}); {_REBUILD}")
    check_build(build, manifest)
    records = open_records(build)
    n = manifest["counts"].get("chunks")
    loaded = LoadedIndex(build, manifest, rec.PaperRecords(records), rec.ChunkRecords(records, n or 0),
                         None, _read_bm25(build), records)
    loaded.vectors = _open_vectors(build, manifest, loaded.rows_where)
    _check_counts(build, manifest, records, loaded.vectors.ntotal)
    _check_dim(build, manifest, loaded.vectors)
    return loaded


def verify_index(index_dir: Path, settings: Settings | None = None) -> dict:
    """Check the live build in full: what load_index checks, every file's whole-content
    hash, SQLite's own integrity check, unit-length vectors, and (exact FAISS kinds) that
    the vector index holds the build's embeddings. Returns what was checked.

    Raises IndexMissingError, IndexMismatchError or IndexCorruptError naming the first problem."""
    index = load_index(index_dir, settings)
    checked = check_build(index.path, index.manifest, full=True)
    problem = index.records.one("PRAGMA integrity_check")[0]
    if problem != "ok":
        raise IndexCorruptError(f"{index.path / rec.FILE} fails SQLite's integrity check "
                                f"({problem}); {_REBUILD}")
    emb = read_embeddings(index.path)
    for lo in range(0, len(emb), 100_000):
        norms = np.linalg.norm(np.asarray(emb[lo:lo + 100_000], dtype=np.float32), axis=1)
        if len(bad := np.flatnonzero(np.abs(norms - 1) > 1e-3)):
            raise IndexCorruptError(f"Vector {lo + bad[0]} of {index.path / 'embeddings.npy'} is "
                                    f"not unit length (foreign or random vectors); {_REBUILD}")
    if index.manifest["vector_store"].get("kind") in ("flat", "hnsw") and len(emb):
        rows = np.unique(np.linspace(0, len(emb) - 1, 64).astype(np.int64))
        scores, _ = index.vectors.search(np.asarray(emb[rows]), 1)
        if np.any(scores[:, 0] < 0.999):
            raise IndexCorruptError(f"{index.path / 'vectors.faiss'} does not hold the vectors of "
                                    f"embeddings.npy; {_REBUILD}")
    return {"build": index.path.name, "files": len(index.manifest["files"]), "bytes": checked,
            "papers": len(index.papers), "chunks": len(index.chunks)}


def _check_dim(build: Path, manifest: dict, vectors: VectorSearcher) -> None:
    """The manifest's dimension is the embeddings' and the vector index's."""
    dim = manifest["embedder"].get("dim")
    emb = read_embeddings(build)
    if emb.ndim != 2 or emb.shape != (manifest["counts"].get("chunks"), dim) or vectors.d != dim:
        raise IndexCorruptError(f"Index {build} holds vectors of shape {emb.shape} (index: "
                                f"{vectors.d} wide) but its manifest says {dim}-d; {_REBUILD}")


def _check_counts(build: Path, manifest: dict, records: rec.Records, n_vectors: int) -> None:
    """Records, vectors and manifest agree: ids 0..n-1, no orphan chunks (SQL aggregates)."""
    try:
        c = records.counts()
    except sqlite3.Error as e:
        raise IndexCorruptError(f"{build / rec.FILE} is unreadable ({e}); {_REBUILD}") from None
    n = manifest["counts"].get("chunks")
    ids_ok = c["chunks"] == 0 or (c["min_id"] == 0 and c["max_id"] == c["chunks"] - 1)
    if not (c["chunks"] == n_vectors == n) or not ids_ok:
        raise IndexCorruptError(f"Index {build} has {c['chunks']} chunk records but "
                                f"{n_vectors} vectors (manifest: {n}); {_REBUILD}")
    if c["orphans"] or c["papers"] != manifest["counts"].get("papers"):
        raise IndexCorruptError(f"Index {build} has chunks of unknown papers; {_REBUILD}")


def size_on_disk(build: Path) -> int:
    """Bytes used by one build's files."""
    return sum(p.stat().st_size for p in build.rglob("*") if p.is_file())


def recorded_sources(manifest: dict) -> list[Path]:
    """The sources a build was made from, as its manifest records them."""
    return [Path(s) for s in manifest.get("sources", [])]


def index_info(settings: Settings) -> dict:
    """What the live index holds, as a dict (for `askpapers index info` and the UI).
    Raises IndexMissingError when nothing is built, IndexCorruptError for a damaged build."""
    build = current_build(settings.index_dir)
    if build is None:
        raise IndexMissingError(f"No index at {settings.index_dir}; run: askpapers index build")
    m = read_manifest(build)
    return {"index_dir": str(settings.index_dir), "build": build.name,
            "papers": m["counts"].get("papers"), "chunks": m["counts"].get("chunks"),
            "embedder": m["embedder"], "chunking": m["chunking"], "sources": m.get("sources", []),
            "vector_store": m.get("vector_store", {}), "built_at": m.get("built_at", "?"),
            "size_bytes": size_on_disk(build), "skipped": len(m.get("skipped", []))}

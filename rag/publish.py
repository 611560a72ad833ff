"""The write side of the index format (rag/store.py is the read side): seal, publish, retain.

A build is written into a stage folder under `builds/` (index/staging.py creates, fills,
resumes and names stages): its records.sqlite and embeddings.npy are there already;
`write_build` adds the vectors and the keyword index, seals every file into the manifest
and fsyncs them; `publish` makes it the live build with one atomic rename of CURRENT.
`BuildLock` keeps a second build out, and `remove_stale_builds` deletes what is no longer
live. Readers see the old build or the new one, never a half-written one.
"""
from __future__ import annotations

import datetime as dt
import fcntl
import json
import os
import shutil
import sqlite3
from collections.abc import Iterable
from importlib import metadata
from pathlib import Path

import numpy as np

from rag import integrity
from rag import records as rec
from rag.errors import IndexBusyError, IndexWriteError
from rag.faults import fsync_path, write_error
from rag.store import current_build, import_bm25s
from rag.text import keyword_tokens
from rag.types import embed_text
from rag.vectorstores import VectorBackend, drop_retired

_VERSIONED = ("faiss-cpu", "bm25s", "sentence-transformers", "tiktoken", "langchain-text-splitters")


class BuildLock:
    """An exclusive, non-blocking lock on an index directory, released when the process dies."""

    def __init__(self, index_dir: Path):
        self.path = index_dir / ".lock"
        self._fd: int | None = None

    def __enter__(self) -> BuildLock:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise IndexWriteError(f"Cannot write to {self.path.parent}: {e.strerror}; "
                                  "choose another --index-dir or fix its permissions.") from None
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._fd)
            raise IndexBusyError(f"Another build is running on {self.path.parent}; "
                                 "wait for it to finish, then try again.") from None
        return self

    def __exit__(self, *exc) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)


def remove_stale_builds(index_dir: Path, keep: Path | None = None, vector_uri: str = "") -> list[str]:
    """Delete temp builds (all but `keep`, a stage to resume) and builds no longer live;
    call under BuildLock. A retired build's Milvus collection is dropped only when it lives
    at `vector_uri` (the configured one): an address that only an old manifest names is
    never contacted."""
    builds = index_dir / "builds"
    live = current_build(index_dir) if (index_dir / "CURRENT").exists() else None
    removed = []
    for d in builds.iterdir() if builds.is_dir() else []:
        if d not in (live, keep):
            if not d.is_symlink():
                drop_retired(d, vector_uri)
            _remove(d)
            removed.append(d.name)
    return removed


def _remove(path: Path) -> None:
    """Delete a folder, or only the link when it is a symbolic link (never what it points at)."""
    if path.is_symlink() or not path.is_dir():
        path.unlink(missing_ok=True)
    else:
        shutil.rmtree(path, ignore_errors=True)


def _write_bm25(folder: Path, records_file: Path) -> None:
    """The keyword index over every chunk's embed text, streamed from the records file."""
    bm25s = import_bm25s()

    vocab: dict[str, int] = {}
    con = rec.Records(records_file).con()
    rows = con.execute("SELECT p.title, c.text FROM chunks c JOIN papers p ON p.paper_id = c.paper_id "
                       "ORDER BY c.chunk_id")
    ids = [[vocab.setdefault(t, len(vocab)) for t in keyword_tokens(embed_text(title, text)) or ["_"]]
           for title, text in rows]
    con.close()
    bm25 = bm25s.BM25()
    bm25.index((ids, vocab), show_progress=False)
    bm25.save(str(folder))


def _versions() -> dict[str, str]:
    out = {}
    for name in _VERSIONED:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def _write_searchers(stage: Path, embeddings: np.ndarray, backend: VectorBackend) -> tuple[dict, dict]:
    """The vectors (through `backend`) and the keyword index of a staged build; returns the
    manifest's vector_store section and the records' counts."""
    records = rec.Records(stage / rec.FILE)
    try:
        section = backend.write(stage, embeddings, records.row_fields)
        _write_bm25(stage / "bm25", stage / rec.FILE)
        return section, records.counts()
    finally:
        records.close()  # a failed write must leave no open file holding the stage's space


def write_build(stage: Path, embeddings: np.ndarray, manifest: dict, *,
                backend: VectorBackend | None = None, stage_only: Iterable[str] = ()) -> dict:
    """Finish the build staged in `stage` and return its final manifest.

    The stage holds records.sqlite and embeddings.npy (`embeddings`, memory-mapped) as
    index/staging.py wrote them; this writes the vectors (`backend`, default FAISS files;
    see rag.vectorstores) and the keyword index, removes the `stage_only` names (what only
    an unfinished build needs), then seals: `manifest` (shaping settings, sources, per-paper
    hashes) gains counts, file sizes and hashes, versions, where the vectors went and the
    build time, and every file is fsynced. Raises IndexWriteError or VectorStoreError.
    """
    from rag.vectorstores.faiss_store import FaissBackend

    backend = backend or FaissBackend()
    try:
        section, counts = _write_searchers(stage, embeddings, backend)
        for name in stage_only:
            _remove(stage / name)
        manifest = {
            **manifest,
            "vector_store": section,
            "counts": {"papers": counts["papers"], "chunks": counts["chunks"]},
            "files": integrity.seal(stage),
            "versions": _versions(),
            "built_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        }
        (stage / "manifest.json").write_text(json.dumps(manifest, indent=1), encoding="utf-8")
        for p in stage.rglob("*"):
            if p.is_file():
                fsync_path(p)
    except (OSError, sqlite3.Error, RuntimeError) as e:
        if (error := write_error(e, stage)) is None:
            raise
        raise error from None
    return manifest


def publish(index_dir: Path, stage: Path) -> Path:
    """Make a finished stage the live build with one atomic rename of CURRENT."""
    final = stage.with_name(stage.name.removeprefix(".tmp-"))
    os.replace(stage, final)
    pointer_tmp = index_dir / f".CURRENT.{os.getpid()}.tmp"
    pointer_tmp.write_text(final.name + "\n", encoding="utf-8")
    fsync_path(pointer_tmp)
    os.replace(pointer_tmp, index_dir / "CURRENT")
    fsync_path(index_dir)
    return final

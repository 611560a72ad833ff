"""A build's stage on disk, filled in resumable steps with bounded memory.

1. collect: stream the sources' papers into the stage's records.sqlite, merging duplicates
   (`merge_papers` is the same merge for a list in memory).
2. plan: walk the papers in paper_id order, reuse unchanged papers' chunks (and later
   their vectors) from the previous build, chunk the rest; number the chunks.
3. embed: embed the chunks to embed in fixed batches of `index.embed_batch` chunks, each
   saved as batches/<j>.npy once finished (an atomic rename), so a killed build resumes
   at the first missing batch.
4. assemble: fill embeddings.npy (memory-mapped) from the previous build and the batches.

Steps 1 and 2 each commit in one transaction with their done-marker, so a stage holds
either all of a step or none of it. What a stage may be resumed with is its plan.json
(`new_stage`, `resumable_stage`): the same source files (paths, sizes, mtimes), shaping
settings, batch size and previous build. `Stage.publish` is the one way a filled stage
becomes a build (rag.publish seals it and switches CURRENT); the scale bench uses it too.
This module owns the stage's lifecycle; rag/store.py and rag/publish.py own the format.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import os
import sqlite3
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

from index.chunking import chunk_papers
from rag import records as rec
from rag import store
from rag.config import ChunkSettings, Settings
from rag.errors import IndexWriteError
from rag.faults import is_disk_full, write_error
from rag.publish import publish, write_build
from rag.types import Chunk, Listing, Paper, embed_text
from rag.vectorstores import VectorBackend

log = logging.getLogger(__name__)

_STAGE_TABLES = """
CREATE TABLE IF NOT EXISTS _state (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS _reuse (chunk_id INTEGER PRIMARY KEY, prev_row INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS _todo (seq INTEGER PRIMARY KEY, chunk_id INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS _listings (paper_id TEXT NOT NULL, source TEXT NOT NULL,
    date TEXT NOT NULL, PRIMARY KEY (paper_id, source, date)) WITHOUT ROWID;
"""
# A paper read again keeps its first row, with the longer abstract of the two and the
# year, authors and identifiers (DOI, arXiv id, URL) the first row lacked (as
# index.identifiers.fill_missing does).
_UPSERT = (f"INSERT INTO papers VALUES {rec.PAPER_VALUES} ON CONFLICT(paper_id) DO UPDATE SET "
           "abstract = CASE WHEN length(excluded.abstract) > length(papers.abstract) "
           "THEN excluded.abstract ELSE papers.abstract END, "
           "year = coalesce(papers.year, excluded.year), "
           "authors = CASE WHEN papers.authors = '[]' THEN excluded.authors ELSE papers.authors END, "
           "authors_f = CASE WHEN papers.authors = '[]' THEN excluded.authors_f ELSE papers.authors_f END, "
           "doi = coalesce(nullif(papers.doi, ''), excluded.doi), "
           "arxiv_id = coalesce(nullif(papers.arxiv_id, ''), excluded.arxiv_id), "
           "url = coalesce(nullif(papers.url, ''), excluded.url)")
# Only in an unfinished stage: the plan that lets a later build resume it, and the
# finished embedding batches; removed before the build is sealed.
PLAN_FILE, BATCHES = "plan.json", "batches"
STAGE_ONLY = (PLAN_FILE, BATCHES)
PAGE = 1000  # papers per page while planning (each page's new papers are chunked together)
Chunker = Callable[[list[Paper], ChunkSettings], list[Chunk]]
# Vectors for (batch number, texts) pairs, yielded as (batch number, vectors) in any order.
BatchEmbedder = Callable[[Iterable[tuple[int, list[str]]]], Iterable[tuple[int, np.ndarray]]]


def content_hash(paper: Paper) -> str:
    """Hash of what gets embedded; metadata such as listings does not count."""
    return hashlib.sha256(f"{paper.title}\n{paper.abstract}".encode()).hexdigest()[:20]


def plan_of(files: list[Path], settings: Settings, full: bool, previous: Path | None) -> dict:
    """What a stage is a build of; a stage is resumed only by a build with an equal plan."""
    stats = [(str(f.resolve()), f.stat().st_size, f.stat().st_mtime_ns) for f in files]
    return {"sources": stats, "shaping": store.shaping_settings(settings),
            "embed_batch": settings.index.embed_batch, "full": full,
            "previous": None if previous is None else previous.name}


def resumable_stage(index_dir: Path, plan: dict) -> Path | None:
    """The newest unfinished stage whose plan.json equals `plan` (a build to resume), or None."""
    want = json.loads(json.dumps(plan))  # as read back: tuples become lists
    for stage in sorted((index_dir / "builds").glob(".tmp-*"), reverse=True):
        if stage.is_symlink():
            continue  # never write through a link out of the index folder (removed as stale)
        try:
            if json.loads((stage / PLAN_FILE).read_text(encoding="utf-8")) == want:
                return stage
        except (OSError, ValueError):
            continue
    return None


def new_stage(index_dir: Path, plan: dict | None = None) -> Path:
    """A fresh temp folder for a build under `builds/`, holding `plan` (what would let a later
    build resume it) when given. Raises IndexWriteError."""
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%f")
    stage = index_dir / "builds" / f".tmp-{stamp}-{os.getpid()}"
    try:
        stage.mkdir(parents=True)
        if plan is not None:
            tmp = stage / (PLAN_FILE + ".tmp")
            tmp.write_text(json.dumps(plan, sort_keys=True), encoding="utf-8")
            os.replace(tmp, stage / PLAN_FILE)
    except OSError as e:
        if is_disk_full(e, stage):
            raise write_error(e, stage) from None
        raise IndexWriteError(f"Cannot create {stage}: {e.strerror}; "
                              "choose another --index-dir or fix its permissions.") from None
    return stage


def _connect(path: Path | str) -> sqlite3.Connection:
    """A stage's records.sqlite (`path` the stage folder, or ":memory:") with the stage-only
    tables (closed again if that fails)."""
    con = rec.connect_writable(path if path == ":memory:" else path / rec.FILE)
    try:
        con.executescript(_STAGE_TABLES)
    except BaseException:
        con.close()
        raise
    return con


def _reserve(path: Path) -> None:
    """Allocate a (sparse) file's blocks now: on a full disk this raises ENOSPC here, where
    writing its memory-mapped pages later would kill the process with SIGBUS."""
    with open(path, "r+b") as f:
        os.posix_fallocate(f.fileno(), 0, os.fstat(f.fileno()).st_size)


def _merge_in(con: sqlite3.Connection, papers: Iterable[Paper]) -> None:
    """The one paper merge: papers into the `papers` table, de-duplicated by paper_id; a
    paper read again keeps its first row with the longer abstract, every listing, and the
    year, authors and identifiers the first row lacked.
    Listings go to a set table first and are folded in once all are read (so one title
    listed under 100,000 dates costs linear time, not quadratic)."""
    for p in papers:
        con.execute(_UPSERT, rec.paper_row(p))
        con.executemany("INSERT OR IGNORE INTO _listings VALUES (?, ?, ?)",
                        ((p.paper_id, x.source, x.date) for x in p.listings))
    ids = con.execute("SELECT paper_id FROM _listings GROUP BY paper_id HAVING count(*) > 1").fetchall()
    for (pid,) in ids:
        p = rec.paper_from_row(con.execute(
            f"SELECT {rec.PAPER_COLS} FROM papers WHERE paper_id = ?", (pid,)).fetchone())
        p.listings = [Listing(source, date) for source, date in con.execute(
            "SELECT source, date FROM _listings WHERE paper_id = ? ORDER BY source, date", (pid,))]
        con.execute(f"INSERT OR REPLACE INTO papers VALUES {rec.PAPER_VALUES}", rec.paper_row(p))


def merge_papers(papers: Iterable[Paper]) -> list[Paper]:
    """De-duplicate papers as a build's stage does (`_merge_in`), in memory; sorted by id."""
    con = _connect(":memory:")
    try:
        con.execute("BEGIN")
        _merge_in(con, papers)
        return [rec.paper_from_row(r) for r in con.execute(
            f"SELECT {rec.PAPER_COLS} FROM papers ORDER BY paper_id")]
    finally:
        con.close()


class Stage:
    """An unfinished build folder and its records.sqlite (with the stage-only tables)."""

    def __init__(self, path: Path, previous: Path | None, live: Path | None = None):
        """A stage at `path` reusing `previous` (a build, or None for none); papers are
        counted as added, changed or removed against `live` (default: `previous`), also
        when nothing is reused (a --full build)."""
        self.path = path
        try:
            self.con = _connect(path)
        except sqlite3.DatabaseError as e:  # a power cut mid-write: start this stage afresh
            if is_disk_full(e, path):
                raise
            (path / rec.FILE).unlink(missing_ok=True)
            self.con = _connect(path)
        self.previous, self.compared = previous, previous or live
        if self.compared is not None:
            self.con.execute("ATTACH DATABASE ? AS prev",
                             (f"{(self.compared / rec.FILE).resolve().as_uri()}?mode=ro",))
        (path / BATCHES).mkdir(exist_ok=True)

    def state(self, key: str):
        row = self.con.execute("SELECT value FROM _state WHERE key = ?", (key,)).fetchone()
        return None if row is None else json.loads(row[0])

    def _set(self, key: str, value) -> None:
        self.con.execute("INSERT OR REPLACE INTO _state VALUES (?, ?)", (key, json.dumps(value)))

    # ------------------------------------------------------------ 1. collect

    def collect(self, papers: Iterable[Paper], read_info: Callable[[], dict]) -> dict:
        """Stream papers into the stage, merged by paper_id; returns {papers, skipped, files}."""
        if (done := self.state("collected")) is not None:
            return done
        self.con.execute("BEGIN")
        self.con.execute("DELETE FROM papers")
        self.con.execute("DELETE FROM _listings")
        _merge_in(self.con, papers)
        n = self.con.execute("SELECT count(*) FROM papers").fetchone()[0]
        done = {"papers": n, **read_info()}
        self._set("collected", done)
        self.con.execute("COMMIT")
        return done

    # ------------------------------------------------------------ 2. plan

    def plan(self, settings: Settings, chunk: Chunker = chunk_papers, page: int = PAGE) -> dict:
        """Number every chunk, reusing unchanged papers' chunks and cutting the others with
        `chunk`, a page of papers at a time; returns the plan's counts."""
        if (done := self.state("planned")) is not None:
            return done
        self.con.execute("BEGIN")
        for table in ("chunks", "_reuse", "_todo"):
            self.con.execute(f"DELETE FROM {table}")
        counts = {"fresh": 0, "added": 0, "changed": 0, "next_id": 0, "next_seq": 0}
        for papers in self._pages(page):
            before = {p.paper_id: self._hash_before(p.paper_id) for p in papers}
            for p in papers:
                counts["added"] += before[p.paper_id] is None
                counts["changed"] += before[p.paper_id] not in (None, content_hash(p))
            old = {p.paper_id: self._previous_chunks(p, before[p.paper_id]) for p in papers}
            fresh = [p for p in papers if not old[p.paper_id]]
            new: dict[str, list[Chunk]] = {}
            for c in chunk(fresh, settings.chunking) if fresh else []:
                new.setdefault(c.paper_id, []).append(c)
            for p in papers:
                self._plan_paper(p, old[p.paper_id], new.get(p.paper_id, []), counts)
        done = {key: counts[key] for key in ("fresh", "added", "changed")} | self._count_plan()
        self._set("planned", done)
        self.con.execute("COMMIT")
        return done

    def _pages(self, page: int):
        last = ""
        while True:
            rows = self.con.execute(f"SELECT {rec.PAPER_COLS} FROM papers WHERE paper_id > ? "
                                    "ORDER BY paper_id LIMIT ?", (last, page)).fetchall()
            if not rows:
                return
            last = rows[-1][0]
            yield [rec.paper_from_row(r) for r in rows]

    def _plan_paper(self, p: Paper, old: list[Chunk], new: list[Chunk], counts: dict) -> None:
        self.con.execute("UPDATE papers SET hash = ? WHERE paper_id = ?", (content_hash(p), p.paper_id))
        next_id = counts["next_id"]
        chunks = [Chunk(next_id + i, p.paper_id, c.start, c.end, c.text)
                  for i, c in enumerate(old or new)]
        if old:
            self.con.executemany("INSERT INTO _reuse VALUES (?, ?)",
                                 ((c.chunk_id, o.chunk_id) for c, o in zip(chunks, old, strict=True)))
        else:
            self.con.executemany("INSERT INTO _todo VALUES (?, ?)",
                                 ((counts["next_seq"] + i, c.chunk_id) for i, c in enumerate(chunks)))
            counts["next_seq"] += len(chunks)
            counts["fresh"] += 1
        rec.insert_chunks(self.con, chunks)
        counts["next_id"] += len(chunks)

    def _hash_before(self, paper_id: str) -> str | None:
        """The paper's content hash in the build compared against, None if it was not there."""
        if self.compared is None:
            return None
        row = self.con.execute("SELECT hash FROM prev.papers WHERE paper_id = ?", (paper_id,)).fetchone()
        return None if row is None else row[0]

    def _previous_chunks(self, p: Paper, hash_before: str | None) -> list[Chunk]:
        """The previous build's chunks of `p` if its text is unchanged, else []."""
        if self.previous is None or hash_before != content_hash(p):
            return []
        return [Chunk(*r) for r in self.con.execute(
            f"SELECT {rec.CHUNK_COLS} FROM prev.chunks WHERE paper_id = ? ORDER BY chunk_id",
            (p.paper_id,))]

    def _count_plan(self) -> dict:
        one = lambda sql: self.con.execute(sql).fetchone()[0]  # noqa: E731
        removed = 0 if self.compared is None else one(
            "SELECT count(*) FROM prev.papers WHERE paper_id NOT IN (SELECT paper_id FROM main.papers)")
        return {"chunks": one("SELECT count(*) FROM chunks"), "embed": one("SELECT count(*) FROM _todo"),
                "reused": one("SELECT count(*) FROM _reuse"), "removed": removed}

    # ------------------------------------------------------------ 3. embed

    def batch_path(self, j: int) -> Path:
        return self.path / BATCHES / f"{j:06d}.npy"

    def embed(self, size: int, embed: BatchEmbedder,
              progress: Callable[[int, int], None] | None = None) -> tuple[int, int]:
        """Embed every batch not yet on disk, each saved as it finishes; returns
        (batches, batches found finished)."""
        total = self.con.execute("SELECT count(*) FROM _todo").fetchone()[0]
        n_batches = -(-total // size)
        todo = [j for j in range(n_batches) if not self.batch_path(j).exists()]
        done = n_batches - len(todo)
        if progress and done:
            progress(min(done * size, total), total)
        # Texts are read lazily, a batch at a time, so memory stays bounded.
        for j, vectors in embed((j, self._texts(j * size, (j + 1) * size)) for j in todo):
            self._save_batch(j, vectors)
            done += 1
            if progress:
                progress(min(done * size, total), total)
        return n_batches, n_batches - len(todo)

    def _texts(self, lo: int, hi: int) -> list[str]:
        return [embed_text(title, text) for title, text in self.con.execute(
            "SELECT p.title, c.text FROM _todo t JOIN chunks c ON c.chunk_id = t.chunk_id "
            "JOIN papers p ON p.paper_id = c.paper_id WHERE t.seq >= ? AND t.seq < ? "
            "ORDER BY t.seq", (lo, hi))]

    def _save_batch(self, j: int, vectors: np.ndarray) -> None:
        tmp = self.batch_path(j).with_suffix(".tmp")
        with tmp.open("wb") as f:
            np.save(f, np.ascontiguousarray(vectors, dtype=np.float32), allow_pickle=False)
        os.replace(tmp, self.batch_path(j))  # a batch exists only once complete

    # ------------------------------------------------------------ 4. assemble

    def assemble(self, size: int, n_batches: int, dim: int) -> np.ndarray:
        """embeddings.npy of every chunk (memory-mapped), from the previous build and the batches."""
        n = self.con.execute("SELECT count(*) FROM chunks").fetchone()[0]
        emb = np.lib.format.open_memmap(self.path / "embeddings.npy", mode="w+",
                                        dtype=np.float32, shape=(n, dim))
        _reserve(self.path / "embeddings.npy")
        if self.previous is not None:
            prev = store.read_embeddings(self.previous)
            for dst, src in self._reuse_blocks():
                emb[dst] = prev[src]
        for j in range(n_batches):
            rows = np.fromiter((r for (r,) in self.con.execute(
                "SELECT chunk_id FROM _todo WHERE seq >= ? AND seq < ? ORDER BY seq",
                (j * size, (j + 1) * size))), dtype=np.int64)
            emb[rows] = np.load(self.batch_path(j), allow_pickle=False)
        emb.flush()
        return emb

    def _reuse_blocks(self, block: int = 100_000):
        cur = self.con.execute("SELECT chunk_id, prev_row FROM _reuse ORDER BY chunk_id")
        while rows := cur.fetchmany(block):
            pairs = np.asarray(rows, dtype=np.int64)
            yield pairs[:, 0], pairs[:, 1]

    def dim(self) -> int | None:
        """The vector width, from the first finished batch or the previous build."""
        if self.batch_path(0).exists():
            return int(np.load(self.batch_path(0), mmap_mode="r", allow_pickle=False).shape[1])
        if self.previous is not None:
            return int(store.read_embeddings(self.previous).shape[1])
        return None

    def paper_hashes(self) -> dict[str, str]:
        return dict(self.con.execute("SELECT paper_id, hash FROM papers ORDER BY paper_id"))

    def finish(self) -> None:
        """Drop the stage-only tables and close, leaving records.sqlite as a build has it."""
        if self.compared is not None:
            self.con.execute("DETACH DATABASE prev")
        self.con.executescript("DROP TABLE _state; DROP TABLE _reuse; DROP TABLE _todo; "
                               "DROP TABLE _listings;")
        self.con.close()

    def close(self) -> None:
        self.con.close()

    def publish(self, index_dir: Path, embeddings: np.ndarray, manifest: dict,
                backend: VectorBackend | None = None) -> tuple[dict, Path]:
        """Finish the stage, write and seal its build (rag.publish.write_build) and make it
        the live one; returns (final manifest, build folder). Raises IndexWriteError or
        VectorStoreError."""
        self.finish()
        manifest = write_build(self.path, embeddings, manifest, backend=backend, stage_only=STAGE_ONLY)
        return manifest, publish(index_dir, self.path)

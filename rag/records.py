"""A build's papers and chunks in one SQLite file, `records.sqlite` (part of rag.store's format).

    papers(paper_id PK, title, abstract, listings JSON, authors JSON, categories JSON, year,
           hash, authors_f, categories_f, sources_f,   -- *_f: rag.filters.filter_fields
           doi, arxiv_id, url)                         -- the paper's identity and page
    chunks(chunk_id PK = vector row, paper_id, start, end, text)

SQLite is data: opening it runs no code. Readers open it read-only (`mode=ro`), one
connection per thread, so one LoadedIndex can be shared by the app's threads; nothing is
held in memory beyond SQLite's page cache. Row i of `chunks` is vector i.
"""
from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence, ValuesView
from pathlib import Path

import numpy as np

from rag.filters import SEP, active, filter_fields
from rag.types import Chunk, Listing, Paper

FILE = "records.sqlite"
PAPER_COLS = "paper_id, title, abstract, listings, authors, categories, year, doi, arxiv_id, url"
# INSERT INTO papers VALUES <PAPER_VALUES>: one placeholder per column of paper_row.
PAPER_VALUES = "(?,?,?,?,?,?,?,?,?,?,?,?,?,?)"
CHUNK_COLS = "chunk_id, paper_id, start, end, text"

SCHEMA = """
CREATE TABLE IF NOT EXISTS papers (
    paper_id TEXT PRIMARY KEY, title TEXT NOT NULL, abstract TEXT NOT NULL,
    listings TEXT NOT NULL, authors TEXT NOT NULL, categories TEXT NOT NULL, year INTEGER,
    hash TEXT, authors_f TEXT, categories_f TEXT, sources_f TEXT,
    doi TEXT NOT NULL DEFAULT '', arxiv_id TEXT NOT NULL DEFAULT '', url TEXT NOT NULL DEFAULT '');
CREATE TABLE IF NOT EXISTS chunks (
    chunk_id INTEGER PRIMARY KEY, paper_id TEXT NOT NULL, start INTEGER NOT NULL,
    end INTEGER NOT NULL, text TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS chunks_by_paper ON chunks(paper_id, chunk_id);
"""


# ---------------------------------------------------------------- writing

def paper_row(p: Paper, content_hash: str | None = None) -> tuple:
    """One `papers` row: the paper's fields, its content hash and its filter fields."""
    f = filter_fields(p)
    listings = [[x.source, x.date] for x in p.listings]
    return (p.paper_id, p.title, p.abstract, json.dumps(listings, ensure_ascii=False),
            json.dumps(p.authors, ensure_ascii=False), json.dumps(p.categories, ensure_ascii=False),
            p.year, content_hash, f["authors"], f["categories"], f["sources"],
            p.doi, p.arxiv_id, p.url)


def connect_writable(path: Path) -> sqlite3.Connection:
    """A connection for writing a build's records (schema created if new)."""
    con = sqlite3.connect(path, isolation_level=None)
    try:
        con.execute("PRAGMA synchronous=OFF")  # the build fsyncs every file before publishing
        con.executescript(SCHEMA)
    except BaseException:
        con.close()  # a full disk fails here: leave no open file holding its space
        raise
    return con


def insert_chunks(con: sqlite3.Connection, chunks: Iterable[Chunk]) -> None:
    con.executemany("INSERT INTO chunks VALUES (?,?,?,?,?)",
                    ((c.chunk_id, c.paper_id, c.start, c.end, c.text) for c in chunks))


# ---------------------------------------------------------------- reading

def paper_from_row(row) -> Paper:
    pid, title, abstract, listings, authors, categories, year, doi, arxiv_id, url = row
    return Paper(pid, title, abstract, [Listing(s, d) for s, d in json.loads(listings)],
                 json.loads(authors), json.loads(categories), year, doi, arxiv_id, url)


class Records:
    """Read-only access to one records file, safe to share between threads."""

    def __init__(self, path: Path):
        self.path = path
        self._local = threading.local()
        self.con()  # fail now, not at the first query, when the file is unusable

    def con(self) -> sqlite3.Connection:
        """This thread's read-only connection."""
        con = getattr(self._local, "con", None)
        if con is None:
            con = sqlite3.connect(f"{self.path.resolve().as_uri()}?mode=ro", uri=True,
                                  check_same_thread=False)
            self._local.con = con
        return con

    def one(self, sql: str, args: tuple = ()):
        return self.con().execute(sql, args).fetchone()

    def close(self) -> None:
        """Close this thread's connection (others close when their threads end)."""
        con = getattr(self._local, "con", None)
        if con is not None:
            con.close()
            self._local.con = None

    def row_fields(self, lo: int, hi: int) -> list[dict]:
        """Chunk rows [lo, hi) as dicts: row, paper_id and the filter fields of their paper."""
        return [{"row": row, "paper_id": pid, "year": year or 0, "authors": authors,
                 "categories": categories, "sources": sources}
                for row, pid, year, authors, categories, sources in self.con().execute(
                    "SELECT c.chunk_id, c.paper_id, p.year, p.authors_f, p.categories_f, "
                    "p.sources_f FROM chunks c JOIN papers p ON p.paper_id = c.paper_id "
                    "WHERE c.chunk_id >= ? AND c.chunk_id < ? ORDER BY c.chunk_id", (lo, hi))]

    def counts(self) -> dict:
        """Papers, chunks, the chunk-id range and chunks whose paper is missing (SQL aggregates)."""
        papers, = self.one("SELECT count(*) FROM papers")
        chunks, lo, hi = self.one("SELECT count(*), min(chunk_id), max(chunk_id) FROM chunks")
        orphans, = self.one("SELECT count(*) FROM chunks c WHERE NOT EXISTS "
                            "(SELECT 1 FROM papers p WHERE p.paper_id = c.paper_id)")
        return {"papers": papers, "chunks": chunks, "min_id": lo, "max_id": hi,
                "orphans": orphans}


class PaperRecords(Mapping):
    """paper_id -> Paper, read from SQLite on demand (a read-only Mapping)."""

    def __init__(self, records: Records):
        self._r = records
        self._len: int | None = None

    def __getitem__(self, paper_id: str) -> Paper:
        row = self._r.one(f"SELECT {PAPER_COLS} FROM papers WHERE paper_id = ?", (paper_id,))
        if row is None:
            raise KeyError(paper_id)
        return paper_from_row(row)

    def __contains__(self, paper_id) -> bool:
        return self._r.one("SELECT 1 FROM papers WHERE paper_id = ?", (paper_id,)) is not None

    def __len__(self) -> int:
        if self._len is None:
            self._len = self._r.one("SELECT count(*) FROM papers")[0]
        return self._len

    def __iter__(self) -> Iterator[str]:
        for (pid,) in self._r.con().execute("SELECT paper_id FROM papers ORDER BY paper_id"):
            yield pid

    def values(self) -> ValuesView:
        return _PaperValues(self)

    def stream(self) -> Iterator[Paper]:
        for row in self._r.con().execute(f"SELECT {PAPER_COLS} FROM papers ORDER BY paper_id"):
            yield paper_from_row(row)


class _PaperValues(ValuesView):
    def __iter__(self) -> Iterator[Paper]:
        return self._mapping.stream()


class ChunkRecords(Sequence):
    """Row i -> Chunk i, read from SQLite on demand (a read-only Sequence)."""

    def __init__(self, records: Records, n: int):
        self._r, self._n = records, n

    def __len__(self) -> int:
        return self._n

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(self._n))]
        i = int(i)
        if i < 0:
            i += self._n
        row = self._r.one(f"SELECT {CHUNK_COLS} FROM chunks WHERE chunk_id = ?", (i,))
        if row is None:
            raise IndexError(i)
        return Chunk(*row)

    def __iter__(self) -> Iterator[Chunk]:
        for row in self._r.con().execute(f"SELECT {CHUNK_COLS} FROM chunks ORDER BY chunk_id"):
            yield Chunk(*row)

    def of_paper(self, paper_id: str) -> list[Chunk]:
        """All chunks of one paper, in text order."""
        return [Chunk(*row) for row in self._r.con().execute(
            f"SELECT {CHUNK_COLS} FROM chunks WHERE paper_id = ? ORDER BY chunk_id", (paper_id,))]

    def paper_ids_of(self, rows) -> list[str]:
        """The paper id of each chunk row, in the order given (one query)."""
        rows = [int(r) for r in rows]
        found = dict(self._r.con().execute(
            "SELECT chunk_id, paper_id FROM chunks WHERE chunk_id IN "
            "(SELECT value FROM json_each(?))", (json.dumps(rows),)))
        try:
            return [found[r] for r in rows]
        except KeyError as e:
            raise IndexError(f"no chunk row {e.args[0]}") from None


# Filters as SQL over the stored filter fields; each mirrors rag.filters.fields_match.
_FILTER_SQL = {
    "year": ("coalesce(p.year, 0) = ?", lambda want: want),
    "author": ("instr(p.authors_f, ?) > 0", lambda want: want),
    "source": ("instr(p.sources_f, ?) > 0", lambda want: want),
    "category": ("instr(p.categories_f, ?) > 0", lambda want: f"{SEP}{want}{SEP}"),
}


def rows_where(records: Records, filters: dict | None) -> np.ndarray:
    """Chunk rows (sorted int64) whose paper passes every metadata filter.

    Raises QuestionError for an unknown filter or a year that is not a whole number."""
    wanted = active(filters)
    where = [_FILTER_SQL[key][0] for key in wanted]
    args = [_FILTER_SQL[key][1](want) for key, want in wanted.items()]
    sql = "SELECT c.chunk_id FROM chunks c"
    if where:
        sql += " JOIN papers p ON p.paper_id = c.paper_id WHERE " + " AND ".join(where)
    cur = records.con().execute(sql + " ORDER BY c.chunk_id", args)
    return np.fromiter((r for (r,) in cur), dtype=np.int64)

"""Read papers from the supported sources: listing pages, arXiv JSON Lines, folders, and
reference-manager exports and PDFs (index/bib_readers.py).

Every reader yields `Paper`s with whitespace normalised and text otherwise as written.
`read_sources` merges what all sources yield into one de-duplicated list.
"""
from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from index import bib_readers
from index.identifiers import (
    clean_arxiv_id,
    clean_doi,
    clean_url,
    normalise_ws,
    paper_key,
    same_paper_ids,
)
from rag.errors import SourceError
from rag.types import Listing, Paper

log = logging.getLogger(__name__)

# Page furniture of the scraped listing pages, matched against a whole stripped line.
_FURNITURE = re.compile(
    r"^(new|subscribe|byAK and the research community|get trending papers in your email inbox.*)$",
    re.IGNORECASE,
)
_LISTING_DATE = re.compile(r"^(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)[a-z]* \d{1,2}$")
_GLUED_SUBSCRIBE = re.compile(r"^Subscribe(?=\S)")
# A title longer than this is almost surely an abstract whose title line was lost.
_MAX_TITLE_CHARS = 400
# Real abstracts stay under ~5,000 characters; one far longer is a whole document or junk,
# and would cost thousands of chunks to embed.
_MAX_ABSTRACT_CHARS = 20_000
_PAPER_SUFFIXES = {".txt", ".md"}
# A JSON Lines record longer than this, or nested deeper, is skipped unparsed: an arXiv
# record is ~2 KB and 3 levels deep; a hostile line must not cost memory or the recursion
# limit (one deeply nested line used to abort the whole build with a RecursionError).
_MAX_LINE_BYTES = 1_000_000
_MAX_DEPTH = 16
_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")


@dataclass
class ReadReport:
    """What reading the sources found: papers, and lines or files that were skipped."""

    papers: list[Paper] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    files: list[str] = field(default_factory=list)


def _read_text(path: Path) -> str:
    try:
        data = path.read_bytes()
    except OSError as e:
        raise SourceError(f"Cannot read {path}: {e.strerror or e}") from None
    if b"\x00" in data[:4096]:
        raise SourceError(f"{path} looks binary, not text; remove it from the sources.")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise SourceError(
            f"{path} is not UTF-8 (byte {e.start}); re-save it as UTF-8 and rebuild."
        ) from None


def read_listing_page(path: Path, report: ReadReport) -> Iterator[Paper]:
    """Papers from one scraped listing page: furniture dropped, title/abstract line pairs."""
    date = ""
    lines = []
    for raw in _read_text(path).splitlines():
        line = normalise_ws(_GLUED_SUBSCRIBE.sub("", raw.strip()))
        if not line or _FURNITURE.match(line):
            continue
        if _LISTING_DATE.match(line):
            date = date or line
            continue
        lines.append(line)
    listing = Listing(source=path.name, date=date)
    for i in range(0, len(lines) - 1, 2):
        title, abstract = lines[i], lines[i + 1]
        if len(title) > _MAX_TITLE_CHARS:
            report.skipped.append(f"{path.name}: line pair {i // 2 + 1} has no title line")
            continue
        if len(abstract) > _MAX_ABSTRACT_CHARS:
            report.skipped.append(f"{path.name}: abstract of {title[:60]!r} is too long")
            continue
        yield Paper(paper_key(title), title, abstract, listings=[listing])
    if len(lines) % 2:
        report.skipped.append(f"{path.name}: title with no abstract: {lines[-1][:80]!r}")


def _names(value, field: str, split: str) -> list[str]:
    """A list of names from a string (split on `split`) or a list of strings."""
    if isinstance(value, str):
        return [a.strip() for a in re.split(split, value) if a.strip()]
    if isinstance(value, list) and all(isinstance(a, str) for a in value):
        return [a.strip() for a in value if a.strip()]
    raise ValueError(f"{field} must be a string or a list of strings")


def _arxiv_paper(obj: dict, name: str) -> Paper:
    if not isinstance(obj["title"], str) or not isinstance(obj["abstract"], str):
        raise ValueError("title and abstract must be strings")
    title, abstract = normalise_ws(obj["title"]), normalise_ws(obj["abstract"])
    if not title or not abstract:
        raise ValueError("empty title or abstract")
    if len(title) > _MAX_TITLE_CHARS or len(abstract) > _MAX_ABSTRACT_CHARS:
        raise ValueError("title or abstract too long")
    authors = _names(obj.get("authors") or "", "authors", r",| and ")
    cats = _names(obj.get("categories") or "", "categories", r"\s+")
    year = None
    if m := re.match(r"(\d{4})", str(obj.get("update_date") or "")):
        year = int(m.group(1))
    listing = Listing(source=name, date=str(obj.get("update_date") or ""))
    arxiv_id = clean_arxiv_id(str(obj.get("id") or ""))
    return Paper(paper_key(title), title, abstract, [listing], authors, cats, year,
                 doi=clean_doi(obj.get("doi")), arxiv_id=arxiv_id,
                 url=clean_url(obj.get("url")) or (f"https://arxiv.org/abs/{arxiv_id}" if arxiv_id else ""))


def _lines(path: Path) -> Iterator[str | None]:
    """The lines of a UTF-8 text file, streamed (bounded memory for multi-GB files); a line
    longer than _MAX_LINE_BYTES is skipped unread and yields None.

    Raises SourceError for an unreadable, binary or non-UTF-8 file."""
    try:
        with path.open("rb") as f:
            if b"\x00" in f.read(4096):
                raise SourceError(f"{path} looks binary, not text; remove it from the sources.")
            f.seek(0)
            offset = 0
            while raw := f.readline(_MAX_LINE_BYTES + 1):
                if len(raw) > _MAX_LINE_BYTES and not raw.endswith(b"\n"):
                    while (rest := f.readline(_MAX_LINE_BYTES)) and not rest.endswith(b"\n"):
                        offset += len(rest)
                    offset += len(raw) + len(rest)
                    yield None
                    continue
                try:
                    yield raw.decode("utf-8-sig" if offset == 0 else "utf-8")
                except UnicodeDecodeError as e:
                    raise SourceError(f"{path} is not UTF-8 (byte {offset + e.start}); "
                                      "re-save it as UTF-8 and rebuild.") from None
                offset += len(raw)
    except OSError as e:
        raise SourceError(f"Cannot read {path}: {e.strerror or e}") from None


def _too_deep(line: str) -> bool:
    """True when the JSON text nests arrays/objects deeper than _MAX_DEPTH (strings ignored)."""
    if line.count("[") + line.count("{") <= _MAX_DEPTH:
        return False  # the common case, without a scan
    depth = deepest = 0
    for ch in _NOT_BRACKET.sub("", _JSON_STRING.sub("", line)):
        depth += 1 if ch in "[{" else -1
        deepest = max(deepest, depth)
    return deepest > _MAX_DEPTH


def read_arxiv_jsonl(path: Path, report: ReadReport) -> Iterator[Paper]:
    """Papers from arXiv-snapshot JSON Lines, streamed; bad lines (malformed, too long, too
    deeply nested) are skipped and counted."""
    for ln, line in enumerate(_lines(path), 1):
        if line is None:
            report.skipped.append(f"{path.name}:{ln}: line longer than {_MAX_LINE_BYTES:,} bytes")
            continue
        if not line.strip():
            continue
        try:
            if _too_deep(line):
                raise ValueError(f"nested deeper than {_MAX_DEPTH} levels")
            obj = json.loads(line)
            if not isinstance(obj, dict):
                raise ValueError("not an object")
            yield _arxiv_paper(obj, path.name)
        except (ValueError, KeyError, TypeError, AttributeError, RecursionError) as e:
            what = f"missing field {e}" if isinstance(e, KeyError) else str(e)
            report.skipped.append(f"{path.name}:{ln}: {what}")


def read_paper_file(path: Path, report: ReadReport) -> Iterator[Paper]:
    """One paper from a .txt/.md file: first non-empty line the title, the rest the abstract."""
    lines = [ln for ln in _read_text(path).splitlines() if ln.strip()]
    if len(lines) < 2:
        report.skipped.append(f"{path.name}: needs a title line and an abstract")
        return
    title = normalise_ws(lines[0].lstrip("# "))
    abstract = normalise_ws(" ".join(lines[1:]))
    if len(title) > _MAX_TITLE_CHARS or len(abstract) > _MAX_ABSTRACT_CHARS:
        report.skipped.append(f"{path.name}: title or abstract too long for a paper")
        return
    yield Paper(paper_key(title), title, abstract,
                listings=[Listing(source=path.name)])


def _looks_like_listing_page(path: Path) -> bool:
    head = _read_text(path)[:2000]
    return "Get trending papers" in head or "byAK and the research community" in head


def read_path(path: Path, report: ReadReport) -> Iterator[Paper]:
    """Papers from one file of any supported kind; skipped entries go to `report`.

    Raises SourceError for an unreadable, binary or non-UTF-8 file.
    """
    report.files.append(str(path))
    if path.suffix.lower() in bib_readers.SUFFIXES:
        yield from bib_readers.read_export(path, report.skipped)
    elif path.suffix == ".jsonl":
        yield from read_arxiv_jsonl(path, report)
    elif _looks_like_listing_page(path):
        yield from read_listing_page(path, report)
    else:
        yield from read_paper_file(path, report)


def expand_sources(sources: Iterable[Path]) -> list[Path]:
    """Every file the sources name, in reading order. Raises SourceError for a missing,
    unlistable or empty source."""
    return [path for source in sources for path in _expand(Path(source).expanduser())]


def iter_papers(files: Iterable[Path], report: ReadReport) -> Iterator[Paper]:
    """Papers from these files as read, duplicates included (see index.staging), streamed;
    a paper whose DOI or arXiv id came before carries the earlier paper's id.

    Raises SourceError for an unreadable, binary or non-UTF-8 file."""
    yield from same_paper_ids(p for path in files for p in read_path(path, report))


def _expand(source: Path) -> list[Path]:
    if not source.exists():
        raise SourceError(f"Source {source} does not exist; check the path.")
    if source.is_file():
        return [source]
    if not source.is_dir():
        raise SourceError(f"Source {source} is neither a file nor a folder.")
    try:
        files = sorted(p for p in source.rglob("*")
                       if p.is_file() and (p.suffix in _PAPER_SUFFIXES or p.suffix == ".jsonl"
                                             or p.suffix.lower() in bib_readers.SUFFIXES))
    except OSError as e:
        raise SourceError(f"Cannot list {source}: {e.strerror or e}") from None
    if not files:
        raise SourceError(f"Source folder {source} has no .txt, .md, .jsonl, .bib, .ris, "
                          ".json or .pdf files.")
    return files


def read_sources(sources: Iterable[Path]) -> ReadReport:
    """Read every source into one de-duplicated paper list.

    Raises SourceError for a missing, unreadable, binary or non-UTF-8 source, or when
    the sources hold no papers at all.
    """
    from index.staging import merge_papers  # the build's own merge, for a list in memory

    report = ReadReport()
    report.papers = merge_papers(iter_papers(expand_sources(sources), report))
    if not report.papers:
        raise no_papers_error(report)
    return report


def no_papers_error(report: ReadReport) -> SourceError:
    """The error for sources that yielded no paper at all."""
    return SourceError("The sources hold no papers" +
                       (f" ({len(report.skipped)} entries skipped)" if report.skipped else "") +
                       "; check the paths given with --source.")

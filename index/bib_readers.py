"""Readers for a researcher's own library: BibTeX, RIS, CSL-JSON (Zotero, Better BibTeX) and PDFs.

Each keeps title, abstract, authors, year, DOI, arXiv id, URL and keywords (as the paper's
categories, so the category filter finds them). An entry without a title or an abstract
is skipped, with the reason, in `skipped` (the build report's list). A PDF gives only the
title and abstract of its first page and its metadata: full text is out of scope.
"""
from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator
from pathlib import Path

from index.identifiers import clean_arxiv_id, clean_doi, clean_url, normalise_ws, paper_key
from rag.errors import SourceError
from rag.types import Listing, Paper

log = logging.getLogger(__name__)

SUFFIXES = {".bib", ".ris", ".json", ".pdf"}
MAX_TITLE_CHARS = 400
MAX_ABSTRACT_CHARS = 20_000
_LATEX_CMD = re.compile(r"\\[a-zA-Z]+\*?\s*|\\(.)")
_YEAR = re.compile(r"(1[89]\d\d|20\d\d)")
# What ends an abstract on a paper's first page.
_ABSTRACT_END = re.compile(r"\n\s*(?:(?:1|I)\.?\s+Introduction|Introduction\n|Keywords|"
                           r"Index Terms|CCS Concepts|Key words)", re.I)
_ABSTRACT_HEAD = re.compile(r"(?:^|\n)\s*A\s?BSTRACT\.?[\s:—-]*", re.I)


def read_export(path: Path, skipped: list[str]) -> Iterator[Paper]:
    """Papers from one .bib, .ris, .json (CSL-JSON or Zotero items) or .pdf file.

    Raises SourceError for an unreadable or undecodable file; bad entries go to `skipped`."""
    suffix = path.suffix.lower()
    if suffix == ".pdf":
        yield from read_pdf(path, skipped)
        return
    text = _text(path)
    if suffix == ".bib":
        yield from read_bibtex(text, path.name, skipped)
    elif suffix == ".ris":
        yield from read_ris(text, path.name, skipped)
    else:
        yield from read_csl_json(text, path.name, skipped)


def _text(path: Path) -> str:
    try:
        return path.read_bytes().decode("utf-8-sig")
    except OSError as e:
        raise SourceError(f"Cannot read {path}: {e.strerror or e}") from None
    except UnicodeDecodeError as e:
        raise SourceError(f"{path} is not UTF-8 (byte {e.start}); re-export it as UTF-8 "
                          "and rebuild.") from None


def _plain(value: object) -> str:
    """BibTeX/LaTeX text as plain text: commands and braces dropped, whitespace normalised."""
    if not isinstance(value, str):
        return ""
    text = _LATEX_CMD.sub(lambda m: m.group(1) or "", value)
    return normalise_ws(text.replace("{", "").replace("}", "").replace("~", " "))


def make_paper(source: str, what: str, skipped: list[str], *, title: object, abstract: object,
               authors: list[str] = (), year: object = None, doi: object = "",
               arxiv: object = "", url: object = "", keywords: list[str] = ()) -> Paper | None:
    """A Paper from an entry's fields, or None (and the reason in `skipped`)."""
    title, abstract = _plain(title), _plain(abstract)
    why = ("no title" if not title else "no abstract" if not abstract else
           "title too long" if len(title) > MAX_TITLE_CHARS else
           "abstract too long" if len(abstract) > MAX_ABSTRACT_CHARS else "")
    if why:
        skipped.append(f"{source}: {what}: {why}")
        return None
    m = _YEAR.search(str(year or ""))
    arxiv_id = clean_arxiv_id(arxiv) or clean_arxiv_id(clean_url(url))
    return Paper(paper_key(title), title, abstract, [Listing(source)],
                 [a for a in (_plain(x) for x in authors) if a],
                 [k for k in (_plain(x) for x in keywords) if k],
                 int(m.group(1)) if m else None,
                 clean_doi(doi), arxiv_id, clean_url(url))


# ---------------------------------------------------------------- BibTeX

def _bib_names(value: str) -> list[str]:
    """"Last, First and Other, A." -> ["First Last", "A. Other"]."""
    names = []
    for name in re.split(r"\s+and\s+", value.strip()):
        last, sep, first = name.partition(",")
        names.append(f"{first.strip()} {last.strip()}" if sep else name.strip())
    return [n for n in names if n]


def read_bibtex(text: str, source: str, skipped: list[str]) -> Iterator[Paper]:
    """Papers from BibTeX text; blocks bibtexparser cannot parse are skipped and counted."""
    import bibtexparser

    library = bibtexparser.parse_string(text)
    for block in library.failed_blocks:
        skipped.append(f"{source}: line {block.start_line + 1}: malformed BibTeX entry")
    for entry in library.entries:
        f = {k.lower(): v.value for k, v in entry.fields_dict.items() if isinstance(v.value, str)}
        eprint = f.get("eprint", "") if "arxiv" in f.get("archiveprefix", "arxiv").lower() else ""
        paper = make_paper(
            source, f"entry {entry.key}", skipped, title=f.get("title"),
            abstract=f.get("abstract"), authors=_bib_names(f.get("author", "")),
            year=f.get("year") or f.get("date"), doi=f.get("doi", ""),
            arxiv=eprint or f.get("arxiv", "") or f.get("journal", ""), url=f.get("url", ""),
            keywords=re.split(r"[,;]", f.get("keywords", "")))
        if paper:
            yield paper


# ---------------------------------------------------------------- RIS

def _first(entry: dict, *keys: str):
    for key in keys:
        value = entry.get(key)
        if isinstance(value, list):
            value = value[0] if value else None
        if value:
            return value
    return ""


def read_ris(text: str, source: str, skipped: list[str]) -> Iterator[Paper]:
    """Papers from RIS text (rispy); a file rispy cannot read is one skipped entry."""
    import rispy

    try:
        entries = rispy.loads(text)
    except Exception as e:  # noqa: BLE001 - rispy raises bare IOError/ValueError/KeyError
        skipped.append(f"{source}: not a readable RIS file ({type(e).__name__}: {e})")
        return
    for i, e in enumerate(entries, 1):
        urls = e.get("urls") or ([e["url"]] if isinstance(e.get("url"), str) else [])
        paper = make_paper(
            source, f"record {i}", skipped, title=_first(e, "title", "primary_title",
                                                         "translated_title"),
            abstract=_first(e, "abstract", "notes_abstract"),
            authors=[*(e.get("authors") or []), *(e.get("first_authors") or [])],
            year=_first(e, "year", "publication_year", "date"), doi=_first(e, "doi"),
            arxiv=" ".join(str(u) for u in urls), url=urls[0] if urls else "",
            keywords=e.get("keywords") or [])
        if paper:
            yield paper


# ---------------------------------------------------------------- CSL-JSON and Zotero items

def _csl_names(people) -> list[str]:
    out = []
    for p in people if isinstance(people, list) else []:
        if isinstance(p, dict):
            out.append(p.get("literal") or p.get("name") or
                       f"{p.get('given') or p.get('firstName') or ''} "
                       f"{p.get('family') or p.get('lastName') or ''}".strip())
    return [n for n in out if isinstance(n, str) and n]


def _csl_year(item: dict) -> str:
    issued = item.get("issued")
    if isinstance(issued, dict):
        parts = issued.get("date-parts") or [[issued.get("raw") or issued.get("literal")]]
        return str(parts[0][0]) if parts and parts[0] else ""
    return str(item.get("date") or item.get("year") or "")


def _csl_keywords(item: dict) -> list[str]:
    words = item.get("keyword") or ""
    tags = [t.get("tag", "") for t in item.get("tags") or [] if isinstance(t, dict)]
    return [*(re.split(r"[,;]", words) if isinstance(words, str) else []), *tags]


def read_csl_json(text: str, source: str, skipped: list[str]) -> Iterator[Paper]:
    """Papers from CSL-JSON (a list of items, as Zotero and Better BibTeX export it) or a
    Better BibTeX JSON export ({"items": [...]}, Zotero's own field names)."""
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as e:
        skipped.append(f"{source}: not JSON ({e})")
        return
    items = data.get("items") if isinstance(data, dict) else data
    if not isinstance(items, list):
        skipped.append(f"{source}: not CSL-JSON (expected a list of items)")
        return
    for i, item in enumerate(items, 1):
        if not isinstance(item, dict):
            skipped.append(f"{source}: item {i}: not an object")
            continue
        extra = " ".join(str(item.get(k) or "") for k in ("note", "extra", "number", "URL", "url"))
        paper = make_paper(
            source, f"item {item.get('id') or item.get('citationKey') or i}", skipped,
            title=item.get("title"), abstract=item.get("abstract") or item.get("abstractNote"),
            authors=_csl_names(item.get("author") or item.get("creators")),
            year=_csl_year(item), doi=item.get("DOI") or item.get("doi") or "",
            arxiv=extra if "arxiv" in extra.lower() else "",
            url=item.get("URL") or item.get("url") or "", keywords=_csl_keywords(item))
        if paper:
            yield paper


# ---------------------------------------------------------------- PDF

def read_pdf(path: Path, skipped: list[str]) -> Iterator[Paper]:
    """One paper from a PDF's first page and metadata: title (metadata, else the first
    line) and the abstract (the text after an "Abstract" heading). Full text is not read."""
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(path)
        if reader.is_encrypted and not reader.decrypt(""):
            skipped.append(f"{path.name}: encrypted PDF (a password is needed); skipped")
            return
        text = reader.pages[0].extract_text() if reader.pages else ""
        meta = reader.metadata or {}
    except (PdfReadError, OSError, ValueError, KeyError, IndexError, TypeError,
            NotImplementedError, RecursionError) as e:
        skipped.append(f"{path.name}: unreadable PDF ({type(e).__name__})")
        return
    except Exception as e:  # noqa: BLE001 - pypdf raises many kinds for damaged files
        log.info("reading %s failed: %r", path, e)
        skipped.append(f"{path.name}: unreadable PDF ({type(e).__name__})")
        return
    if not (text or "").strip():
        skipped.append(f"{path.name}: no text layer (a scanned PDF?); skipped")
        return
    title, abstract = _pdf_title(text, meta), _pdf_abstract(text)
    paper = make_paper(path.name, "first page", skipped, title=title, abstract=abstract,
                       authors=re.split(r",|;| and ", str(meta.get("/Author") or "")),
                       year=str(meta.get("/CreationDate") or ""), doi=clean_doi(text[:3000]),
                       arxiv=_arxiv_in(text), keywords=re.split(r"[,;]", str(meta.get("/Keywords") or "")))
    if paper:
        yield paper


def _arxiv_in(text: str) -> str:
    m = re.search(r"arXiv:\s*(\S+)", text)
    return m.group(1) if m else ""


def _pdf_title(text: str, meta) -> str:
    title = str(meta.get("/Title") or "").strip()
    if len(title) > 8 and not title.lower().endswith((".pdf", ".dvi", ".tex", ".doc", ".docx")):
        return title
    return next((ln.strip() for ln in text.splitlines() if len(ln.strip()) > 8), "")


def _pdf_abstract(text: str) -> str:
    head = _ABSTRACT_HEAD.search(text)
    if not head:
        return ""
    body = text[head.end():]
    end = _ABSTRACT_END.search(body)
    return body[:end.start()] if end else body[:MAX_ABSTRACT_CHARS]

"""A paper's identity: title keys, DOIs and arXiv ids, and the merge of one paper read twice.

Every reader names a paper by `paper_key(title)`; `same_paper_ids` then renames a paper
whose DOI or arXiv id was already seen under another title to that paper's id, so
duplicates are found by DOI or arXiv id first and by normalised title second, across
every source format.
"""
from __future__ import annotations

import dataclasses
import hashlib
import re
import unicodedata
from collections.abc import Iterable, Iterator

from rag.types import Paper

_WS = re.compile(r"\s+")
_DOI = re.compile(r"10\.\d{4,9}/\S+")
# New-style (2401.01234) and old-style (hep-th/9901001) arXiv ids, version dropped.
_ARXIV = re.compile(r"(?<![\w.])(\d{4}\.\d{4,5}|[a-z][a-z.-]+/\d{7})(?:v\d+)?(?![\w])", re.I)


def normalise_ws(text: str) -> str:
    """Collapse every run of whitespace to one space and trim the ends."""
    return _WS.sub(" ", text).strip()


def paper_key(title: str) -> str:
    """A stable id from the title alone, so re-reading files in any order gives the same id."""
    norm = unicodedata.normalize("NFKC", normalise_ws(title)).casefold()
    return hashlib.sha1(norm.encode("utf-8")).hexdigest()[:16]


def clean_doi(value: object) -> str:
    """The bare DOI in `value` ("https://doi.org/10.1/X" -> "10.1/x"), lower case, or ""."""
    if not isinstance(value, str):
        return ""
    m = _DOI.search(value.strip())
    return m.group(0).rstrip(".,;").lower() if m else ""


def clean_arxiv_id(value: object) -> str:
    """The arXiv id in `value` ("arXiv:2401.01234v2", an abs/pdf URL), without version, or ""."""
    if not isinstance(value, str):
        return ""
    m = _ARXIV.search(value.strip())
    return m.group(1) if m else ""


def clean_url(value: object) -> str:
    """`value` when it is an http(s) URL without spaces, else ""."""
    if not isinstance(value, str):
        return ""
    value = value.strip()
    return value if value.startswith(("https://", "http://")) and " " not in value else ""


def same_paper_ids(papers: Iterable[Paper]) -> Iterator[Paper]:
    """The papers, each one whose DOI or arXiv id was seen before given the id it was seen
    with, so the merge that follows joins them whatever their titles."""
    seen: dict[str, str] = {}  # "doi:..." / "arxiv:..." -> paper_id
    for p in papers:
        keys = [f"doi:{p.doi}"] * bool(p.doi) + [f"arxiv:{p.arxiv_id}"] * bool(p.arxiv_id)
        first = next((seen[k] for k in keys if k in seen), p.paper_id)
        for k in keys:
            seen.setdefault(k, first)
        yield p if first == p.paper_id else dataclasses.replace(p, paper_id=first)


def fill_missing(into: Paper, other: Paper) -> None:
    """Give `into` the year, authors, DOI, arXiv id and URL of `other` that it lacks."""
    into.year = into.year or other.year
    into.authors = into.authors or other.authors
    into.doi = into.doi or other.doi
    into.arxiv_id = into.arxiv_id or other.arxiv_id
    into.url = into.url or other.url

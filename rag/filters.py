"""Metadata filters: which papers a search may return.

A filter dict maps FILTER_KEYS to wanted values; empty values are ignored:

    year      the paper's year equals it
    author    some author name contains it (case-insensitive)
    category  some category equals it (case-insensitive)
    source    some listing's "source date" contains it (case-insensitive)

Every backend applies the same rule to the same flat fields (`filter_fields`), so the
FAISS path (SQL over the build's records) and Milvus (a filter expression) agree with
`paper_matches`, the reference.
"""
from __future__ import annotations

from rag.errors import QuestionError
from rag.text import fold
from rag.types import Paper

FILTER_KEYS = ("source", "year", "author", "category")
# Multi-valued fields are joined with tabs and wrapped in them, so "contains" and
# "equals one of" both become substring tests ("\tcs.cl\t" in "\tcs.cl\tcs.lg\t").
SEP = "\t"


def active(filters: dict | None) -> dict:
    """The filters that restrict anything, with text values folded and the year an int.

    Raises QuestionError for an unknown filter or a year that is not a whole number.
    """
    out = {}
    for key, want in (filters or {}).items():
        if key not in FILTER_KEYS:
            raise QuestionError(f"Unknown filter {key!r}; use {', '.join(FILTER_KEYS)}.")
        if want in (None, "", []):
            continue
        if key == "year":
            out[key] = year_filter(want)
        else:
            out[key] = fold(str(want)).replace(SEP, " ")
    return out


def year_filter(want) -> int | None:
    """The year filter's value as an int (None when empty): the one rule for the library,
    the CLI and the UI. Raises QuestionError for a year that is not a whole number."""
    if want in (None, "", []):
        return None
    try:
        return int(want)
    except (TypeError, ValueError):
        raise QuestionError(f"The year filter must be a whole number, not {want!r}.") from None


def _joined(values) -> str:
    return SEP + SEP.join(fold(v).replace(SEP, " ") for v in values) + SEP


def filter_fields(paper: Paper) -> dict:
    """The flat, folded fields filters look at: year (0 when unknown), authors,
    categories and sources as tab-wrapped lists."""
    return {
        "year": paper.year or 0,
        "authors": _joined(paper.authors),
        "categories": _joined(paper.categories),
        "sources": _joined(f"{x.source} {x.date}" for x in paper.listings),
    }


def fields_match(fields: dict, filters: dict) -> bool:
    """True when `fields` (from filter_fields) pass `filters` (from active)."""
    for key, want in filters.items():
        if key == "year" and fields["year"] != want:
            return False
        if key == "author" and want not in fields["authors"]:
            return False
        if key == "category" and f"{SEP}{want}{SEP}" not in fields["categories"]:
            return False
        if key == "source" and want not in fields["sources"]:
            return False
    return True


def paper_matches(paper: Paper, filters: dict | None) -> bool:
    """True when the paper passes every metadata filter."""
    return fields_match(filter_fields(paper), active(filters))

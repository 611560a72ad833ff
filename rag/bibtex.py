"""BibTeX entries for papers, generated from the records (`Answer.to_bibtex()`).

Every paper gets a valid entry, one without any identifier (a seed listing paper) too:
@misc with its title, authors, year and abstract; DOI, arXiv id and URL when known.
"""
from __future__ import annotations

import re
import unicodedata
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # annotations only: rag.types imports this module for Answer.to_bibtex
    from rag.types import Answer, Paper

_SPECIAL = re.compile(r"([&%$#_])")
_KEY_WORD = re.compile(r"[a-z0-9]+")


def _value(text: str) -> str:
    """Text safe inside a braced BibTeX value: no braces or backslashes, specials escaped."""
    text = " ".join(str(text).replace("\\", " ").replace("{", "(").replace("}", ")").split())
    return _SPECIAL.sub(r"\\\1", text)


def _ascii_words(text: str) -> list[str]:
    plain = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().lower()
    return _KEY_WORD.findall(plain)


def citation_key(paper: Paper) -> str:
    """"lastnameYEARfirstword" from the paper's first author, year and title (ASCII)."""
    author = _ascii_words(paper.authors[0].split()[-1]) if paper.authors and paper.authors[0].split() else []
    title = [w for w in _ascii_words(paper.title) if len(w) > 3] or _ascii_words(paper.title) or ["paper"]
    return f"{''.join(author) or 'anon'}{paper.year or ''}{title[0]}"


def paper_bibtex(paper: Paper, key: str | None = None) -> str:
    """One BibTeX entry for a paper (@article with a DOI, else @misc)."""
    fields = [("title", f"{{{_value(paper.title)}}}")]  # double braces keep its capitals
    if paper.authors:
        fields.append(("author", " and ".join(_value(a) for a in paper.authors)))
    if paper.year:
        fields.append(("year", str(paper.year)))
    if paper.doi:
        fields.append(("doi", _value(paper.doi)))
    if paper.arxiv_id:
        fields += [("eprint", _value(paper.arxiv_id)), ("archiveprefix", "arXiv")]
    if paper.link:
        fields.append(("url", _value(paper.link)))
    if paper.categories:
        fields.append(("keywords", _value(", ".join(paper.categories))))
    fields.append(("abstract", _value(paper.abstract)))
    kind = "article" if paper.doi else "misc"
    body = ",\n".join(f"  {name} = {{{value}}}" for name, value in fields)
    return f"@{kind}{{{key or citation_key(paper)},\n{body}\n}}\n"


def papers_bibtex(papers: list[Paper]) -> str:
    """Entries for several papers, with keys made unique (a, b, ... appended)."""
    seen: dict[str, int] = {}
    out = []
    for p in papers:
        key = citation_key(p)
        seen[key] = seen.get(key, 0) + 1
        out.append(paper_bibtex(p, key if seen[key] == 1 else f"{key}{chr(ord('a') + seen[key] - 2)}"))
    return "\n".join(out)


def answer_bibtex(answer: Answer) -> str:
    """The papers an answer cites, in citation order ("" when it cites none)."""
    by_n = {s.n: s.paper for s in answer.sources}
    cited = list(dict.fromkeys(c.n for c in answer.citations if c.n in by_n))
    return papers_bibtex([by_n[n] for n in cited])

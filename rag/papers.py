"""Papers as plain JSON for the outer doors (MCP tools, HTTP API): ranked search and lookup."""
from __future__ import annotations

from rag.config import Settings, load_settings
from rag.errors import QuestionError
from rag.text import as_data
from rag.types import Paper

MAX_K = 50


def paper_json(paper: Paper) -> dict:
    """A paper's fields and links as JSON-ready values."""
    return {"paper_id": paper.paper_id, "title": paper.title, "abstract": paper.abstract,
            "authors": paper.authors, "year": paper.year, "categories": paper.categories,
            "doi": paper.doi, "arxiv_id": paper.arxiv_id, "url": paper.link,
            "listings": [{"source": x.source, "date": x.date} for x in paper.listings]}


def search_papers(query: str, *, k: int = 5, filters: dict | None = None,
                  settings: Settings | None = None) -> list[dict]:
    """The `k` best papers for a query, best first: id, title, links, scores and the
    sentence that matches best (as data: rag.text.as_data).

    Raises QuestionError for an empty query or bad k/filters, and the index errors of
    rag.engine.get_engine."""
    from rag.answer import clean_question
    from rag.engine import get_engine
    from rag.evidence import rank_sentences

    query = clean_question(query)
    if not isinstance(k, int) or not 1 <= k <= MAX_K:
        raise QuestionError(f"k must be a whole number from 1 to {MAX_K}.")
    engine = get_engine(settings or load_settings())
    found = engine.retriever.search(query, k=k, filters=filters)
    out = []
    for s in found.sources:
        best = rank_sentences(s.paper, found.query, engine.weights)
        out.append({"rank": s.n, "paper_id": s.paper.paper_id, "title": s.paper.title,
                    "url": s.paper.link, "doi": s.paper.doi, "arxiv_id": s.paper.arxiv_id,
                    "authors": s.paper.authors, "year": s.paper.year,
                    "score": s.score, "dense_score": s.dense_score,
                    "keyword_score": s.keyword_score,
                    "best_sentence": as_data(best[0].text) if best else ""})
    return out


def get_paper(paper_id: str, *, settings: Settings | None = None) -> Paper | None:
    """The indexed paper with this id, or None. Raises the index errors of get_engine."""
    from rag.engine import get_engine

    if not isinstance(paper_id, str) or not paper_id.strip():
        return None
    return get_engine(settings or load_settings()).index.papers.get(paper_id.strip())

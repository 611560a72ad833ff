"""Our hybrid retrieval as a LangChain `BaseRetriever`, so other chains can use the index."""
from __future__ import annotations

from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from pydantic import ConfigDict

from rag.config import Settings, load_settings
from rag.engine import get_engine


class AskPapersRetriever(BaseRetriever):
    """Returns one Document per retrieved paper (title and abstract), best first.

    Metadata: paper_id, title, rank, score, dense_score, keyword_score, listings,
    authors, categories, year, doi, arxiv_id, url (the paper's page, "" when unknown).
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    settings: Settings | None = None
    k: int = 5
    filters: dict | None = None

    def _get_relevant_documents(self, query: str, *,
                                run_manager: CallbackManagerForRetrieverRun) -> list[Document]:
        engine = get_engine(self.settings or load_settings())
        found = engine.retriever.search(query, k=self.k, filters=self.filters)
        return [Document(
            page_content=f"{s.paper.title}\n{s.paper.abstract}",
            metadata={"paper_id": s.paper.paper_id, "title": s.paper.title, "rank": s.n,
                      "score": s.score, "dense_score": s.dense_score,
                      "keyword_score": s.keyword_score,
                      "listings": [f"{x.source} {x.date}".strip() for x in s.paper.listings],
                      "authors": s.paper.authors, "categories": s.paper.categories,
                      "year": s.paper.year, "doi": s.paper.doi,
                      "arxiv_id": s.paper.arxiv_id, "url": s.paper.link},
        ) for s in found.sources]

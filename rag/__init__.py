"""askpapers' core library: `from rag import ask`.

Importing this package is cheap: models, FAISS and the index load on the first question
and are reused by later ones.
"""
from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rag.config import Settings
    from rag.types import Answer, Retrieved

__all__ = ["ask", "ask_stream"]


def ask_stream(question: str, *, mode: str | None = None, k: int | None = None,
               history: list[dict] | None = None, filters: dict | None = None,
               settings: Settings | None = None) -> Iterator[Retrieved | str | Answer]:
    """Yield one `Retrieved` (the papers found, each with its best sentence, before any
    model runs), then the answer's text as it is generated, then the full `Answer`.

    `mode` is 'local', 'openai' or 'extractive' (default: settings.llm.mode); `k` the
    number of papers retrieved; `history` earlier chat turns as {"role", "content"} dicts;
    `filters` metadata filters ({"source", "year", "author", "category"}).
    The Answer's sources are the Retrieved's; its citations, like the Retrieved's best
    sentences, carry their paper's DOI, arXiv id and page.
    Raises the typed errors of rag.errors: QuestionError, IndexMissingError,
    IndexMismatchError, IndexCorruptError, ModelError, EndpointError, ConfigError.
    """
    from rag.answer import ask_stream as _stream
    from rag.answer import clean_question
    from rag.config import load_settings
    from rag.engine import get_engine

    clean_question(question)  # refuse a bad question before loading anything heavy
    engine = get_engine(settings or load_settings())
    for item in _stream(engine, question, mode=mode, k=k, history=history, filters=filters):
        yield item if isinstance(item, str) else item.link_citations()  # Retrieved or Answer


def ask(question: str, *, mode: str | None = None, k: int | None = None,
        history: list[dict] | None = None, filters: dict | None = None,
        settings: Settings | None = None) -> Answer:
    """Answer a question from the indexed papers, with citations, or abstain.

    Same arguments and errors as `ask_stream`.
    """
    from rag.types import Answer

    answer = None
    for item in ask_stream(question, mode=mode, k=k, history=history, filters=filters,
                           settings=settings):
        if isinstance(item, Answer):
            answer = item
    return answer

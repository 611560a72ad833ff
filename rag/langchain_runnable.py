"""askpapers' whole question path as a LangChain `Runnable`, to compose with other chains.

    chain = AskPapersRunnable(mode="extractive") | RunnableLambda(lambda a: a["text"])

Input: a question string; a dict {"question" | "messages", and optional "mode", "k",
"filters", "history"}; or a list of chat messages (LangChain messages or {"role",
"content"} dicts), whose last one is the question and earlier ones the history.
Output: the `Answer` as a dict (`Answer.to_dict()`, citations with their links).
`stream`/`astream` yield the answer's text pieces. invoke, batch and their async forms
come from `Runnable` (batch runs in a thread pool).
"""
from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

from langchain_core.runnables import Runnable, RunnableConfig
from langchain_core.runnables.config import ensure_config

from rag.config import Settings
from rag.errors import QuestionError

_ROLES = {"human": "user", "user": "user", "ai": "assistant", "assistant": "assistant"}


def _message(m) -> dict:
    """{"role", "content"} from a LangChain message or a dict (roles: user, assistant, ...)."""
    if isinstance(m, dict):
        role, content = m.get("role", ""), m.get("content", "")
    else:
        role, content = getattr(m, "type", ""), getattr(m, "content", "")
    if not isinstance(content, str):
        content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return {"role": _ROLES.get(role, role), "content": content}


def parse_input(value: Any) -> tuple[str, dict]:
    """(question, options for rag.ask_stream) from any accepted input. Raises QuestionError."""
    if isinstance(value, str):
        return value, {}
    if isinstance(value, list):
        value = {"messages": value}
    if not isinstance(value, dict):
        raise QuestionError("Give a question, a {'question': ...} dict or a list of messages.")
    options = {k: value[k] for k in ("mode", "k", "filters", "history") if value.get(k) is not None}
    if "messages" in value:
        turns = [_message(m) for m in value["messages"]]
        if not turns or turns[-1]["role"] != "user":
            raise QuestionError("The last message must be the user's question.")
        history = [t for t in turns[:-1] if t["role"] in ("user", "assistant")]
        return turns[-1]["content"], {**options, "history": options.get("history", history)}
    return value.get("question"), options


class AskPapersRunnable(Runnable[Any, dict]):
    """Answer questions from the index; the defaults (mode, k, filters) apply unless the
    input gives its own."""

    def __init__(self, settings: Settings | None = None, mode: str | None = None,
                 k: int | None = None, filters: dict | None = None):
        self.settings, self.defaults = settings, {"mode": mode, "k": k, "filters": filters}

    def _items(self, value: Any) -> Iterator:
        from rag import ask_stream

        question, options = parse_input(value)
        options = {**{k: v for k, v in self.defaults.items() if v is not None}, **options}
        return ask_stream(question, settings=self.settings, **options)

    def _answer(self, value: Any) -> dict:
        answer = None
        for item in self._items(value):
            answer = item
        return answer.to_dict()

    def invoke(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> dict:
        """The Answer as a dict. Raises the typed errors of rag.errors."""
        return self._call_with_config(self._answer, input, ensure_config(config))

    def stream(self, input: Any, config: RunnableConfig | None = None,
               **kwargs: Any) -> Iterator[str]:
        """The answer's text pieces as they are produced (not the Retrieved before them)."""
        for item in self._items(input):
            if isinstance(item, str) and item:
                yield item

    async def astream(self, input: Any, config: RunnableConfig | None = None,
                      **kwargs: Any) -> AsyncIterator[str]:
        """`stream` without blocking the event loop (each piece is fetched in a thread)."""
        done = object()
        pieces = self.stream(input, config)
        while (piece := await asyncio.to_thread(next, pieces, done)) is not done:
            yield piece

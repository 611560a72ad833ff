"""AskPapersRunnable with LangChain's own runnable utilities, over the real seed index."""
from __future__ import annotations

import asyncio

import pytest
from langchain_core.messages import AIMessage, HumanMessage
from langchain_core.runnables import RunnableLambda, RunnableParallel

from rag.errors import QuestionError
from rag.langchain_runnable import AskPapersRunnable, parse_input

QUESTION = "what FID does classifier guidance reach?"


@pytest.fixture(scope="module")
def runnable(seed_settings):
    return AskPapersRunnable(seed_settings, mode="extractive")


def test_invoke_returns_the_answer_as_a_dict_and_composes(runnable):
    answer = runnable.invoke(QUESTION)
    assert answer["mode"] == "extractive" and not answer["abstained"] and "[1]" in answer["text"]
    assert {"n", "paper_id", "title", "quote", "start", "end", "url"} <= set(answer["citations"][0])
    chain = runnable | RunnableLambda(lambda a: [c["n"] for c in a["citations"]])
    assert chain.invoke(QUESTION) == [c["n"] for c in answer["citations"]]
    both = RunnableParallel(answer=runnable, question=RunnableLambda(lambda q: q)).invoke(QUESTION)
    assert both["question"] == QUESTION and both["answer"]["text"] == answer["text"]


def test_stream_yields_the_text_pieces(runnable, seed_settings):
    from rag import ask_stream
    from rag.types import Retrieved

    first = next(ask_stream(QUESTION, mode="extractive", settings=seed_settings))
    assert isinstance(first, Retrieved)  # what the runnable's stream must leave out
    pieces = list(runnable.stream(QUESTION))
    assert pieces and all(isinstance(p, str) for p in pieces)
    assert "".join(pieces) == runnable.invoke(QUESTION)["text"]


def test_batch_and_async_forms(runnable):
    off_topic = "What is the boiling point of liquid nitrogen at sea level?"
    sync = runnable.batch([QUESTION, {"question": off_topic, "k": 3}])
    assert [a["abstained"] for a in sync] == [False, True] and len(sync[1]["sources"]) <= 3

    async def run():
        one = await runnable.ainvoke(QUESTION)
        many = await runnable.abatch([QUESTION, off_topic])
        pieces = [p async for p in runnable.astream(QUESTION)]
        return one, many, pieces

    one, many, pieces = asyncio.run(run())
    assert one["text"] == sync[0]["text"] == many[0]["text"] == "".join(pieces)
    assert many[1]["abstained"]


def test_messages_are_question_and_history():
    question, options = parse_input([HumanMessage("first?"), AIMessage("an answer [1]"),
                                     HumanMessage("and then?")])
    assert question == "and then?"
    assert options["history"] == [{"role": "user", "content": "first?"},
                                  {"role": "assistant", "content": "an answer [1]"}]
    question, options = parse_input({"messages": [{"role": "user", "content": "q"}], "k": 2})
    assert question == "q" and options == {"k": 2, "history": []}
    with pytest.raises(QuestionError):
        parse_input([AIMessage("no question")])


def test_a_bad_question_raises_the_typed_error(runnable):
    with pytest.raises(QuestionError):
        runnable.invoke("   ")

"""The HTTP API and the MCP endpoint of `askpapers serve`, tried for real.

The real app (`python -m ui`, a subprocess on 127.0.0.1) serves the seed index in
extractive mode with an API key; the official `openai` client, LangChain's `ChatOpenAI`,
the MCP SDK's own client and plain httpx requests drive it.
"""
from __future__ import annotations

import asyncio
import json

import httpx
import pytest
from test_ui import QUESTION, served_app

from rag import store
from rag.text import as_data

KEY = "test-key-7d1c"
OFF_TOPIC = "What is the boiling point of liquid nitrogen at sea level?"


@pytest.fixture(scope="module")
def api_app(seed_settings, tmp_path_factory):
    """(base URL, settings): the app over the seed index, extractive, with an API key."""
    with served_app(tmp_path_factory.mktemp("api_home"), seed_settings.index_dir,
                    args=("--api-key", KEY)) as (url, _):
        yield url.rstrip("/"), seed_settings


@pytest.fixture(scope="module")
def no_index_app(tmp_path_factory):
    """The app with an API key over an index folder that holds no index."""
    home = tmp_path_factory.mktemp("no_index_home")
    with served_app(home, home / "nothing", args=("--api-key", KEY)) as (url, _):
        yield url.rstrip("/")


def _openai(url: str, key: str = KEY):
    from openai import OpenAI

    return OpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0, timeout=120)


def _abstract(settings, paper_id: str) -> str:
    papers, _ = store.read_records(store.current_build(settings.index_dir))
    return papers[paper_id].abstract


def _check_quoted(citations: list[dict], settings) -> None:
    """Citations (or streamed sources): each quote is its span of the paper's abstract."""
    assert citations, "an answered question carries citations; a search finds papers"
    for c in citations:
        assert set(c) >= {"n", "paper_id", "title", "quote", "span", "url"}
        start, end = c["span"]
        assert as_data(_abstract(settings, c["paper_id"])[start:end]) == c["quote"]


# ---------------------------------------------------------------- the official clients

def test_openai_client_gets_cited_text_and_structured_citations(api_app):
    url, settings = api_app
    done = _openai(url).chat.completions.create(
        model="askpapers-extractive", messages=[{"role": "user", "content": QUESTION}])
    text = done.choices[0].message.content
    extra = done.model_extra
    assert "[1]" in text and extra["abstained"] is False
    _check_quoted(extra["citations"], settings)
    assert {f"[{c['n']}]" for c in extra["citations"]} <= set(
        m for m in ("[1]", "[2]", "[3]", "[4]", "[5]") if m in text)


def test_openai_client_streams_the_same_answer_with_citations_last(api_app):
    url, settings = api_app
    client = _openai(url)
    chunks = list(client.chat.completions.create(
        model="askpapers", stream=True, messages=[{"role": "user", "content": QUESTION}]))
    text = "".join(c.choices[0].delta.content or "" for c in chunks)
    last = chunks[-1]
    assert last.choices[0].finish_reason == "stop"
    assert all("citations" not in (c.model_extra or {}) for c in chunks[:-1])
    assert last.model_extra["abstained"] is False and last.model_extra["text"] == text
    whole = client.chat.completions.create(
        model="askpapers", messages=[{"role": "user", "content": QUESTION}])
    assert whole.choices[0].message.content == text
    assert last.model_extra["citations"] == whole.model_extra["citations"]
    _check_quoted(last.model_extra["citations"], settings)


def test_a_stream_sends_the_sources_before_any_text(api_app):
    url, settings = api_app
    chunks = list(_openai(url).chat.completions.create(
        model="askpapers-extractive", stream=True, messages=[{"role": "user", "content": QUESTION}]))
    with_sources = [i for i, c in enumerate(chunks) if "sources" in (c.model_extra or {})]
    with_text = [i for i, c in enumerate(chunks) if c.choices[0].delta.content]
    assert len(with_sources) == 1 and with_text and with_sources[0] < with_text[0]
    sources = chunks[with_sources[0]].model_extra["sources"]
    whole = httpx.post(f"{url}/api/ask", headers={"authorization": f"Bearer {KEY}"}, timeout=120,
                       json={"question": QUESTION, "mode": "extractive"}).json()
    assert [s["paper_id"] for s in sources] == [s["paper"]["paper_id"] for s in whole["sources"]]
    _check_quoted(sources, settings)


def test_raw_sse_has_a_sources_event_with_an_empty_delta_before_the_text(api_app):
    url, _ = api_app
    with httpx.stream("POST", f"{url}/v1/chat/completions", timeout=120,
                      headers={"authorization": f"Bearer {KEY}"},
                      json={"model": "askpapers-extractive", "stream": True,
                            "messages": [{"role": "user", "content": QUESTION}]}) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        events = [line.removeprefix("data: ") for line in r.iter_lines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    kinds = []
    for event in map(json.loads, events[:-1]):
        delta = event["choices"][0]["delta"]
        if "sources" in event:
            assert delta == {} and event["object"] == "chat.completion.chunk"
            kinds.append("sources")
        elif delta.get("content"):
            kinds.append("text")
    assert kinds[0] == "sources" and "text" in kinds and kinds.count("sources") == 1


def test_off_topic_question_abstains_without_citations(api_app):
    url, _ = api_app
    done = _openai(url).chat.completions.create(
        model="askpapers-extractive", messages=[{"role": "user", "content": OFF_TOPIC}])
    assert done.model_extra["abstained"] is True and done.model_extra["citations"] == []


def test_earlier_messages_are_the_follow_up_history(api_app):
    url, _ = api_app
    first = "What does the paper on classifier guidance for diffusion models report?"
    follow = "and what FID does it reach on ImageNet 512x512?"
    client = _openai(url)

    def ask(messages):
        done = client.chat.completions.create(model="askpapers-extractive", messages=messages)
        return {c["title"] for c in done.model_extra["citations"]}

    earlier = client.chat.completions.create(
        model="askpapers-extractive", messages=[{"role": "user", "content": first}])
    with_history = ask([{"role": "system", "content": "Be brief."},
                        {"role": "user", "content": first},
                        {"role": "assistant", "content": earlier.choices[0].message.content},
                        {"role": "user", "content": follow}])
    assert "Diffusion Models Beat GANs on Image Synthesis" in with_history


def test_langchain_chat_openai_talks_to_the_server(api_app):
    from langchain_openai import ChatOpenAI

    url, _ = api_app
    llm = ChatOpenAI(base_url=f"{url}/v1", api_key=KEY, model="askpapers-extractive",
                     max_retries=0, timeout=120)
    reply = llm.invoke(QUESTION)
    assert "[1]" in reply.content
    streamed = "".join(chunk.content for chunk in llm.stream(QUESTION))
    assert streamed == reply.content


def test_models_and_api_ask(api_app):
    url, _ = api_app
    models = _openai(url).models.list()
    assert [m.id for m in models.data] == ["askpapers", "askpapers-local", "askpapers-openai",
                                           "askpapers-extractive"]
    r = httpx.post(f"{url}/api/ask", headers={"authorization": f"Bearer {KEY}"}, timeout=120,
                   json={"question": QUESTION, "mode": "extractive", "k": 3})
    body = r.json()
    assert r.status_code == 200 and body["mode"] == "extractive" and len(body["sources"]) == 3
    assert body["citations"] and body["bibtex"].count("@") == len({c["n"] for c in body["citations"]})


# ---------------------------------------------------------------- refusals

def _no_data(r: httpx.Response) -> None:
    body = r.json()
    assert set(body) == {"error"} and "askpapers-" not in r.text and "FID" not in r.text


def test_requests_without_the_right_key_get_401_and_no_data(api_app):
    import openai

    url, _ = api_app
    chat = {"model": "askpapers", "messages": [{"role": "user", "content": QUESTION}]}
    for headers in ({}, {"authorization": "Bearer wrong"}, {"authorization": KEY}):
        for method, path, body in (("POST", "/v1/chat/completions", chat), ("GET", "/v1/models", None),
                                   ("POST", "/api/ask", {"question": QUESTION})):
            r = httpx.request(method, url + path, headers=headers, json=body, timeout=30)
            assert r.status_code == 401, (path, headers)
            assert r.json()["error"]["code"] == "invalid_api_key"
            _no_data(r)
    with pytest.raises(openai.AuthenticationError):
        _openai(url, key="wrong").chat.completions.create(**chat)


@pytest.mark.parametrize("body, status, code", [
    ({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}, 404, "model_not_found"),
    ({"model": "askpapers", "messages": []}, 400, "invalid_messages"),
    ({"model": "askpapers"}, 400, "invalid_messages"),
    ({"model": "askpapers", "messages": [{"role": "user", "content": "  ?! "}]}, 400, "invalid_question"),
    ({"model": "askpapers", "messages": [{"role": "assistant", "content": "hi"}]}, 400, "invalid_messages"),
    ({"model": "askpapers", "messages": [{"role": "user", "content": QUESTION}], "k": 0}, 400, "invalid_k"),
    ({"model": "askpapers", "stream": True, "messages": [{"role": "user", "content": ""}]}, 400,
     "invalid_question"),
])
def test_bad_requests_get_openai_style_errors(api_app, body, status, code):
    url, _ = api_app
    r = httpx.post(f"{url}/v1/chat/completions", json=body, timeout=60,
                   headers={"authorization": f"Bearer {KEY}"})
    assert r.status_code == status
    err = r.json()["error"]
    assert err["code"] == code and err["message"] and err["type"]


def test_the_openai_client_raises_its_own_errors(api_app):
    import openai

    url, _ = api_app
    client = _openai(url)
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": QUESTION}])
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="askpapers", messages=[])


def test_no_index_is_503_with_what_to_run(no_index_app):
    r = httpx.post(f"{no_index_app}/v1/chat/completions", timeout=60,
                   headers={"authorization": f"Bearer {KEY}"},
                   json={"model": "askpapers", "messages": [{"role": "user", "content": QUESTION}]})
    assert r.status_code == 503
    message = r.json()["error"]["message"]
    assert "askpapers index build" in message and "no_index_home" not in message


def test_the_guard_covers_the_api_and_mcp(api_app):
    url, _ = api_app
    auth = {"authorization": f"Bearer {KEY}"}
    for path in ("/v1/models", "/mcp"):
        foreign_origin = httpx.get(url + path, headers={**auth, "origin": "https://evil.example"})
        foreign_host = httpx.get(url + path, headers={**auth, "host": "evil.example"})
        assert foreign_origin.status_code == 403 and foreign_host.status_code == 403
    assert "access-control-allow-origin" not in foreign_origin.headers


def test_the_api_key_rule(monkeypatch):
    from rag.config import load_settings
    from ui.api import ApiKey

    monkeypatch.setenv("ASKPAPERS_API_KEY", "from-env")
    load_settings()  # not an unknown setting
    assert ApiKey.for_server(None, exposed=False) == ApiKey("from-env", True)
    assert ApiKey.for_server("given", exposed=False).key == "given"
    monkeypatch.delenv("ASKPAPERS_API_KEY")

    assert ApiKey.for_server(None, exposed=False).refusal(None) is None  # loopback, no key
    exposed = ApiKey.for_server(None, exposed=True)
    assert exposed.refusal(None).status == 401 and exposed.refusal("Bearer x").status == 401
    keyed = ApiKey.for_server("k", exposed=False)
    assert keyed.refusal("Bearer k") is None and keyed.refusal("Bearer K").status == 401


# ---------------------------------------------------------------- MCP over HTTP

async def _mcp_session(url: str, calls: list[tuple[str, dict]]):
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client
    from mcp.shared._httpx_utils import create_mcp_http_client

    http = create_mcp_http_client(headers={"authorization": f"Bearer {KEY}"})
    async with Client(streamable_http_client(f"{url}/mcp", http_client=http)) as client:
        tools = await client.list_tools()
        results = [await client.call_tool(name, args) for name, args in calls]
    return [t.name for t in tools.tools], results


def _json(result) -> dict:
    assert not result.is_error, result.content
    return json.loads(result.content[0].text)


def test_mcp_tools_over_streamable_http(api_app):
    url, settings = api_app
    names, (found, answer, paper, missing, bad_mode) = asyncio.run(_mcp_session(url, [
        ("search_papers", {"query": "classifier guidance FID", "k": 3}),
        ("ask", {"question": QUESTION, "mode": "extractive"}),
        ("get_paper", {"paper_id": "f87bcd0e08cab450"}),
        ("get_paper", {"paper_id": "no-such-paper"}),
        ("ask", {"question": QUESTION, "mode": "gpt"}),
    ]))
    assert names == ["search_papers", "ask", "get_paper"]
    papers = _json(found)["papers"]
    assert [p["rank"] for p in papers] == [1, 2, 3]
    assert all(p["best_sentence"] in as_data(_abstract(settings, p["paper_id"])) for p in papers)
    got = _json(answer)
    assert got["abstained"] is False and "[1]" in got["answer"]
    _check_quoted(got["citations"], settings)
    one = _json(paper)
    assert one["title"] == "Diffusion Models Beat GANs on Image Synthesis"
    assert one["bibtex"].startswith("@misc{") and one["abstract"]
    assert missing.is_error and "search_papers" in missing.content[0].text
    assert bad_mode.is_error and "extractive" in bad_mode.content[0].text


def test_mcp_without_the_key_is_refused(api_app):
    url, _ = api_app
    r = httpx.post(f"{url}/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
                   headers={"accept": "application/json, text/event-stream"})
    assert r.status_code == 401
    _no_data(r)

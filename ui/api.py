"""The HTTP API served beside the chat UI (`askpapers serve`), on the same FastAPI app.

- `POST /v1/chat/completions`: OpenAI-compatible, streamed (SSE) or not. `model` picks the
  answer mode (`askpapers` = the configured one, `askpapers-local`, ...); earlier messages
  are the follow-up history. The text keeps its [n] markers; the extra fields `citations`
  and `abstained` carry the structure (the streamed form sends them in its last chunk,
  and the retrieved papers, `sources`, in a chunk of their own before any text).
- `GET /v1/models`, `GET /v1/models/{id}`, and `POST /api/ask` (the Answer as JSON).

Errors are OpenAI-style error objects. A bearer key (`--api-key` or ASKPAPERS_API_KEY) is
required when one is set, and always when the server is not on loopback; without it a
request gets 401 and no data. Host and Origin checks are ui/guard.py's, which wraps the
whole app.
"""
from __future__ import annotations

import hmac
import json
import logging
import os
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import get_args

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.concurrency import iterate_in_threadpool, run_in_threadpool

from rag.config import LLMSettings, Settings
from rag.errors import (
    AskPapersError,
    ConfigError,
    EndpointError,
    IndexCorruptError,
    IndexMismatchError,
    IndexMissingError,
    ModelError,
    QuestionError,
    VectorStoreError,
)
from rag.types import Answer, Retrieved
from ui.render import scrub_paths

log = logging.getLogger(__name__)

API_KEY_ENV = "ASKPAPERS_API_KEY"
MODEL = "askpapers"
MAX_K = 50
_UNAVAILABLE = (IndexMissingError, IndexCorruptError, IndexMismatchError, ModelError,
                EndpointError, VectorStoreError, ConfigError)


def model_modes() -> dict[str, str | None]:
    """Model name -> answer mode (None: the configured default)."""
    modes = get_args(LLMSettings.model_fields["mode"].annotation)
    return {MODEL: None, **{f"{MODEL}-{m}": m for m in modes}}


# ---------------------------------------------------------------- errors and the key

class ApiError(Exception):
    """A request the API refuses, as an OpenAI-style error object with its HTTP status."""

    def __init__(self, status: int, message: str, code: str, param: str | None = None,
                 kind: str = "invalid_request_error"):
        super().__init__(message)
        self.status, self.message, self.code, self.param, self.kind = status, message, code, param, kind

    def body(self) -> dict:
        return {"error": {"message": self.message, "type": self.kind, "param": self.param,
                          "code": self.code}}

    def response(self) -> JSONResponse:
        headers = {"www-authenticate": "Bearer"} if self.status == 401 else None
        return JSONResponse(self.body(), status_code=self.status, headers=headers)


def from_library(e: Exception) -> ApiError:
    """The API error for an exception raised while answering (no server path in it)."""
    if isinstance(e, QuestionError):
        return ApiError(400, str(e), "invalid_question", "messages")
    if isinstance(e, _UNAVAILABLE):
        return ApiError(503, scrub_paths(str(e)), "unavailable", kind="service_unavailable")
    if isinstance(e, AskPapersError):
        return ApiError(500, scrub_paths(str(e)), "server_error", kind="server_error")
    log.error("API request failed", exc_info=e)
    return ApiError(500, f"Unexpected {type(e).__name__}; the server log has the details.",
                    "server_error", kind="server_error")


@dataclass(frozen=True)
class ApiKey:
    """The bearer key the API and /mcp ask for: `key` when set, and some key always when
    `required` (a server reachable from other machines)."""

    key: str | None
    required: bool

    @classmethod
    def for_server(cls, key: str | None, exposed: bool) -> ApiKey:
        """The key given (or from ASKPAPERS_API_KEY); required when the server is exposed."""
        key = key or os.environ.get(API_KEY_ENV) or None
        return cls(key, exposed or key is not None)

    def refusal(self, authorization: str | None) -> ApiError | None:
        """The 401 for a request with this Authorization header, or None to let it in."""
        if not self.required:
            return None
        if self.key is None:
            return ApiError(401, "This server is reachable from other machines and has no API "
                            "key; start it with --api-key KEY (or ASKPAPERS_API_KEY).",
                            "invalid_api_key", kind="authentication_error")
        scheme, _, given = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(),
                                                                  self.key.encode()):
            return ApiError(401, "Missing or wrong API key: send the header "
                            "'Authorization: Bearer <key>'.", "invalid_api_key",
                            kind="authentication_error")
        return None


class KeyGate:
    """ASGI wrapper refusing HTTP requests that lack the API key with a 401 (used for /mcp)."""

    def __init__(self, app, key: ApiKey):
        self.app, self.key = app, key

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            auth = next((v.decode("latin-1") for k, v in scope.get("headers", [])
                         if k.lower() == b"authorization"), None)
            if (refused := self.key.refusal(auth)) is not None:
                return await refused.response()(scope, receive, send)
        await self.app(scope, receive, send)


# ---------------------------------------------------------------- requests

@dataclass
class AskRequest:
    question: str
    mode: str | None
    history: list[dict]
    k: int | None = None
    filters: dict | None = None
    stream: bool = False
    model: str = MODEL


def _text(content, where: str) -> str:
    """A message's text: a string, or the text parts of a content list."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content
                       if isinstance(p, dict) and p.get("type") == "text" and isinstance(p.get("text"), str))
    raise ApiError(400, f"{where}: content must be text or a list of text parts.",
                   "invalid_messages", "messages")


def _options(body: dict) -> dict:
    k, filters = body.get("k"), body.get("filters")
    if k is not None and (not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= MAX_K):
        raise ApiError(400, f"k must be a whole number from 1 to {MAX_K}.", "invalid_k", "k")
    if filters is not None and not isinstance(filters, dict):
        raise ApiError(400, "filters must be an object such as {\"year\": 2024}.",
                       "invalid_filters", "filters")
    return {"k": k, "filters": filters}


def parse_chat(body: object) -> AskRequest:
    """The question, history, mode and options of a chat completions body.

    Raises ApiError: 400 for a malformed body or messages, 404 for an unknown model."""
    if not isinstance(body, dict):
        raise ApiError(400, "The body must be a JSON object.", "invalid_body")
    model = body.get("model", MODEL)
    modes = model_modes()
    if not isinstance(model, str) or model not in modes:
        raise ApiError(404, f"The model {model!r} does not exist; use one of: "
                       f"{', '.join(modes)}.", "model_not_found", "model")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise ApiError(400, "messages must be a non-empty list; the last one is the question.",
                       "invalid_messages", "messages")
    turns = []
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or not isinstance(m.get("role"), str):
            raise ApiError(400, f"messages[{i}] must be an object with a role.",
                           "invalid_messages", "messages")
        turns.append({"role": m["role"], "content": _text(m.get("content"), f"messages[{i}]")})
    if turns[-1]["role"] != "user":
        raise ApiError(400, "The last message must be the user's question.",
                       "invalid_messages", "messages")
    history = [t for t in turns[:-1] if t["role"] in ("user", "assistant")]
    return AskRequest(turns[-1]["content"], modes[model], history,
                      stream=body.get("stream") is True, model=model, **_options(body))


def parse_ask(body: object) -> AskRequest:
    """The fields of a /api/ask body: question, and optional mode, k, filters, history.

    Raises ApiError (400)."""
    if not isinstance(body, dict):
        raise ApiError(400, "The body must be a JSON object with a question.", "invalid_body")
    mode = body.get("mode")
    if mode is not None and (not isinstance(mode, str) or mode not in model_modes().values()):
        raise ApiError(400, f"Unknown mode {mode!r}.", "invalid_mode", "mode")
    history = body.get("history") or []
    if not isinstance(history, list) or not all(
            isinstance(h, dict) and isinstance(h.get("content"), str) for h in history):
        raise ApiError(400, "history must be a list of {role, content} objects.",
                       "invalid_history", "history")
    question = body.get("question")
    if not isinstance(question, str):
        raise ApiError(400, "question must be text.", "invalid_question", "question")
    return AskRequest(question, mode, history, **_options(body))


# ---------------------------------------------------------------- responses

def citations_json(answer: Answer) -> list[dict]:
    """The structured citations: n, paper id, title, quote, its span in the abstract, links."""
    return [{"n": c.n, "paper_id": c.paper_id, "title": c.title, "quote": c.quote,
             "span": [c.start, c.end], "url": c.url, "doi": c.doi, "arxiv_id": c.arxiv_id}
            for c in answer.citations]


def sources_json(retrieved: Retrieved) -> list[dict]:
    """The retrieved papers, best first: n, paper id, title, links, scores, and the best
    sentence (`quote`, its `span` in the abstract; "" and null for a paper with none)."""
    out = []
    for s in retrieved.sources:
        best = retrieved.best.get(s.n)
        out.append({"n": s.n, "paper_id": s.paper.paper_id, "title": s.paper.title,
                    "url": s.paper.link, "doi": s.paper.doi, "arxiv_id": s.paper.arxiv_id,
                    "score": s.score, "quote": best.quote if best else "",
                    "span": [best.start, best.end] if best else None})
    return out


def completion_json(answer: Answer, req: AskRequest) -> dict:
    """A chat.completion object for a finished answer, with citations and abstained."""
    return {"id": f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion",
            "created": int(time.time()), "model": req.model,
            "choices": [{"index": 0, "finish_reason": "stop", "logprobs": None,
                         "message": {"role": "assistant", "content": answer.text}}],
            "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
            "citations": citations_json(answer), "abstained": answer.abstained}


def _sse(obj) -> bytes:
    return f"data: {json.dumps(obj, ensure_ascii=False)}\n\n".encode()


async def stream_chunks(first, items: Iterator, req: AskRequest) -> AsyncIterator[bytes]:
    """SSE chat.completion.chunk events: a chunk with an empty delta carrying `sources`
    (as soon as retrieval ends), the text pieces, then a last chunk carrying citations,
    abstained and `text` (the checked answer, which may differ from the pieces when the
    citation check removed a marker)."""
    base = {"id": f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion.chunk",
            "created": int(time.time()), "model": req.model}

    def chunk(delta: dict, finish: str | None = None, **extra) -> bytes:
        return _sse({**base, "choices": [{"index": 0, "delta": delta, "finish_reason": finish,
                                          "logprobs": None}], **extra})

    yield chunk({"role": "assistant", "content": ""})
    item, rest = first, iterate_in_threadpool(items)
    try:
        while True:
            if isinstance(item, Retrieved):
                yield chunk({}, sources=sources_json(item))
            elif isinstance(item, str):
                if item:
                    yield chunk({"content": item})
            else:
                yield chunk({}, "stop", citations=citations_json(item), abstained=item.abstained,
                            text=item.text)
                break
            item = await rest.__anext__()
    except StopAsyncIteration:
        pass
    except Exception as e:  # noqa: BLE001 - after the headers, an error can only be an event
        yield _sse(from_library(e).body())
    finally:  # a client that left must not leave the answer (and the model's lock) held
        await run_in_threadpool(_close, items)
    yield b"data: [DONE]\n\n"


def _run(req: AskRequest, settings: Settings) -> Iterator:
    from rag import ask_stream

    return ask_stream(req.question, mode=req.mode, k=req.k, history=req.history,
                      filters=req.filters, settings=settings)


def _ask(req: AskRequest, settings: Settings) -> Answer:
    from rag import ask

    return ask(req.question, mode=req.mode, k=req.k, history=req.history, filters=req.filters,
               settings=settings)


def _close(items) -> None:
    try:
        items.close()
    except ValueError:  # still running in a worker thread: it is closed when collected
        pass


def _next(items: Iterator):
    return next(items, None)


# ---------------------------------------------------------------- routes

def make_router(settings: Settings, key: ApiKey) -> APIRouter:
    """The API's routes for these settings, each behind the key check."""
    router = APIRouter()

    async def body_of(request: Request) -> object:
        if (refused := key.refusal(request.headers.get("authorization"))) is not None:
            raise refused
        try:
            return json.loads(await request.body() or b"null")
        except (ValueError, UnicodeDecodeError):
            raise ApiError(400, "The body is not valid JSON.", "invalid_json") from None

    @router.post("/v1/chat/completions")
    async def chat_completions(request: Request):
        try:
            req = parse_chat(await body_of(request))
            if not req.stream:
                return JSONResponse(completion_json(await run_in_threadpool(_ask, req, settings), req))
            items = _run(req, settings)
            first = await run_in_threadpool(_next, items)  # errors before the sources: a status
            return StreamingResponse(stream_chunks(first, items, req),
                                     media_type="text/event-stream",
                                     headers={"cache-control": "no-cache", "x-accel-buffering": "no"})
        except ApiError as e:
            return e.response()
        except Exception as e:  # noqa: BLE001 - every failure is an error object
            return from_library(e).response()

    @router.post("/api/ask")
    async def api_ask(request: Request):
        try:
            req = parse_ask(await body_of(request))
            answer = await run_in_threadpool(_ask, req, settings)
            return JSONResponse({**answer.to_dict(), "bibtex": answer.to_bibtex()})
        except ApiError as e:
            return e.response()
        except Exception as e:  # noqa: BLE001
            return from_library(e).response()

    def model_json(name: str) -> dict:
        return {"id": name, "object": "model", "created": 0, "owned_by": "askpapers"}

    @router.get("/v1/models")
    async def models(request: Request):
        if (refused := key.refusal(request.headers.get("authorization"))) is not None:
            return refused.response()
        return JSONResponse({"object": "list", "data": [model_json(m) for m in model_modes()]})

    @router.get("/v1/models/{name}")
    async def model(name: str, request: Request):
        if (refused := key.refusal(request.headers.get("authorization"))) is not None:
            return refused.response()
        if name not in model_modes():
            return ApiError(404, f"The model {name!r} does not exist.", "model_not_found",
                            "model").response()
        return JSONResponse(model_json(name))

    return router


def add_api(app: FastAPI, settings: Settings, key: ApiKey) -> None:
    """Add the API's routes to the app the UI runs on."""
    app.include_router(make_router(settings, key))


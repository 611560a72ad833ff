"""The chat-model seam: OpenAI-style messages in, streamed text out.

Backends: `LlamaCppChat` (a local GGUF through llama.cpp) and `OpenAIChat` (any
OpenAI-compatible endpoint through LangChain). `get_chat_model` picks one from a mode.
Heavy libraries are imported only when a backend is built.
"""
from __future__ import annotations

import atexit
import logging
import os
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol
from urllib.parse import urlparse

from rag.config import Settings
from rag.errors import ConfigError, EndpointError, MissingExtraError, ModelError

log = logging.getLogger(__name__)

Messages = list[dict]


class ChatModel(Protocol):
    """A chat model: `name` for display and manifests, `stream` for text pieces."""

    name: str

    def stream(self, messages: Messages, *, max_tokens: int,
               stop: list[str] | None = None, fixed: int = 0) -> Iterator[str]:
        """Yield the answer's text pieces as they are generated. The first `fixed`
        characters of the last message are the same in many prompts (a paper's head): a
        model that can keep its state for them does."""
        ...

    def complete(self, messages: Messages, *, max_tokens: int,
                 stop: list[str] | None = None, fixed: int = 0) -> str:
        """The whole answer as one string (the joined stream)."""
        return "".join(self.stream(messages, max_tokens=max_tokens, stop=stop, fixed=fixed))


def get_chat_model(settings: Settings, mode: str) -> ChatModel:
    """The chat model for `mode` ('local' or 'openai'); local models load once per process.

    Raises ConfigError for another mode, ModelError or EndpointError when building fails,
    MissingExtraError when llama-cpp-python is not installed.
    """
    if mode == "local":
        from rag.models import resolve_gguf
        from rag.prompts import HEAD

        llm = settings.llm
        path = resolve_gguf(settings)
        states = None
        if llm.paper_states_mb:
            from rag.paper_states import PaperStates, model_identity

            states = PaperStates(settings.home.expanduser() / "states",
                                 model_identity(path, flash_attn=llm.flash_attn),
                                 llm.paper_states_mb * 2**20)
        return LlamaCppChat(path, n_ctx=llm.n_ctx, n_threads=llm.n_threads,
                            n_batch=llm.n_batch, flash_attn=llm.flash_attn, warm_head=HEAD,
                            states=states)
    if mode == "openai":
        return OpenAIChat(settings)
    raise ConfigError(f"Unknown chat model mode {mode!r}; use 'local' or 'openai'.")


# --- local: llama.cpp -------------------------------------------------------------

# One Llama per (file, load options) per process: llama.cpp reuses the KV cache for the
# prompt prefix shared with the previous call only on the same object.
_LOADED: dict[tuple, tuple[object, _Turns, object]] = {}
_LOAD_LOCK = threading.Lock()
GIVE_WAY_TOKENS = 32  # a background reading checks for waiting questions this often (~1 s)


class _Turns:
    """One loaded model's lock, and how many foreground calls (questions) wait for it:
    reading paper heads in the background (`prefill(give_way=True)`) stops for them."""

    def __init__(self):
        self.lock = threading.Lock()
        self.waiting = 0
        self.last_used = 0.0  # time.monotonic() when a question last had the model
        self._count = threading.Lock()

    @contextmanager
    def foreground(self):
        """Hold the model for a question (its answer or its prompt head), noted as waiting
        until it has it."""
        with self._count:
            self.waiting += 1
        try:
            self.lock.acquire()
        finally:
            with self._count:
                self.waiting -= 1
        try:
            yield
        finally:
            self.last_used = time.monotonic()
            self.lock.release()


@dataclass
class CallStats:
    """What one local call cost: prompt tokens (of which `cached` came from the KV cache),
    generated tokens, and seconds to the first piece and to the end."""

    prompt_tokens: int
    cached_tokens: int
    gen_tokens: int = 0
    first_s: float | None = None
    total_s: float = 0.0


class LlamaCppChat(ChatModel):
    """A local GGUF model run by llama.cpp, greedy (temperature 0), one generation at a time.

    The prompt is formatted with the model's own chat template and tokenized here, so each
    call knows how many of its prompt tokens the KV cache already held (`last_call`).
    With `states`, a prompt's fixed head (system prompt and top paper) is read from its
    saved state, or read and saved (rag.paper_states).
    """

    def __init__(self, model_path: Path, *, n_ctx: int = 4096, n_threads: int | None = None,
                 n_batch: int = 512, flash_attn: bool = True, warm_head: Messages | None = None,
                 states=None):
        self.name = f"llama.cpp:{Path(model_path).name}"
        self.n_ctx = n_ctx
        self.states = states
        self._llama, self._turns, self._template = _load_llama(
            Path(model_path), n_ctx=n_ctx, n_threads=n_threads or os.cpu_count(),
            n_batch=n_batch, flash_attn=flash_attn)
        self.last_call: CallStats | None = None
        if warm_head:
            self.warm(warm_head)

    def tokens(self, messages: Messages) -> list[int]:
        """The prompt's tokens, as the chat template renders `messages`."""
        return self._tokenize(self._template(messages=messages).prompt)

    def _tokenize(self, text: str) -> list[int]:
        # The template writes the special tokens itself, so none are added here.
        return self._llama.tokenize(text.encode("utf-8"), add_bos=False, special=True)

    def _head_ids(self, messages: Messages, chars: int) -> list[int]:
        """The tokens of `messages` rendered up to `chars` characters into the last
        message's text, less the last token (which may merge with what follows)."""
        marker = "\x00"
        *first, last = messages
        content = last["content"][:chars] + marker
        text = self._template(messages=[*first, {**last, "content": content}]).prompt
        return self._tokenize(text[:text.index(marker)])[:-1]

    def warm(self, head: Messages, *, cut: bool = False) -> None:
        """Make the KV cache hold a fixed prompt head (`head` rendered up to the end of its
        last message's text), so the first question reuses it like every later one; the
        head is evaluated only when the cache lacks it. `cut`: forget what follows it."""
        ids = self._head_ids(head, len(head[-1]["content"]))
        with self._turns.foreground():
            held = _common_prefix(self._llama, ids)
            if held < len(ids) or cut:
                self._llama.n_tokens = held  # the next evaluation drops the cache beyond
            if held < len(ids):
                self._llama.eval(ids[held:])

    def prefill(self, messages: Messages, fixed: int, *, give_way: bool = False) -> int | None:
        """Make the KV cache hold the head of `messages` (its first `fixed` characters of
        the last message): loaded from its saved state, or read and saved. The tokens read,
        or None when `give_way` and a question came to wait for the model (nothing saved).
        Raises ModelError when the head does not fit the context."""
        with self._turns.lock:
            head = self._head_ids(messages, fixed)
            if len(head) >= self.n_ctx:
                raise ModelError(f"A prompt head of {len(head)} tokens does not fit the local "
                                 f"model's context; raise ASKPAPERS_LLM__N_CTX (now {self.n_ctx}).")
            return self._prefill(head, give_way)

    def idle_s(self) -> float | None:
        """Seconds since a question last had the model (None when one waits for it)."""
        if self._turns.waiting:
            return None
        return time.monotonic() - self._turns.last_used

    def has_state(self, messages: Messages, fixed: int) -> bool:
        """Whether the head of `messages` has a saved state."""
        return self.states is not None and self.states.has(self._head_ids(messages, fixed))

    def _prefill(self, head: list[int], give_way: bool = False) -> int | None:
        llama = self._llama
        held = _common_prefix(llama, head)
        if held == len(head) or (self.states and self.states.load(llama, head)):
            return 0
        held = _common_prefix(llama, head)
        llama.n_tokens = held  # eval drops the cache beyond n_tokens
        step = GIVE_WAY_TOKENS if give_way else len(head)
        for start in range(held, len(head), step):
            if give_way and self._turns.waiting:
                return None
            llama.eval(head[start:start + step])
        if self.states:
            self.states.save(llama, head)
        return len(head) - held

    def _read_prompt_head(self, messages: Messages, ids: list[int], fixed: int) -> int:
        """With saved states, make the KV cache hold the prompt's fixed head; the tokens
        read for it (0 when it was cached or loaded)."""
        if self.states is None or not fixed:
            return 0
        head = self._head_ids(messages, fixed)
        return self._prefill(head) if ids[:len(head)] == head else 0

    def _failed(self, e: Exception) -> ModelError:
        return ModelError(f"The local model failed: {e}. If the prompt is too long, raise "
                          f"ASKPAPERS_LLM__N_CTX (now {self.n_ctx}) or lower "
                          "ASKPAPERS_RETRIEVAL__K.")

    def stream(self, messages: Messages, *, max_tokens: int,
               stop: list[str] | None = None, fixed: int = 0) -> Iterator[str]:
        """Yield text pieces; raises ModelError when the prompt does not fit or decoding fails."""
        t0 = time.perf_counter()
        stats = None
        with self._turns.foreground():
            try:
                rendered = self._template(messages=messages)
                ids = self._tokenize(rendered.prompt)
                read = self._read_prompt_head(messages, ids, fixed)
                stats = self.last_call = CallStats(
                    len(ids), _common_prefix(self._llama, ids) - read)
                chunks = self._llama.create_completion(
                    ids, max_tokens=max_tokens, stop=(stop or []) + rendered.stop,
                    stopping_criteria=rendered.stopping_criteria, temperature=0.0, stream=True)
                for chunk in chunks:
                    piece = chunk["choices"][0]["text"]
                    if piece:
                        if stats.first_s is None:
                            stats.first_s = time.perf_counter() - t0
                        yield piece
            except (ValueError, RuntimeError) as e:
                raise self._failed(e) from None
            finally:
                if stats is not None:
                    # The last sampled token (end of text or the limit) is never evaluated.
                    stats.gen_tokens = max(0, self._llama.n_tokens - stats.prompt_tokens + 1)
                    stats.total_s = time.perf_counter() - t0

    def yes_probability(self, messages: Messages, *, fixed: int = 0) -> float:
        """P(yes) / (P(yes) + P(no)) of the reply's first token to a yes-or-no prompt: the
        model's graded answer, read from the next-token logits of one prompt evaluation
        (nothing is generated, so no wording hides a doubt). The prompt stays in the KV
        cache: an answer sharing its prefix reads only what follows.

        Raises ModelError when the prompt does not fit or evaluation fails.
        """
        import llama_cpp
        import numpy as np

        t0 = time.perf_counter()
        llama, stats = self._llama, None
        with self._turns.foreground():
            try:
                ids = self.tokens(messages)
                if len(ids) >= self.n_ctx:
                    raise ValueError(f"a prompt of {len(ids)} tokens does not fit")
                read = self._read_prompt_head(messages, ids, fixed)
                # The logits are those of the last token evaluated: at least that one is.
                held = min(_common_prefix(llama, ids), len(ids) - 1)
                stats = self.last_call = CallStats(len(ids), held - read)
                llama.n_tokens = held  # eval drops the cache beyond n_tokens
                llama.eval(ids[held:])
                logits = np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(llama.ctx, -1),
                                               shape=(llama.n_vocab(),))
            except (ValueError, RuntimeError) as e:
                raise self._failed(e) from None
            finally:
                if stats is not None:
                    stats.total_s = time.perf_counter() - t0
            yes, no = self._yes_no_tokens()
            p = np.exp(logits - logits.max())
        return float(p[yes].sum() / max(p[yes].sum() + p[no].sum(), 1e-30))

    def _yes_no_tokens(self) -> tuple[list[int], list[int]]:
        """The first tokens of "yes" and "no" as a reply starts them, in three casings."""
        first = lambda w: self._llama.tokenize(w.encode(), add_bos=False, special=False)[0]  # noqa: E731
        return ([first(w) for w in ("yes", "Yes", "YES")],
                [first(w) for w in ("no", "No", "NO")])


def _common_prefix(llama, ids: list[int]) -> int:
    """How many leading tokens of `ids` the model's KV cache holds already."""
    held = llama._input_ids  # llama.cpp's own record of the cached tokens
    n = 0
    for a, b in zip(held, ids, strict=False):
        if a != b:
            break
        n += 1
    return n


def _chat_template(llama):
    """The GGUF's own chat template, rendered as llama-cpp-python's chat completion does.

    Raises ModelError when the file carries no template.
    """
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    template = llama.metadata.get("tokenizer.chat_template")
    if not template:
        raise ModelError("The local model file has no chat template; use a chat (instruct) "
                         "GGUF model.")
    eos, bos = llama.token_eos(), llama.token_bos()
    text = lambda t: llama.detokenize([t], special=True).decode("utf-8", "replace") if t >= 0 else ""  # noqa: E731
    return Jinja2ChatFormatter(template=template, eos_token=text(eos), bos_token=text(bos),
                               stop_token_ids=[eos])


def _load_llama(path: Path, **options) -> tuple[object, _Turns, object]:
    """The process-wide Llama for this file and these load options, its turns (lock) and
    its chat template, loaded (and the template compiled) on first use."""
    key = (str(path.resolve()), *sorted(options.items()))
    with _LOAD_LOCK:
        if key not in _LOADED:
            if not _LOADED:
                atexit.register(_close_all)
            llama = _new_llama(path, **options)
            _LOADED[key] = (llama, _Turns(), _chat_template(llama))
        return _LOADED[key]


def _close_all() -> None:
    # Closed before interpreter shutdown: llama_cpp's own __del__ then fails noisily. A
    # background reading (a daemon thread) sees a call waiting, stops within a slice and
    # waits for good; a call still running gets 10 s to end.
    for llama, turns, _ in _LOADED.values():
        with turns._count:
            turns.waiting += 1
        if turns.lock.acquire(timeout=10):
            llama.close()
    _LOADED.clear()


def _new_llama(path: Path, **options):
    try:
        import llama_cpp
    except ImportError:
        raise MissingExtraError("llama-cpp-python is not installed; run `make install`.") from None
    log.info("loading %s (%s)", path, options)
    # Prompt-lookup decoding (llama_cpp.llama_speculative) was measured and left out: it
    # makes llama.cpp keep every token's logits, which slowed the first token by ~30% and
    # the whole answer too (docs/measured.md, "Faster local answers").
    try:
        return llama_cpp.Llama(model_path=str(path), logits_all=False, verbose=False, **options)
    except ValueError:  # llama_cpp's only signal for a missing, truncated or corrupt file
        raise ModelError(f"Cannot load model {path}: the file is truncated, corrupt or not a "
                         "llama.cpp GGUF model; delete it to re-assemble, or fix "
                         "ASKPAPERS_LLM__MODEL_PATH.") from None


# --- hosted: OpenAI-compatible endpoint ---------------------------------------------

class OpenAIChat(ChatModel):
    """An OpenAI-compatible chat endpoint via LangChain's ChatOpenAI, temperature 0, no retries."""

    def __init__(self, settings: Settings):
        from langchain_openai import ChatOpenAI
        from pydantic import SecretStr

        llm = settings.llm
        key = settings.openai_api_key
        self.name = f"openai:{llm.openai_model}"
        self.base_url = llm.openai_base_url
        self.timeout_s = llm.timeout_s
        self._secret = key.get_secret_value() if key else None
        self._client = ChatOpenAI(base_url=llm.openai_base_url, model=llm.openai_model,
                                  api_key=key or SecretStr("not-needed"),
                                  timeout=llm.timeout_s, max_retries=0, temperature=0)
        # ChatOpenAI sends max_completion_tokens, which OpenAI wants but llama.cpp, vLLM and
        # Ollama servers ignore (answers would run to the context limit): they get max_tokens.
        self._openai_host = (urlparse(llm.openai_base_url).hostname or "").endswith("openai.com")

    def stream(self, messages: Messages, *, max_tokens: int,
               stop: list[str] | None = None, fixed: int = 0) -> Iterator[str]:
        """Yield text pieces; raises EndpointError for any failure of the endpoint. (The
        endpoint's own prompt cache, if any, sees `fixed` heads as shared prefixes.)"""
        length = ({"max_tokens": max_tokens} if self._openai_host
                  else {"extra_body": {"max_tokens": max_tokens}})
        pieces = finished = 0
        try:
            for chunk in self._client.stream(to_langchain(messages), stop=stop, **length):
                finished |= bool(chunk.response_metadata.get("finish_reason"))
                if isinstance(chunk.content, str) and chunk.content:
                    pieces += 1
                    yield chunk.content
        except Exception as e:  # openai, httpx and JSON errors all mean "endpoint failed"
            raise self._error(e, started=pieces > 0) from None
        if not finished:
            what = ("stopped before the answer was complete" if pieces
                    else "answered something that is not an OpenAI chat completion stream")
            raise EndpointError(f"The OpenAI-compatible endpoint at {self.base_url} {what}; "
                                "check ASKPAPERS_LLM__OPENAI_BASE_URL and the server.")

    def _error(self, e: Exception, *, started: bool) -> EndpointError:
        return EndpointError(self._scrub(describe_endpoint_failure(
            e, self.base_url, self.timeout_s, started=started)))

    def _scrub(self, text: str) -> str:
        if self._secret:
            text = text.replace(self._secret, "***")
        return re.sub(r"sk-[\w*.-]+", "sk-***", text)


def to_langchain(messages: Messages) -> list:
    """LangChain message objects for OpenAI-style {"role", "content"} dicts.

    Raises ValueError for a role other than system, user or assistant.
    """
    from langchain_core.messages import AIMessage, HumanMessage, SystemMessage

    kinds = {"system": SystemMessage, "user": HumanMessage, "assistant": AIMessage}
    try:
        return [kinds[m["role"]](content=m["content"]) for m in messages]
    except KeyError as e:
        raise ValueError(f"Unknown message role {e}; use system, user or assistant.") from None


def describe_endpoint_failure(e: Exception, base_url: str, timeout_s: float,
                              *, started: bool = False) -> str:
    """One line saying what went wrong talking to the endpoint and what to do next."""
    import openai

    where = f"the OpenAI-compatible endpoint at {base_url}"
    subject = f"The OpenAI-compatible endpoint at {base_url}"
    if isinstance(e, openai.APITimeoutError):
        return (f"No answer from {where} within {timeout_s:g} s; check the server or raise "
                "ASKPAPERS_LLM__TIMEOUT_S.")
    if isinstance(e, openai.APIConnectionError):
        if started:
            return f"The connection to {where} dropped mid-answer; try again or check the server."
        return (f"Cannot reach {where} ({_root_reason(e)}); check "
                "ASKPAPERS_LLM__OPENAI_BASE_URL or start the server.")
    if isinstance(e, openai.APIStatusError):
        return (f"{subject} answered HTTP {e.status_code}{_detail(e)}; "
                + _status_hint(e.status_code))
    return (f"{subject} answered something that is not an OpenAI chat "
            f"completion ({type(e).__name__}); check ASKPAPERS_LLM__OPENAI_BASE_URL.")


def _root_reason(e: BaseException) -> str:
    seen = e
    while seen.__cause__ or seen.__context__:
        seen = seen.__cause__ or seen.__context__
        if isinstance(seen, ConnectionRefusedError) or "refused" in str(seen).lower():
            return "connection refused"
    return " ".join(str(seen).split())[:120] or "connection failed"


def _detail(e) -> str:
    body = e.body
    if isinstance(body, dict):
        body = body.get("error", body)
    if isinstance(body, dict):
        body = body.get("message") or body.get("detail") or body
    text = " ".join(str(body or "").split())[:160]
    return f": {text}" if text else ""


def _status_hint(status: int) -> str:
    if status in (401, 403):
        return "check the key in ASKPAPERS_OPENAI_API_KEY or OPENAI_API_KEY."
    if status == 404:
        return ("check ASKPAPERS_LLM__OPENAI_BASE_URL (usually ends in /v1) and "
                "ASKPAPERS_LLM__OPENAI_MODEL.")
    if status == 429:
        return "the endpoint is rate-limiting; wait and try again."
    if status >= 500:
        return "the server failed; check its logs or try again."
    return "the endpoint rejected the request; check ASKPAPERS_LLM__OPENAI_MODEL."

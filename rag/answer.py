"""Answer a question from the index: retrieve, decide whether to abstain, answer, check citations."""
from __future__ import annotations

import logging
import re
import time
import unicodedata
from collections.abc import Callable, Iterator

import numpy as np

from rag import prompts
from rag.citations import MarkerFilter, check_citations
from rag.config import Settings
from rag.engine import Engine
from rag.errors import ConfigError, QuestionError
from rag.evidence import coverage, rank_sentences
from rag.retrieval import Retrieval
from rag.text import as_data
from rag.types import Answer, Citation, Source

log = logging.getLogger(__name__)

MODES = ("local", "openai", "extractive")
MAX_QUESTION_CHARS = 2000
_INVISIBLE = re.compile(r"[\u200b-\u200f\u2028-\u202e\u2060-\u2064\ufeff]")
_LOOPING = re.compile(r"(\[\d+\]\s*){4,}$|(.{8,}?)\2{3,}$", re.S)
_REFUSAL = re.compile(r"\b(don't know|do not know|not (?:mentioned|covered|in the sources)|"
                      r"(?:cannot|can't|unable to) (?:answer|find)|no information)\b", re.I)


def clean_question(question: object) -> str:
    """The question as text, invisible and control characters removed.

    Raises QuestionError when nothing askable is left or it is too long.
    """
    if not isinstance(question, str):
        raise QuestionError("The question must be text.")
    text = _INVISIBLE.sub("", question)
    text = "".join(ch if unicodedata.category(ch)[0] != "C" else " " for ch in text)
    text = " ".join(text.split())
    if not any(ch.isalnum() for ch in text):
        raise QuestionError("The question is empty; type a question about the papers.")
    if len(text) > MAX_QUESTION_CHARS:
        raise QuestionError(f"The question is {len(text)} characters long; "
                            f"keep it under {MAX_QUESTION_CHARS}.")
    return text


def support(engine: Engine, ret: Retrieval) -> float:
    """How well the best paper covers the query: dense similarity plus term coverage."""
    if not ret.sources:
        return 0.0
    return ret.best_dense + coverage(ret.query, ret.sources[0].paper, engine.weights)


def ranked_sources(engine: Engine, ret: Retrieval, ratio: float) -> list[tuple[Source, list]]:
    """Top papers with their sentences ranked against the query, keeping only papers whose
    best sentence scores at least `ratio` of the best paper's (the top paper always stays)."""
    cfg = engine.settings.retrieval
    ranked = [(s, rank_sentences(s.paper, ret.query, engine.weights))
              for s in ret.sources[:cfg.context_papers]]
    ranked = [(s, evs) for s, evs in ranked if evs]
    if not ranked:
        return []
    best = [max(ev.match for ev in evs) for _, evs in ranked]
    return [ranked[0]] + [r for r, b in zip(ranked[1:], best[1:]) if b >= ratio * best[0]]


def build_context(engine: Engine, ret: Retrieval) -> list[tuple[Source, list[str]]]:
    """The few sentences per relevant paper that a model needs; prompt tokens are the cost."""
    cfg = engine.settings.retrieval
    context = []
    for i, (source, evs) in enumerate(ranked_sources(engine, ret, cfg.context_ratio)):
        n = cfg.sentences_first if i == 0 else cfg.sentences_other
        picked = sorted(evs[:n], key=lambda ev: ev.start)
        context.append((source, [ev.text for ev in picked]))
    return context


def extractive_answer(engine: Engine, ret: Retrieval) -> tuple[str, list[Citation]]:
    """The best-supporting sentences of the papers that match nearly as well as the best one."""
    lines, cites = [], []
    for source, evs in ranked_sources(engine, ret, engine.settings.retrieval.extractive_ratio):
        picked = [evs[0]] + [ev for ev in evs[1:2] if ev.score >= 0.6 * evs[0].score]
        picked.sort(key=lambda ev: ev.start)
        lines.append(f"{as_data(source.paper.title)} [{source.n}]: "
                     + as_data(" ".join(ev.text for ev in picked)))
        cites += [Citation(source.n, source.paper.paper_id, source.paper.title, as_data(ev.text),
                           ev.start, ev.end) for ev in picked[:1]]
    return "\n".join(lines), cites


def _abstain(question: str, ret: Retrieval, mode: str, timings: dict, prompt: str = "") -> Answer:
    return Answer(question, prompts.ABSTAIN_TEXT, [], ret.sources, True, mode, prompt, timings)


def ask_stream(engine: Engine, question: str, *, mode: str | None = None, k: int | None = None,
               history: list[dict] | None = None, filters: dict | None = None
               ) -> Iterator[str | Answer]:
    """Yield answer text as it is produced, then the full Answer.

    Raises QuestionError, ConfigError, ModelError or EndpointError.
    """
    settings: Settings = engine.settings
    mode = mode or settings.llm.mode
    if mode not in MODES:
        raise ConfigError(f"Unknown mode {mode!r}; use one of {', '.join(MODES)}.")
    question = clean_question(question)
    t0 = time.perf_counter()
    ret = engine.retriever.search(question, k=k, history=history, filters=filters)
    score = support(engine, ret)
    timings = {"retrieve_s": time.perf_counter() - t0, "support": round(score, 4)}
    if score < settings.retrieval.min_support:
        answer = _abstain(question, ret, mode, timings)
        yield answer.text
        yield answer
        return
    if mode == "extractive":
        text, cites = extractive_answer(engine, ret)
        timings["total_s"] = time.perf_counter() - t0
        yield text
        yield Answer(question, text, cites, ret.sources, False, mode, "", timings)
        return
    yield from _generate(engine, question, ret, mode, history, timings, t0)


def _model_says_no(model, context, question, history, max_tokens=3) -> bool:
    msgs = prompts.messages(context, question, prompts.CHECK_TAIL, history)
    reply = model.complete(msgs, max_tokens=max_tokens).strip().lower()
    log.debug("sufficiency check: %r", reply)
    return reply.startswith("no")


def _generate(engine: Engine, question: str, ret: Retrieval, mode: str, history, timings, t0
              ) -> Iterator[str | Answer]:
    from rag.llm import get_chat_model

    settings = engine.settings
    model = get_chat_model(settings, mode)
    context = build_context(engine, ret)
    given = [s for s, _ in context]
    msgs = prompts.messages(context, question, prompts.ANSWER_TAIL, history)
    prompt = prompts.render_prompt(msgs)
    if timings["support"] < settings.retrieval.confident_support:
        if _model_says_no(model, context, question, history):
            timings["check_s"] = time.perf_counter() - t0
            answer = _abstain(question, ret, mode, timings, prompt)
            yield answer.text
            yield answer
            return
        timings["check_s"] = time.perf_counter() - t0
    live = MarkerFilter({s.n for s in given})
    raw = []
    for piece in model.stream(msgs, max_tokens=settings.llm.max_tokens):
        if not raw:
            timings["first_token_s"] = time.perf_counter() - t0
        raw.append(piece)
        if shown := live.feed(piece):
            yield shown
        if _LOOPING.search("".join(raw[-40:])):
            break  # a small model repeating itself ("[1] [1] [1] ...") has nothing left to say
    if tail := live.flush():
        yield tail
    timings["total_s"] = time.perf_counter() - t0
    yield _finish(engine, question, "".join(raw), ret, given, mode, prompt, timings)


def claim_support(engine: Engine) -> Callable[[str, Source], float]:
    """Support of a claim by a source: the best sentence's word overlap with the claim plus
    the claim's cosine with the paper's closest chunk (each claim is embedded once)."""
    vectors: dict[str, np.ndarray] = {}

    def support(claim: str, source: Source) -> float:
        if claim not in vectors:
            vectors[claim] = engine.embedder.embed([claim])[0]
        rows = [c.chunk_id for c in source.chunks]
        cosine = float(np.max(engine.index.vectors.reconstruct_batch(rows) @ vectors[claim]))
        return max(ev.match for ev in rank_sentences(source.paper, claim, engine.weights)) + cosine

    return support


def _finish(engine, question, raw, ret, given, mode, prompt, timings) -> Answer:
    checked = check_citations(raw, given, engine.weights, claim_support(engine))
    if not checked.citations:
        if _REFUSAL.search(raw):
            answer = _abstain(question, ret, mode, timings, prompt)
        else:
            # The model's text could not be tied to any source: quote the sources instead.
            text, cites = extractive_answer(engine, ret)
            answer = Answer(question, text, cites, ret.sources, False, mode, prompt, timings)
    else:
        answer = Answer(question, checked.text, checked.citations, ret.sources, False, mode,
                        prompt, timings)
    if checked.dropped:
        log.info("dropped %d unsupported sentence(s)", len(checked.dropped))
    answer.model_output = raw
    return answer

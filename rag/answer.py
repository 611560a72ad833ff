"""Answer a question from the index: retrieve, decide, answer, check citations.

The decision (`rag/decision.py`) says one of three things, in every mode: answer (from the
papers it keeps), abstain (no paper covers the topic), or "not stated" (the question is
about a paper in the index whose abstract does not give the asked-for fact). Local mode also
weighs the model's graded yes, read on the answer's own prompt (rag/generation.py);
extractive mode never calls a model. Every answer names the papers it cites, in code.
"""
from __future__ import annotations

import dataclasses
import logging
import re
import time
import unicodedata
from collections.abc import Iterator

from rag import prompts
from rag.config import MODES, Settings
from rag.decision import Verdict, decide, identifiers, kind_checked, subject_names
from rag.engine import Engine
from rag.errors import ConfigError, QuestionError
from rag.evidence import coverage
from rag.extractive import abstention, best_quotes, not_stated, quoted_answer, record_answer
from rag.names import name_match, variant_base
from rag.questions import QuestionKind, classify
from rag.retrieval import Retrieval
from rag.text import keyword_tokens
from rag.types import Answer, Retrieved, Source

log = logging.getLogger(__name__)

MAX_QUESTION_CHARS = 2000
_INVISIBLE = re.compile(r"[\u200b-\u200f\u2028-\u202e\u2060-\u2064\ufeff]")


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


def retrieve(engine: Engine, question: str, kind: QuestionKind, *, k: int | None = None,
             history: list[dict] | None = None, filters: dict | None = None) -> Retrieval:
    """Search for a question; a multi-paper one searches wider, and each listed facet too."""
    k = k or engine.settings.retrieval.k
    if kind.multi:
        k = max(k, engine.settings.decision.multi_k)
    ret = engine.retriever.search(question, k=k, history=history, filters=filters)
    ret = _named_first(engine, question, ret, k, filters)
    if not kind.multi:
        return ret
    rankings = [engine.retriever.search(f, k=k, filters=filters).sources for f in kind.facets]
    rankings += _marked(engine, question, filters)
    if not rankings:
        return ret
    return dataclasses.replace(ret, sources=_interleave([ret.sources] + rankings, k))


def _marked(engine: Engine, question: str, filters) -> list[list[Source]]:
    """For a multi-paper question, the papers that write a name it gives which only a few
    papers write ("Which papers report experiments on T4 GPUs?", "... on both IWSLT and
    WMT"): such a name marks the papers asked for, however far the search ranks them."""
    most = engine.settings.decision.multi_papers
    tokens = {t for name in identifiers(question) for t in keyword_tokens(name)[:1]}
    found = (engine.retriever.papers_writing(t, most, filters) for t in sorted(tokens))
    return [papers for papers in found if papers]


# Set on the fit sets' questions where a named paper displaced the search's top one.
NAMED_MIN_COVERAGE = 0.5


def _named_first(engine: Engine, question: str, ret: Retrieval, k: int, filters) -> Retrieval:
    """A paper the question names by its short name ("What learning rate was YOLACT trained
    with?") goes first, even when the rest of the question pulls the search elsewhere."""
    names = subject_names(question)
    if not names:
        return ret
    # Each name and the family of a variant ("Res2Net" of "Res2Net-50") looked up alone:
    # a common name beside it ("ImageNet") would drown it in one search.
    lookups = sorted({n for name in names for n in (name, variant_base(name))})
    found = {s.paper.paper_id: s for name in lookups
             for s in engine.retriever.keyword_papers(name, 3, filters)}
    # A paper the search found already keeps its scores (the lookup has no dense one).
    found.update((s.paper.paper_id, s) for s in ret.sources if s.paper.paper_id in found)
    # A paper holding little of the question's words is not what it asks about, whatever
    # name it shares ("Vision Mamba models" in a question on token reordering does not ask
    # about a survey of Mamba): it must hold NAMED_MIN_COVERAGE of what the top one does.
    if ret.sources:
        least = NAMED_MIN_COVERAGE * coverage(ret.query, ret.sources[0].paper, engine.weights)
        found = {pid: s for pid, s in found.items()
                 if coverage(ret.query, s.paper, engine.weights) >= least}
    levels = {pid: name_match(names, s.paper) for pid, s in found.items()}
    rank = {s.paper.paper_id: i for i, s in enumerate(ret.sources)}
    # Named exactly before extended before a family; then as the search ranked them.
    named = sorted((s for pid, s in found.items() if levels[pid] is not None),
                   key=lambda s: (levels[s.paper.paper_id], rank.get(s.paper.paper_id, k)))
    if not named:
        return ret
    ids = {s.paper.paper_id for s in named}
    ranked = named + [s for s in ret.sources if s.paper.paper_id not in ids]
    return dataclasses.replace(ret, sources=[dataclasses.replace(s, n=n)
                                             for n, s in enumerate(ranked[:k], 1)])


def _interleave(rankings: list[list[Source]], k: int) -> list[Source]:
    """Reciprocal-rank fusion of several paper rankings, renumbered 1..k."""
    score: dict[str, float] = {}
    first: dict[str, Source] = {}
    for ranking in rankings:
        for rank, s in enumerate(ranking, 1):
            score[s.paper.paper_id] = score.get(s.paper.paper_id, 0.0) + 1 / (60 + rank)
            first.setdefault(s.paper.paper_id, s)
    order = sorted(score, key=lambda pid: (-score[pid], pid))[:k]
    return [dataclasses.replace(first[pid], n=n, score=score[pid]) for n, pid in enumerate(order, 1)]


def ask_stream(engine: Engine, question: str, *, mode: str | None = None, k: int | None = None,
               history: list[dict] | None = None, filters: dict | None = None
               ) -> Iterator[Retrieved | str | Answer]:
    """Yield what was retrieved (one `Retrieved`, before any model runs), then the answer
    text as it is produced, then the full Answer.

    Raises QuestionError, ConfigError, ModelError or EndpointError.
    """
    settings: Settings = engine.settings
    mode = mode or settings.llm.mode
    if mode not in MODES:
        raise ConfigError(f"Unknown mode {mode!r}; use one of {', '.join(MODES)}.")
    question = clean_question(question)
    t0 = time.perf_counter()
    kind = classify(question)
    ret = retrieve(engine, question, kind, k=k, history=history, filters=filters)
    verdict = decide(settings.decision, ret.query, question, ret.sources, ret.best_dense,
                     engine.weights, kind)
    if mode == "extractive":
        verdict = kind_checked(settings.decision, verdict, kind)
    timings = {"retrieve_s": time.perf_counter() - t0, "covered": round(verdict.covered, 4),
               "stated": round(verdict.stated, 4)}
    # Every answer, abstentions included, carries ret.sources: the two always agree.
    yield Retrieved(question, ret.sources, best_quotes(engine, ret),
                    {"retrieve_s": timings["retrieve_s"]})
    if mode == "extractive" or verdict.unseen or _answers_record(question, ret, verdict, kind):
        # A paper's record (its authors, its year) is answered from the index in every mode,
        # and a question about a work the index never mentions is refused in every mode.
        answer = _extractive(engine, question, ret, verdict, kind, timings, mode)
        timings["total_s"] = time.perf_counter() - t0
        yield answer.text
        yield answer
        return
    from rag.generation import generate

    yield from generate(engine, question, ret, verdict, kind, mode, history, timings, t0)


def _answers_record(question: str, ret: Retrieval, verdict: Verdict, kind: QuestionKind) -> bool:
    """A question on a paper's record ("Who are the authors of FastDraft?") is answered from
    the top paper when the decision keeps it or the question names it by its short name: a
    record question has few words of a topic for the covered decision to weigh."""
    if not (kind.record and ret.sources and not verdict.unseen):
        return False
    return (not verdict.abstain
            or name_match(subject_names(question), ret.sources[0].paper) is not None)


def _extractive(engine: Engine, question: str, ret: Retrieval, verdict: Verdict,
                kind: QuestionKind, timings: dict, mode: str = "extractive") -> Answer:
    if verdict.unseen:
        timings["unseen_names"] = list(verdict.unseen)
        return abstention(question, ret, mode, timings, text=prompts.unseen_text(verdict.unseen))
    if _answers_record(question, ret, verdict, kind):
        return record_answer(engine, question, ret, kind, mode, timings)
    if verdict.abstain or not ret.sources:
        return abstention(question, ret, mode, timings)
    if verdict.not_stated:
        return not_stated(engine, question, ret, kind, mode, timings)
    return quoted_answer(engine, question, ret, verdict, kind, mode, timings)

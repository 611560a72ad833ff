"""Model answers (local llama.cpp or a hosted endpoint). In local mode the model's graded
yes that the sources answer the question, read on the answer's own prompt, is one more input
of the decision; near a decision's threshold a short check that the sources give what is
asked (off by default); then one cited answer. A multi-paper question gets one line per
paper, quoting it (the default) or written by the model."""
from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterator
from decimal import Decimal

import numpy as np

from rag import prompts
from rag.citations import MARKER, MarkerFilter, check_citations
from rag.config import YES_MODEL, Settings
from rag.decision import Verdict, asks_device, names_given, subject_names, unwritten_names, with_model_yes
from rag.engine import Engine
from rag.errors import ConfigError
from rag.evidence import given_values, paper_sentences, rank_sentences, values
from rag.extractive import abstention, best_sentences, key_sentences, name_cited, not_stated, quoted_answer
from rag.names import display_name, name_match
from rag.questions import QuestionKind
from rag.retrieval import Retrieval
from rag.text import as_data
from rag.types import Answer, Citation, Paper, Source

log = logging.getLogger(__name__)

_LOOPING = re.compile(r"(\[\d+\]\s*){4,}$|(.{8,}?)\2{3,}$", re.S)
_REFUSAL = re.compile(r"\b(don't know|do not know|not (?:mentioned|covered|stated|in the sources)|"
                      r"(?:cannot|can't|unable to) (?:answer|find)|no information)\b", re.I)
PAPER_LINE_TOKENS = 60  # one line per paper in a multi-paper answer
CHECK_TOKENS = 6  # enough for "[1] NONE"
_NOTHING = re.compile(rf"^\W*(?:\[\d+\]\W*)?{prompts.NONE}\b", re.I)


def build_context(engine: Engine, ret: Retrieval, papers: list[Source], kind: QuestionKind,
                  per_paper: int | None = None) -> list[tuple[Source, list[str]]]:
    """The few best sentences of each kept paper (and a number for a quantity question), in
    abstract order; the top paper's whole abstract when `sentences_first` is 0. Uncached
    prompt tokens are the cost of time to first token."""
    cfg = engine.settings.retrieval
    context = []
    for i, source in enumerate(papers):
        n = per_paper or (cfg.sentences_first if i == 0 else cfg.sentences_other) or None
        picked = key_sentences(source, ret.query, engine, kind, n)
        if picked:
            context.append((source, [ev.text for ev in picked]))
    return context


def _fixed(engine: Engine, context) -> int:
    """The prompt's fixed head (see `prompts.fixed_head`): only the whole abstract of the
    top paper is the same from question to question."""
    return 0 if engine.settings.retrieval.sentences_first else prompts.fixed_head(context)


def _model_finds_nothing(model, context, question, kind: QuestionKind, history,
                         timings: dict, fixed: int) -> bool:
    """The check: asked to copy the words that answer, the model replies NONE. Only the
    reply's first tokens are needed, and they reuse the answer's cached prompt prefix."""
    msgs = prompts.messages(context, question, prompts.check_tail(kind.asked), history)
    reply = model.complete(msgs, max_tokens=CHECK_TOKENS, fixed=fixed)
    log.debug("check: %r", reply)
    count_call(model, timings)
    return not reply.strip() or bool(_NOTHING.match(reply))


def weighs_yes(settings: Settings, mode: str, kind: QuestionKind) -> bool:
    """Whether the decision weighs the local model's yes: in local mode, for a question
    about one paper (a multi-paper answer quotes its papers without a model call), when the
    config holds regressions fitted with it."""
    return mode == "local" and not kind.multi and bool(settings.decision.covered_yes.weights)


def _fitted_for(model) -> bool:
    """Whether `model` is the packaged one the yes regressions were fitted on: another
    model's yes is not on the same scale, so it decides as the other modes do."""
    from rag.models import PACKAGED

    return getattr(model, "name", "") == f"llama.cpp:{PACKAGED[YES_MODEL].filename}"


def model_yes(engine: Engine, model, context, question: str, history) -> float:
    """The model's graded yes that the sources answer the question (`prompts.YES_TAIL`,
    read from its logits); the answer that follows reuses its cached prompt prefix."""
    msgs = prompts.messages(context, question, prompts.YES_TAIL, history)
    return model.yes_probability(msgs, fixed=_fixed(engine, context))


def generate(engine: Engine, question: str, ret: Retrieval, verdict: Verdict, kind: QuestionKind,
             mode: str, history, timings: dict, t0: float) -> Iterator[str | Answer]:
    """Yield the model's answer as it streams, then the checked Answer."""
    from rag.llm import get_chat_model

    if not ret.sources:
        yield from _final(abstention(question, ret, mode, timings))
        return
    model = context = None
    if weighs_yes(engine.settings, mode, kind) and _fitted_for(
            model := get_chat_model(engine.settings, mode)):
        context = build_context(engine, ret, verdict.papers, kind)
        yes = model_yes(engine, model, context, question, history)
        count_call(model, timings)
        verdict = with_model_yes(engine.settings.decision, verdict, yes, kind)
        timings.update(model_yes=round(yes, 4), covered=round(verdict.covered, 4),
                       stated=round(verdict.stated, 4), yes_s=time.perf_counter() - t0)
    if verdict.abstain and not verdict.unsure_covered:
        yield from _final(abstention(question, ret, mode, timings))
        return
    if verdict.not_stated and not verdict.unsure_stated:
        yield from _final(not_stated(engine, question, ret, kind, mode, timings))
        return
    quotes = kind.multi and engine.settings.llm.multi_lines == "quotes"
    if quotes and not verdict.needs_check:
        yield from _final(_quoted_lines(engine, question, ret, verdict, kind, mode, timings, t0))
        return
    model = model or get_chat_model(engine.settings, mode)
    context = context or build_context(engine, ret, verdict.papers, kind,
                                       2 if kind.multi else None)
    # Near a threshold (decision.grey) the model's check decides. For the local 1.5B model
    # no grey width paid held out (bench/model_check.py: asked of every question, it said
    # NONE to 20% of the single-paper ones and only 65% of the not-stated), so by default
    # it is off. The check is a call of its own, sharing the answer's cached prompt prefix:
    # an answer prompt that may open with NONE made the 1.5B model say NONE to 11 of 24
    # answerable questions (issue 15 measurement, docs/measured.md "Faster local answers").
    if verdict.needs_check:
        found_nothing = _model_finds_nothing(model, context, question, kind, history,
                                             timings, _fixed(engine, context))
        timings["check_s"] = time.perf_counter() - t0
        if found_nothing:
            yield from _final(_refused(engine, question, ret, verdict, kind, mode, timings))
            return
    if quotes:
        yield from _final(_quoted_lines(engine, question, ret, verdict, kind, mode, timings, t0))
    elif kind.multi:
        yield from _paper_lines(engine, model, question, ret, context, mode, timings, t0)
    else:
        yield from _one_answer(engine, model, question, ret, verdict, kind, mode, history,
                               context, timings, t0)


def _papers_values(papers: list[Paper]) -> set[Decimal]:
    """The values the papers' titles and abstracts write."""
    return set().union(*(values(f"{p.title} {p.abstract}") for p in papers))


def _answer_values(text: str, question: str) -> set[Decimal]:
    """The values a model answer writes in digits, its citation markers and the question's
    own values aside."""
    return values(MARKER.sub(" ", text), words=False) - given_values(question)


def states_given_value(text: str, question: str, papers: list[Paper]) -> bool:
    """True when the text writes a number, other than the question's own, that one of the
    papers' titles or abstracts writes too."""
    return bool((values(text) - given_values(question)) & _papers_values(papers))


def invented_values(text: str, question: str, papers: list[Paper]) -> list[str]:
    """The values the text writes in digits (its citation markers aside) that neither the
    question nor any of the papers' titles or abstracts writes: asked how NeuRI's 100 bugs
    split between two frameworks, an abstract giving the total and "81 fixed" does not make
    "81 in PyTorch and 19 in TensorFlow" an answer. A count in words is the model's own
    reading of its sources ("on three model sizes: 340M, 1.3B and ..."), not a value."""
    return sorted(format(v, "f") for v in _answer_values(text, question) - _papers_values(papers))


def borrowed_values(text: str, question: str, papers: list[Paper]) -> list[str]:
    """The values the text writes that another of the papers writes, when it writes none
    that the paper of the work the question names does: asked the top-1 of SReT, "83.4%"
    from a neighbour's abstract is that paper's figure, not SReT's. Empty when no paper,
    or every one, is the named work's."""
    names = subject_names(question)
    named = [p for p in papers if name_match(names, p) is not None]
    if not named or len(named) == len(papers):
        return []
    written = _answer_values(text, question)
    if written & _papers_values(named):
        return []
    others = _papers_values([p for p in papers if p not in named])
    return sorted(format(v, "f") for v in written & others)


def _final(answer: Answer) -> Iterator[str | Answer]:
    yield answer.text
    yield answer


def _refused(engine, question, ret, verdict, kind, mode, timings, prompt="") -> Answer:
    """The model found no answer in the sources: "not stated" when the question is about
    an indexed paper, else an abstention."""
    if verdict.covered >= 0.5 and not (kind.multi or kind.identity):
        return not_stated(engine, question, ret, kind, mode, timings, prompt)
    return abstention(question, ret, mode, timings, prompt)


def _unless_sure(engine, question, ret, verdict, kind, mode, timings, prompt) -> Answer:
    """An answer whose value the sources do not bear out: "not stated", unless the decision
    is sure the abstract states it (`decision.number_check_below`): then the model most
    likely cited the wrong source, and the sources are quoted instead."""
    if verdict.stated < engine.settings.decision.number_check_below:
        return _refused(engine, question, ret, verdict, kind, mode, timings, prompt)
    return quoted_answer(engine, question, ret, verdict, kind, mode, timings, prompt)


def _stream(model, msgs, max_tokens: int, valid: set[int], timings: dict, t0: float,
            raw: list[str], fixed: int = 0) -> Iterator[str]:
    """Stream model text with invalid markers held back; stop a model repeating itself."""
    live = MarkerFilter(valid)
    for piece in model.stream(msgs, max_tokens=max_tokens, fixed=fixed):
        timings.setdefault("first_token_s", time.perf_counter() - t0)
        raw.append(piece)
        if shown := live.feed(piece):
            yield shown
        if _LOOPING.search("".join(raw[-40:])):
            break  # a small model repeating itself ("[1] [1] [1] ...") has nothing left to say
    if tail := live.flush():
        yield tail
    count_call(model, timings)


def count_call(model, timings: dict) -> None:
    """Add a local call's prompt and generated tokens to the answer's timings."""
    stats = getattr(model, "last_call", None)
    if stats is None:
        return
    for key, value in (("prompt_tokens", stats.prompt_tokens),
                       ("new_prompt_tokens", stats.prompt_tokens - stats.cached_tokens),
                       ("gen_tokens", stats.gen_tokens),
                       ("gen_s", stats.total_s - (stats.first_s or stats.total_s))):
        timings[key] = round(timings.get(key, 0) + value, 4)


def _quoted_lines(engine, question, ret, verdict, kind, mode, timings, t0) -> Answer:
    """A multi-paper answer whose lines quote each kept paper (`llm.multi_lines` "quotes"):
    the extractive lines, in a model mode, with no model call."""
    timings["total_s"] = time.perf_counter() - t0
    return quoted_answer(engine, question, ret, verdict, kind, mode, timings)


def _one_answer(engine, model, question, ret, verdict, kind, mode, history, context, timings, t0
                ) -> Iterator[str | Answer]:
    given = [s for s, _ in context]
    msgs = prompts.messages(context, question, history=history)
    prompt = prompts.render_prompt(msgs)
    raw: list[str] = []
    yield from _stream(model, msgs, engine.settings.llm.max_tokens, {s.n for s in given},
                       timings, t0, raw, _fixed(engine, context))
    timings["total_s"] = time.perf_counter() - t0
    text = "".join(raw)
    checked = check_citations(text, given, engine.weights, claim_support(engine))
    if checked.dropped:
        log.info("dropped %d unsupported sentence(s)", len(checked.dropped))
    cited = [s.paper for s in given if s.n in {c.n for c in checked.citations}]
    no_name = (bool(checked.citations) and kind.wants_name and not (kind.identity or kind.record)
               and not names_given(checked.text, question, cited, asks_device(kind), kind.ask))
    if no_name:
        timings["no_source_name"] = True
    if checked.citations and not kind.identity and (
            unnamed := unwritten_names(question, checked.text, cited)):
        # Asked a detail of a named work, the answer ties it to sources that never name it
        # (asked about "YOLOv7", it quotes Scaled-YOLOv4): the indexed papers do not cover
        # it. Not for "which paper ...?": its asker describes the paper in their own words
        # ("... the downsampling layers of a ResNet"), which its abstract need not write.
        log.info("the answer names %s, which no cited source writes", unnamed)
        timings["unwritten_names"] = unnamed
        answer = abstention(question, ret, mode, timings, prompt, prompts.unnamed_text(unnamed))
    elif checked.citations and kind.wants_number and not kind.identity and not states_given_value(
            checked.text, question, [s.paper for s in given]):
        # Asked for a number, the model gave none that its sources write: it found the
        # value nowhere (or made one up, or cited the wrong source). Unless the decision
        # is sure the abstract states it (`decision.number_check_below`), the sources do
        # not state it; if it is, they are quoted instead.
        log.info("no number of the sources in the answer: %r", checked.text[:200])
        timings["no_source_number"] = True
        answer = _unless_sure(engine, question, ret, verdict, kind, mode, timings, prompt)
    elif no_name and verdict.stated < engine.settings.decision.name_check_below:
        # Asked which thing ("which teacher model"), the answer names none its sources
        # write: unless the decision is fairly sure the abstract states it, it does not.
        log.info("no name of the sources in the answer: %r", checked.text[:200])
        answer = _refused(engine, question, ret, verdict, kind, mode, timings, prompt)
    elif checked.citations and not kind.identity and (
            invented := invented_values(checked.text, question, [s.paper for s in given])):
        # The answer states a value no source writes (a sum, a split, a guess): as for
        # an answer that writes none of their numbers, the sources do not state it.
        log.info("the answer writes %s, which no source does", invented)
        timings["invented_values"] = invented
        answer = _unless_sure(engine, question, ret, verdict, kind, mode, timings, prompt)
    elif checked.citations and kind.wants_number and not kind.identity and (
            borrowed := borrowed_values(checked.text, question, cited)):
        # Asked a number of a named work, the answer gives another cited paper's value
        # and none of the work's own: as for an answer that writes none of the sources'
        # numbers, the work's abstract does not state it.
        log.info("the answer gives %s, which only another paper writes", borrowed)
        timings["borrowed_values"] = borrowed
        answer = _unless_sure(engine, question, ret, verdict, kind, mode, timings, prompt)
    elif checked.citations:
        answer = Answer(question, name_cited(checked.text, checked.citations, given,
                                             by_title=kind.identity),
                        checked.citations, ret.sources, False, mode, prompt, timings)
    elif _REFUSAL.search(text):
        answer = _refused(engine, question, ret, verdict, kind, mode, timings, prompt)
    else:
        # The model's text could not be tied to any source: quote the sources instead.
        answer = quoted_answer(engine, question, ret, verdict, kind, mode, timings, prompt)
    answer.model_output = text
    yield answer


def _paper_lines(engine, model, question, ret, context, mode, timings, t0
                 ) -> Iterator[str | Answer]:
    """One line per kept paper: its name and number from code, its key fact from the model
    reading only that paper's two best sentences (a small prompt per line)."""
    lines, cites, prompts_used, outputs = [], [], [], []
    support = claim_support(engine)
    for source, sentences in context:
        head = f"- {display_name(source.paper)} [{source.n}]: "
        yield ("\n" if lines else "") + head
        msgs = prompts.paper_messages(source, sentences, question)
        prompts_used.append(prompts.render_prompt(msgs))
        raw: list[str] = []
        yield from _stream(model, msgs, PAPER_LINE_TOKENS, {source.n}, timings, t0, raw)
        outputs.append("".join(raw))
        checked = check_citations(outputs[-1], [source], engine.weights, support)
        body, cite = checked.text, (checked.citations or [None])[0]
        if cite is None:  # nothing the model said holds up: quote the paper's best sentence
            ev = best_sentences(source, ret.query, engine)[0]
            body, cite = as_data(ev.text), Citation(
                source.n, source.paper.paper_id, source.paper.title, as_data(ev.text),
                ev.start, ev.end)
        lines.append(head + body)
        cites.append(cite)
    timings["total_s"] = time.perf_counter() - t0
    answer = Answer(question, "\n".join(lines), cites, ret.sources, False, mode,
                    "\n\n".join(prompts_used), timings)
    answer.model_output = "\n".join(outputs)
    yield answer


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


def paper_head(paper: Paper) -> tuple[list[dict], int]:
    """The answer prompt of a question whose top paper is `paper`, and the length of its
    fixed head: what `save_paper_states` reads, the same tokens an answer's prompt starts
    with (with `retrieval.sentences_first` 0)."""
    context = [(Source(1, paper, 0.0, 0.0, 0.0), [t for _, _, t in paper_sentences(paper)])]
    return prompts.messages(context, ""), prompts.fixed_head(context)


def save_paper_states(engine: Engine, *, limit: int | None = None,
                      progress: Callable[[int, int], None] | None = None,
                      give_way: bool = False) -> dict:
    """Read each indexed paper's prompt head once with the local model and save its state
    (rag.paper_states), so a question about it reads only the question. Papers already
    saved are skipped; it stops when the states folder reaches its budget ("full":
    "budget") or the disk has under 2 GiB free ("full": "disk"). `give_way`
    (reading in the background of a server): wait until no question has wanted the model
    for IDLE_S seconds, and stop reading a paper when one comes (it is read again later).

    Raises ConfigError when paper states are off; ModelError as the local model does.
    """
    from rag.llm import get_chat_model

    if engine.settings.retrieval.sentences_first:
        raise ConfigError("Saved paper states need the whole abstract in the prompt; unset "
                          "ASKPAPERS_RETRIEVAL__SENTENCES_FIRST (0).")
    model = get_chat_model(engine.settings, "local")
    if getattr(model, "states", None) is None:
        raise ConfigError("Paper states are off; set ASKPAPERS_LLM__PAPER_STATES_MB.")
    papers = [p for p in engine.index.papers.values() if p.abstract.strip()][:limit]
    done = {"papers": len(papers), "saved": 0, "already": 0, "tokens": 0, "full": "",
            "gave_way": 0}
    t0 = time.perf_counter()
    for i, paper in enumerate(papers, 1):
        msgs, fixed = paper_head(paper)
        if model.has_state(msgs, fixed):
            done["already"] += 1
        elif model.states.trim() >= model.states.budget:
            done["full"] = "budget"
            break
        elif model.states.disk_low():
            done["full"] = "disk"
            break
        else:
            while (read := _read_head(model, msgs, fixed, give_way)) is None:
                done["gave_way"] += 1
            done["tokens"] += read
            done["saved"] += 1
        if progress:
            progress(i, len(papers))
    done["seconds"] = round(time.perf_counter() - t0, 1)
    done["bytes"] = model.states.trim()
    return done


IDLE_S = 5.0  # a background reading starts this long after the last question


def _read_head(model, msgs, fixed: int, give_way: bool) -> int | None:
    if give_way:
        while (idle := model.idle_s()) is None or idle < IDLE_S:
            time.sleep(0.5)
    return model.prefill(msgs, fixed, give_way=give_way)

"""Answers made of the sources' own sentences, with no model: extractive answers, the
abstention, the "not stated" reply, a paper's record, and naming the cited papers."""
from __future__ import annotations

from rag import prompts
from rag.decision import Verdict, unwritten_names
from rag.engine import Engine
from rag.evidence import Evidence, rank_sentences, states_number, stems
from rag.names import display_name, names_paper
from rag.questions import QuestionKind
from rag.retrieval import Retrieval
from rag.text import as_data
from rag.types import Answer, Citation, Source

# Sentences per paper in a multi-paper answer's line: what the paper does and what it
# reports. Chosen by bench/fit_sentences.py.
MULTI_SENTENCES = 2
# A multi-paper line's second sentence is the one best matching what the question asks of
# each paper ("..., and what precisions do they use?"), when one shares a word with it.
# Chosen by bench/fit_sentences.py.
MULTI_DETAIL = True


def best_sentences(source: Source, query: str, engine: Engine) -> list[Evidence]:
    """The paper's sentences, best match to the query first."""
    return rank_sentences(source.paper, query, engine.weights)


def _with_number(picked: list[Evidence], ranked: list[Evidence], kind: QuestionKind
                 ) -> list[Evidence]:
    """The picked sentences in abstract order; when any part of the question asks for a
    number and none of them states one, the best-ranked sentence that does is added."""
    if kind.wants_number and not any(states_number(ev.text) for ev in picked):
        picked = picked + [ev for ev in ranked if ev not in picked and states_number(ev.text)][:1]
    return sorted(picked, key=lambda ev: ev.start)


def key_sentences(source: Source, query: str, engine: Engine, kind: QuestionKind,
                  n: int | None) -> list[Evidence]:
    """The paper's `n` best sentences (all of them for None; and a number for a quantity
    question), in abstract order."""
    evs = best_sentences(source, query, engine)
    return _with_number(evs[:n], evs, kind)


def _more_sentences(source: Source, evs: list[Evidence], kind: QuestionKind, engine: Engine,
                    i: int) -> list[Evidence]:
    """The sentences a line quotes after the paper's best one: for a multi-paper question,
    the one best matching what it asks of each paper (`MULTI_DETAIL`); else the next best
    matches to the question (the top paper gets one more), within 0.6 of the best."""
    n_more = MULTI_SENTENCES - 1 if kind.multi else int(i == 0)
    if kind.multi and kind.each and MULTI_DETAIL and n_more:
        asked = stems(kind.each)
        detail = [ev for ev in rank_sentences(source.paper, kind.each, engine.weights)
                  if ev.start != evs[0].start and set(asked) & set(stems(ev.text))]
        if detail:
            return detail[:n_more]
    return [ev for ev in evs[1:1 + n_more] if ev.score >= 0.6 * evs[0].score]


def _quote(source: Source, ev: Evidence) -> Citation:
    return Citation(source.n, source.paper.paper_id, source.paper.title, as_data(ev.text),
                    ev.start, ev.end)


def best_quotes(engine: Engine, ret: Retrieval) -> dict[int, Citation]:
    """Each retrieved paper's best-matching sentence, by source number (none for a paper
    with no sentence)."""
    quotes = {}
    for source in ret.sources:
        if evs := best_sentences(source, ret.query, engine):
            quotes[source.n] = _quote(source, evs[0])
    return quotes


def quoted_answer(engine: Engine, question: str, ret: Retrieval, verdict: Verdict,
                  kind: QuestionKind, mode: str, timings: dict, prompt: str = "") -> Answer:
    """The answer made of the kept papers' own best-supporting sentences, one line per
    paper, each named and cited."""
    lines, cites = [], []
    for i, source in enumerate(verdict.papers):
        evs = best_sentences(source, ret.query, engine)
        if not evs:
            continue
        picked = _with_number([evs[0]] + _more_sentences(source, evs, kind, engine, i), evs,
                              kind)
        bullet = "- " if kind.multi else ""
        lines.append(f"{bullet}{display_name(source.paper)} [{source.n}]: "
                     + as_data(" ".join(ev.text for ev in picked)))
        cites.append(_quote(source, picked[0]))
    return Answer(question, "\n".join(lines), cites, ret.sources, False, mode, prompt, timings)


def name_cited(text: str, citations: list[Citation], sources: list[Source], *,
               by_title: bool = False) -> str:
    """The answer with every cited paper named: a lead naming those the text does not
    (`by_title`: whose title it does not give; the answer to "which paper ...?")."""
    by_n = {s.n: s for s in sources}
    unnamed = [by_n[c.n] for c in citations
               if c.n in by_n and not names_paper(text, by_n[c.n].paper, by_title=by_title)]
    if not unnamed:
        return text
    lead = " and ".join(f"{display_name(s.paper)} [{s.n}]" for s in unnamed)
    return f"{lead}: {text}"


def abstention(question: str, ret: Retrieval, mode: str, timings: dict, prompt: str = "",
               text: str = prompts.ABSTAIN_TEXT) -> Answer:
    """The answer when no indexed paper covers the question."""
    return Answer(question, text, [], ret.sources, True, mode, prompt, timings)


def not_stated(engine: Engine, question: str, ret: Retrieval, kind: QuestionKind, mode: str,
               timings: dict, prompt: str = "") -> Answer:
    """The answer when the question is about an indexed paper whose abstract does not give
    the asked-for fact: says so, cites the top paper (the one the decision read), and
    counts as an abstention."""
    source = ret.sources[0]
    evs = best_sentences(source, ret.query, engine)
    # The work the question names, if the paper never does ("YOLOv7 COCO AP?" read on
    # Scaled-YOLOv4): the question always writes it, so the question is the text checked.
    unmentioned = unwritten_names(question, question, [source.paper])
    text = prompts.not_stated_text(display_name(source.paper), source.n, kind.asked,
                                   unmentioned)
    cites = [_quote(source, evs[0])] if evs else []
    return Answer(question, text, cites, ret.sources, True, mode, prompt, timings)


def record_answer(engine: Engine, question: str, ret: Retrieval, kind: QuestionKind, mode: str,
                  timings: dict) -> Answer:
    """The answer to a question about the top paper's record (`kind.record`: its authors or
    year), in every mode and with no model: the record's value, or that it has none (an
    abstention that keeps the sources, as "not stated" does). Corpus text, made inert."""
    source = ret.sources[0]
    paper = source.paper
    if kind.record == "authors":
        names = [" ".join(a.split()) for a in paper.authors if a.strip()]
        value = (", ".join(names[:-1]) + " and " + names[-1]) if len(names) > 1 else "".join(names)
    else:
        value = str(paper.year) if paper.year else ""
    evs = best_sentences(source, ret.query, engine)
    text = prompts.record_text(display_name(paper), source.n, kind.record, as_data(value))
    cites = [_quote(source, evs[0])] if evs else []
    return Answer(question, text, cites, ret.sources, not value, mode, "", timings)

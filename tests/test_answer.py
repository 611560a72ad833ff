"""Retrieval, citations and extractive answers on the real seed index; citation units."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from rag import ask, ask_stream
from rag.answer import retrieve
from rag.citations import MarkerFilter, check_citations, keep_valid_markers, marker_numbers
from rag.engine import get_engine
from rag.errors import ConfigError
from rag.evidence import TermWeights
from rag.questions import classify
from rag.text import as_data
from rag.types import Answer, Paper, Retrieved, Source

DEV = Path(__file__).resolve().parents[2] / "shared" / "eval" / "dev.jsonl"


def _dev():
    return [json.loads(line) for line in DEV.read_text().splitlines() if line.strip()]


def test_dev_gold_papers_are_in_the_top_5(seed_settings):
    engine = get_engine(seed_settings)
    misses = []
    for g in _dev():
        if g["type"] == "unanswerable":
            continue
        titles = [s.paper.title for s in engine.retriever.search(g["question"], k=5).sources]
        misses += [(g["id"], t) for t in g["gold_titles"] if t not in titles]
    assert len(misses) <= 1, misses


@pytest.mark.parametrize(("question", "token"), [
    ("Which papers report results on UCF101?", "ucf101"),
    ("Which papers train on the C4 corpus?", "c4"),
])
def test_a_multi_paper_question_finds_every_paper_writing_a_rare_name_it_gives(
        seed_settings, question, token):
    engine = get_engine(seed_settings)
    # The papers that write the name, read off the index (the search alone misses some).
    writers = {s.paper.paper_id for s in engine.retriever.papers_writing(token, 6)}
    assert len(writers) >= 2
    found = {s.paper.paper_id for s in retrieve(engine, question, classify(question)).sources}
    assert writers <= found


def test_a_name_many_papers_write_marks_none(seed_settings):
    retriever = get_engine(seed_settings).retriever
    assert retriever.papers_writing("transformer", 6) is None
    assert retriever.papers_writing("notawordinthecorpus", 6) is None


def test_extractive_answer_cites_the_right_paper_with_a_real_quote(seed_settings):
    a = ask("What FID on ImageNet 256x256 does classifier guidance with upsampling diffusion "
            "models reach?", mode="extractive", settings=seed_settings)
    assert not a.abstained and "3.94" in a.text
    assert a.citations and a.citations[0].title == "Diffusion Models Beat GANs on Image Synthesis"
    for c in a.citations:
        paper = next(s.paper for s in a.sources if s.n == c.n)
        assert paper.abstract[c.start:c.end] == c.quote
        assert f"[{c.n}]" in a.text
    assert set(marker_numbers(a.text)) <= {s.n for s in a.sources}


def test_stream_yields_the_sources_then_text_then_the_answer(seed_settings):
    items = list(ask_stream("Which loss replaces Pseudo-Huber in latent consistency training?",
                            mode="extractive", settings=seed_settings))
    found, pieces, answer = items[0], items[1:-1], items[-1]
    assert isinstance(found, Retrieved) and isinstance(answer, Answer)
    assert pieces and all(isinstance(i, str) for i in pieces)
    assert "".join(pieces) == answer.text and "Cauchy" in answer.text
    assert_same_sources(found, answer)


def assert_same_sources(found: Retrieved, answer: Answer) -> None:
    """The Retrieved lists the Answer's papers in its order, each with a real best sentence."""
    assert [s.paper.paper_id for s in found.sources] == [s.paper.paper_id for s in answer.sources]
    assert [s.n for s in found.sources] == [s.n for s in answer.sources]
    assert found.question == answer.question and found.timings["retrieve_s"] > 0
    assert set(found.best) == {s.n for s in found.sources}  # every seed abstract has sentences
    for s in found.sources:
        best = found.best[s.n]
        assert best.paper_id == s.paper.paper_id and best.url == s.paper.link
        assert as_data(s.paper.abstract[best.start:best.end]) == best.quote


def test_an_abstention_also_streams_its_sources_first(seed_settings):
    items = list(ask_stream("Which paper gives a recipe for sourdough bread fermentation times?",
                            mode="extractive", settings=seed_settings))
    assert [type(i) for i in items] == [Retrieved, str, Answer] and items[-1].abstained
    assert_same_sources(items[0], items[-1])


@pytest.mark.parametrize("question", [
    "Which paper gives a recipe for sourdough bread fermentation times?",
    "What does the corpus say about the migration routes of arctic terns?",
    "Which court ruling changed maritime salvage law in 1890?",
])
def test_off_topic_questions_abstain_without_citations(seed_settings, question):
    a = ask(question, mode="extractive", settings=seed_settings)
    assert a.abstained and not a.citations
    assert "don't answer" in a.text and a.sources  # what was looked at is still shown


def test_follow_up_uses_the_history(seed_settings):
    history = [{"role": "user", "content": "Which paper proposes YOLACT for real-time "
                                           "instance segmentation with prototype masks?"},
               {"role": "assistant", "content": "YOLACT [1]."}]
    a = ask("and how fast does it run?", mode="extractive", history=history,
            settings=seed_settings)
    assert any(s.paper.title.startswith("YOLACT") for s in a.sources[:2])


def test_metadata_filter_restricts_sources(seed_settings):
    a = ask("scaling vision transformers", mode="extractive", filters={"source": "002_"},
            settings=seed_settings)
    assert a.sources and all(any(x.source.startswith("002_") for x in s.paper.listings)
                             for s in a.sources)


def test_unknown_mode_is_a_config_error(seed_settings):
    with pytest.raises(ConfigError, match="Unknown mode"):
        ask("anything about transformers", mode="magic", settings=seed_settings)


def test_langchain_retriever_serves_documents(seed_settings):
    from rag.langchain_retriever import AskPapersRetriever

    docs = AskPapersRetriever(settings=seed_settings, k=3).invoke("YOLACT instance segmentation")
    assert len(docs) == 3 and docs[0].metadata["title"].startswith("YOLACT")
    assert docs[0].page_content.startswith(docs[0].metadata["title"])


# ---- citation units: a fake index of two hand-written papers (no model, no FAISS) ----

class FakeWeights(TermWeights):
    """A fake: every token weighs 1."""

    def __init__(self):
        self._idf, self.unseen = {}, 1.0


def _sources():
    a = Paper("a", "Cauchy Loss for Consistency Models",
              "We replace the Pseudo-Huber loss with a Cauchy loss. It reaches FID 5.2 on CIFAR.")
    b = Paper("b", "Fast Mobile Blocks", "EMOv2 reaches 79.4 top-1 accuracy on ImageNet.")
    return [Source(1, a, 1.0, 0.5, 3.0), Source(2, b, 0.9, 0.4, 2.0)]


def _lexical(claim: str, source: Source) -> float:
    """A fake support: the share of the claim's words found in the paper (no embeddings)."""
    words = set(claim.lower().replace(".", "").split())
    text = (source.paper.title + " " + source.paper.abstract).lower().replace(".", "")
    return 2 * len(words & set(text.split())) / max(len(words), 1)


def test_invalid_markers_are_removed():
    assert keep_valid_markers("A [1] and B [7]. C [1, 9].", {1, 2}) == "A [1] and B. C [1]."
    assert marker_numbers("x [2] y [1,2] z [3]") == [2, 1, 3]


def test_marker_filter_never_shows_an_invalid_marker_mid_stream():
    f = MarkerFilter({1, 2})
    shown = "".join(f.feed(p) for p in ["It works [", "1", "] and [", "7] too [2"]) + \
        f.feed("].") + f.flush()
    assert shown == "It works [1] and  too [2]."


def test_check_citations_repairs_moves_and_drops():
    text = ("The Cauchy loss replaces the Pseudo-Huber loss [2]. EMOv2 reaches 79.4 top-1 "
            "accuracy on ImageNet. The moon is made of green cheese and purple ink. [1]")
    checked = check_citations(text, _sources(), FakeWeights(), _lexical)
    assert checked.text == ("The Cauchy loss replaces the Pseudo-Huber loss [1]. "
                            "EMOv2 reaches 79.4 top-1 accuracy on ImageNet [2].")
    assert [c.n for c in checked.citations] == [1, 2]
    assert checked.citations[1].quote == "EMOv2 reaches 79.4 top-1 accuracy on ImageNet."
    assert checked.dropped == ["The moon is made of green cheese and purple ink."]


def test_a_new_question_in_the_same_chat_is_searched_on_its_own(seed_settings):
    history = [{"role": "user", "content": "Which paper proposes YOLACT for real-time "
                                           "instance segmentation with prototype masks?"},
               {"role": "assistant", "content": "YOLACT [1]."}]
    a = ask("Which loss replaces the Pseudo-Huber loss when training latent consistency models?",
            mode="extractive", history=history, settings=seed_settings)
    assert a.sources[0].paper.title == "Improved Training Technique for Latent Consistency Models"
    assert not any(s.paper.title.startswith("YOLACT") for s in a.sources[:2])


def test_a_question_about_a_papers_record_is_answered_from_it_in_every_mode(seed_settings):
    # The seed listings carry no authors: the answer says so, in code, with no model call
    # (the "local" mode never loads its model here), and keeps the paper it is about.
    for mode in ("extractive", "local"):
        a = ask("Who are the authors of FastDraft?", mode=mode, settings=seed_settings)
        assert a.abstained and "does not list its authors" in a.text
        assert a.citations[0].title == "FastDraft: How to Train Your Draft"
        assert "first_token_s" not in a.timings


def test_a_record_answer_gives_the_authors_and_year_the_record_holds(seed_settings):
    from rag.extractive import record_answer
    from rag.retrieval import Retrieval

    paper = Paper("x1", "Lantern Sampling", "We propose Lantern. It reaches an FID of 1.9.",
                  authors=["Ada Lovelace", "Alan <b>Turing</b>"], year=2024)
    ret = Retrieval([Source(1, paper, 1.0, 0.9, 1.0)], 0.9, "lantern")
    engine = get_engine(seed_settings)
    who = "Who wrote the Lantern Sampling paper?"
    a = record_answer(engine, who, ret, classify(who), "extractive", {})
    assert not a.abstained and "Ada Lovelace and Alan" in a.text
    assert "<b>" not in a.text  # record text is data, never markup
    when = "When was Lantern Sampling published?"
    assert "is from 2024" in record_answer(engine, when, ret, classify(when), "local", {}).text

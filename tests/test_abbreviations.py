"""Abbreviations spelled out from the corpus's own definitions (rag/abbreviations.py).

Units run on plain strings, with a named fake lookup; the search test runs on the real
seed index.
"""
from __future__ import annotations

from rag.abbreviations import expand, in_question, long_form
from rag.engine import get_engine


def test_the_long_form_is_the_shortest_run_of_words_that_spells_it():
    text = "Single image super-resolution (SR) restores detail. We use SR to ..."
    assert long_form("SR", text) == "super-resolution"
    assert long_form("KD", "We apply knowledge distillation (KD) to small models.") == (
        "knowledge distillation")
    assert long_form("KD", "We apply it to many models (KD).") is None  # initials differ
    assert long_form("SR", "no definition here") is None


def test_only_abbreviations_standing_alone_are_read():
    assert in_question("Is there an SR method for TensorRT-LLM and GPT-4 with LLMs?") == [
        "SR", "LLM"]
    assert in_question("3D scenes at 512x512 in ImageNet") == []


def test_a_question_gets_the_most_frequent_long_form_unless_it_gives_one():
    texts = {"SR": ["image super-resolution (SR) is", "fast super-resolution (SR).",
                    "speech recognition (SR) here"]}
    lookup = texts.get  # a fake lookup: the texts that use each abbreviation
    assert expand("any SR method that exits early?", lambda a: lookup(a) or []) == (
        "any SR (super-resolution) method that exits early?")
    defined = "any angiography SR (speech recognition) work?"
    assert expand(defined, lambda a: lookup(a) or []) == defined
    spelled = "super-resolution SR networks"
    assert expand(spelled, lambda a: lookup(a) or []) == spelled
    assert expand("no abbreviation at all", lambda a: []) == "no abbreviation at all"


def test_the_search_reads_an_abbreviation_as_the_corpus_defines_it(seed_settings):
    # The seed abstracts write "super-resolution (SR)"; typed alone, "SR" finds them.
    retriever = get_engine(seed_settings).retriever
    assert "super-resolution" in retriever.search_text("lightweight SR networks")
    top = retriever.search("lightweight SR networks built from pointwise convolutions",
                           k=3).sources
    assert "Super-Resolution" in top[0].paper.title
    # A common one ("GPU", in over 2% of the chunks) is left as typed.
    assert retriever.search_text("GPU memory") == "GPU memory"

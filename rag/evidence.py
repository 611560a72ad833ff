"""Lexical evidence: which sentences of a paper support a question or a claim, and how well.

Scores are IDF-weighted overlaps of word stems, with IDF from the index's own keyword
index, so rare, specific words ("Cauchy", "GenEval", "0.72") count far more than common
ones.
"""
from __future__ import annotations

import math
import re
import threading
from dataclasses import dataclass
from decimal import Decimal

import numpy as np
import Stemmer

from rag.text import keyword_tokens, split_sentences
from rag.types import Paper

# A sentence stating a measured result ("86.2%", "4.7x", "FID 3.94", "3.5times") gets
# this bonus over its word overlap. Tuned on the dev set's context coverage.
RESULT_BONUS = 0.1
_RESULT = re.compile(r"\d(?:[.,]\d+)?\s*(?:%|x\b|×|times)|\d+\.\d+")
# The abstract's opening sentence, most often background ("Recently, ..."), loses this
# much when sentences within a paper are ordered. Fitted with cross-validation by
# bench/fit_sentences.py (answer facts of extractive answers, decision held out): 0.1 when
# sentences were matched by words; with stems every fold picked 0 on 142 questions, and
# every fold 0.05 on the 656 (bench/results/sentence_fit.json).
LEAD_PENALTY = 0.05
# A number standing on its own ("1024 GPUs", "FID 3.94", "4.5x"), not part of a name
# ("ImageNet-1K", "224x224", "YOLOv7").
_NUMBER = re.compile(r"(?<![\w.\-])\d+(?:[.,]\d+)?(?![\w\-])|\d(?:[.,]\d+)?\s*(?:%|x\b|×|times)"
                     r"|\b(?:twice|thrice)\b", re.I)
_STEMMERS = threading.local()  # a PyStemmer object is not to be shared between threads


def states_number(text: str) -> bool:
    """Whether the text states a number, not only names with digits in them."""
    return bool(_NUMBER.search(text))


# A value as written, a unit or scale letter allowed after it ("81.6%", "0.6G", "600M",
# "4.5x", "16-bit", "1,024"), not the digits inside a name ("YOLOv7", "ResNet-50", the
# second "512" of "512x512") nor a citation marker ("[1]"); or a small number in words,
# not the name of a setting ("zero-shot", "one-shot").
_VALUE = re.compile(r"(?<![\w.\-/\[^])\d+(?:,\d{3})*(?:\.\d+)?(?!\])")
_NUMBER_WORDS = {w: str(i) for i, w in enumerate(
    "zero one two three four five six seven eight nine ten eleven twelve".split())}
_NUMBER_WORDS |= {"twice": "2", "thrice": "3"}  # "twice as fast" writes a factor of 2
_WORD_VALUE = re.compile(r"\b(?:" + "|".join(_NUMBER_WORDS) + r")\b(?!-shot)", re.I)
# The hyphen or slash before the digits of a name ("JetMoE-8B", "LLaMA2-7B", "ViT-B/16").
_NAME_DIGITS = re.compile(r"(?<=[A-Za-z0-9])[-/](?=\d)")


def values(text: str, *, words: bool = True) -> set[Decimal]:
    """The numeric values a text writes, exactly ("1,024" and "1024" are one, "81.60" and
    "81.6" too, "one" is 1 unless not `words`; "1.0000000000000001" is not 1)."""
    written = [v.replace(",", "") for v in _VALUE.findall(text)]
    if words:
        written += [_NUMBER_WORDS[w.lower()] for w in _WORD_VALUE.findall(text)]
    return {Decimal(v).normalize() for v in written}


def given_values(question: str) -> set[Decimal]:
    """The values a question writes, in its names too ("JetMoE-8B" gives 8): a sentence
    writing one of them ("JetMoE-8B has 8B parameters") does not answer "how many experts
    does JetMoE-8B have?"."""
    return values(_NAME_DIGITS.sub(" ", question))


# A version written onto a name ("mocov2", "yolo-v4", "llama2"): the name is written too.
_VERSION = re.compile(r"(?<=[a-z])-?v?\d+(?:\.\d+)?$")


def unversioned(token: str) -> str:
    """The keyword token without a version written onto it ("mocov2" -> "moco")."""
    return _VERSION.sub("", token)


class TermWeights:
    """IDF per token over the indexed chunks; unseen tokens get the highest weight."""

    def __init__(self, vocab: dict[str, int], doc_freq: np.ndarray, n_docs: int):
        self._idf = {tok: math.log(1 + (n_docs - doc_freq[i] + 0.5) / (doc_freq[i] + 0.5))
                     for tok, i in vocab.items() if tok and i < len(doc_freq)}
        self.unseen = math.log(1 + (n_docs + 0.5) / 0.5)
        self._versioned = {unversioned(tok) for tok in self._idf}

    @classmethod
    def from_bm25(cls, bm25) -> TermWeights:
        """Weights from a bm25s index (its score matrix holds one column per token)."""
        indptr = np.asarray(bm25.scores["indptr"])
        return cls(bm25.vocab_dict, np.diff(indptr), int(bm25.scores["num_docs"]))

    def idf(self, tok: str) -> float:
        return self._idf.get(tok, self.unseen)

    def is_unseen(self, tok: str) -> bool:
        return tok not in self._idf

    def is_written(self, tok: str) -> bool:
        """Whether a chunk writes the token, or the token with a version ("MoCo" in
        "MoCov2")."""
        return tok in self._idf or tok in self._versioned


@dataclass(frozen=True)
class Evidence:
    """One sentence of a paper's abstract and how well it matches."""

    paper_id: str
    start: int
    end: int
    text: str
    score: float  # match plus the result and lead priors: orders sentences within a paper
    match: float  # word overlap alone: compares papers


def paper_sentences(paper: Paper) -> list[tuple[int, int, str]]:
    """(start, end, text) for each sentence of the abstract."""
    return [(s, e, paper.abstract[s:e]) for s, e in split_sentences(paper.abstract)]


def rank_sentences(paper: Paper, query: str, weights: TermWeights) -> list[Evidence]:
    """The paper's sentences, best match to `query` first (ties: earlier first); words
    match by their stems (`stems`)."""
    q = stems(query)
    title = stems(paper.title)
    out = []
    for i, (s, e, text) in enumerate(paper_sentences(paper)):
        toks = stems(text)
        # The title is context for every sentence, at half weight.
        rest = {k: v for k, v in q.items() if k not in toks}
        match = stem_overlap(q, toks, weights) + 0.5 * stem_overlap(rest, title, weights)
        # Sentences reporting results answer most questions; background ones few.
        score = (match + (RESULT_BONUS if _RESULT.search(text) else 0.0)
                 - (LEAD_PENALTY if i == 0 else 0.0))
        out.append(Evidence(paper.paper_id, s, e, text, score, match))
    return sorted(out, key=lambda ev: (-ev.score, ev.start))


def stems(text: str) -> dict[str, str]:
    """Content tokens by their English (Snowball) stem, so "restore" matches "restoration",
    with a plural "s" the stemmer keeps dropped too ("GPUs", "LLMs"), each mapped to the
    token as written, whose IDF weighs it. Held out, the answer decision matching stems in
    place of words with a plural "s" dropped cut which-paper refusals (docs/quality-history.md)."""
    stemmer = getattr(_STEMMERS, "english", None)
    if stemmer is None:
        stemmer = _STEMMERS.english = Stemmer.Stemmer("english")
    tokens = keyword_tokens(text)
    return {s[:-1] if len(s) > 3 and s.endswith("s") and not s.endswith("ss") else s: t
            for s, t in zip(stemmer.stemWords(tokens), tokens, strict=True)}


def stem_overlap(query: dict[str, str], text: dict[str, str], weights: TermWeights) -> float:
    """Share of the query's IDF mass found in the text, 0..1, on stems (`stems`), each
    weighed by the IDF of its token as written."""
    total = sum(weights.idf(t) for t in query.values())
    return sum(weights.idf(query[f]) for f in query.keys() & text.keys()) / total if total else 0.0


def coverage(query: str, paper: Paper, weights: TermWeights) -> float:
    """Share of the query's IDF mass whose stems are anywhere in the paper's title and
    abstract."""
    return stem_overlap(stems(query), stems(f"{paper.title} {paper.abstract}"), weights)

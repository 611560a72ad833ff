"""How an answer names a paper: its short name where the title or abstract defines one.

Researchers know papers by their short names ("DSVT", "Deep Image Prior"), so every
answer that points at a paper names it in the text, in code, whatever the model wrote.
"""
from __future__ import annotations

import re

from rag.abbreviations import spelled_from
from rag.text import as_data, fold
from rag.types import Paper

# A title whose part before the colon is a short name: "DSVT: Dynamic Sparse Voxel ...".
_TITLE_HEAD = re.compile(r"^\s*([^:]{2,40}?)\s*:\s*\S")
# A name-like token: inner capitals or digits ("DirectPred", "ViT-22B", "NEVIS'22"), or a
# capitalised word that an introducing verb points at ("we propose Loki, ...") or that
# stands beside "our approach" ("our proposed approach, Loki, gains ..."); a few capitalised
# words in a row are one name ("we propose LayerNorm Scaling, which ...").
_NAMEISH = r"[A-Z][\w'\-+.]*[A-Za-z0-9+]|[A-Z]"
_INTRO = re.compile(
    r"\b(?i:called|dubbed|named|termed|coined|(?:we|which we) (?:propose|introduce|present|"
    r"call|name|term|dub|develop)|(?:is|are) proposed,?|our (?:proposed )?(?:approach|method|"
    r"model|framework|technique|system|algorithm|architecture),)\s+"
    r"(?:it\s+|them\s+|as\s+)?[\"“']?((?:" + _NAMEISH + r")(?: (?:" + _NAMEISH + r")){0,3})"
    r"(?=[\"”']?[\s,.;:)])")
# "we propose a Shift-Conv-based Network (SCNet)": a parenthesised name spelled from the
# words an introducing verb points at.
_ACRONYM = re.compile(r"\b(?i:we|which we) (?i:propose|introduce|present|develop|design|call|name)"
                      r"\w*\s+(?:a |an |the )?((?:[\w'\-+]+\s+){1,6})"
                      r"\(([A-Z][A-Za-z0-9'\-+]*[A-Z0-9][A-Za-z0-9'\-+]*)\)")
_COMMON = frozenset("We This The Our It A An In To Its These That Here For".split())


# A sentence about another paper's work: "Recently, Gu et al. [2021] proposed a model
# called S4" names the model of the paper it cites, not this one's ("Unlike prior work, we
# propose a model called X" names this one's).
_OTHERS_WORK = re.compile(r"\bet al\b|\[\d{4}\]|\(\d{4}\)|\b(?:prior|previous|existing)\b", re.I)
_OWN_WORK = re.compile(r"\b(?:we|our)\b", re.I)


def _about_others(sentence: str) -> bool:
    return bool(_OTHERS_WORK.search(sentence)) and not _OWN_WORK.search(sentence)


def _sentence_before(text: str, end: int) -> str:
    """The text from the start of the sentence holding `end` up to it ("et al." ends none)."""
    return re.split(r"(?<!al\.)(?<=[.!?])\s+", text[:end])[-1]


def _title_head(title: str) -> str | None:
    m = _TITLE_HEAD.match(title)
    if not m:
        return None
    head = m.group(1).strip()
    return head if len(head.split()) <= 3 else None


def _is_name(token: str) -> bool:
    return token not in _COMMON and len(token) >= 2


def short_name(paper: Paper) -> str | None:
    """The paper's short name: the title's head before a colon, else a name the abstract
    introduces ("we propose X", "called X", "... (X)"); None when it defines none."""
    head = _title_head(paper.title)
    if head:
        return head
    for m in _ACRONYM.finditer(paper.abstract):
        if spelled_from(m.group(2), m.group(1)):
            return m.group(2)
    for m in _INTRO.finditer(paper.abstract):  # no article: "we propose DirectPred, ..."
        if _is_name(m.group(1)) and not _about_others(
                _sentence_before(paper.abstract, m.start())):
            return m.group(1).rstrip(".-")
    return None


def display_name(paper: Paper) -> str:
    """How an answer names the paper: its title, plus the short name when the title lacks
    it; corpus text, so made inert (`as_data`)."""
    title = " ".join(paper.title.split())
    short = short_name(paper)
    if short and fold(short) not in fold(title):
        return as_data(f"{short} ({title})")
    return as_data(title)


# What follows a family's name in a variant's: sizes and versions ("-L7", "-50", "-XL/2",
# "-n", "-Tiny"), not a modifier ("S4-style").
_VARIANT = re.compile(r"(?:[-/](?:[a-z]{0,3}\d[\w.]*|x{0,2}[sml]|xl|n|tiny|small|base|large|"
                      r"huge|giant))+", re.I)


def variant_base(name: str) -> str:
    """A model variant's family name: "EfficientFormer-L7", "Res2Net-50", "DiT-XL/2" and
    "YOLOv8-n" are variants of EfficientFormer, Res2Net, DiT and YOLOv8; any other name is
    its own family."""
    m = re.match(r"([^-/]+)(.+)", name)
    return m.group(1) if m and _VARIANT.fullmatch(m.group(2)) else name


def name_match(question_names: set[str], paper: Paper) -> int | None:
    """How closely a name the question gives names the paper: 0 when one is its short name,
    1 when one is that name without a "++" ("YOLACT" for YOLACT++, which extends it), 2 when
    one is a variant of its family ("EfficientFormer-L7"); None when none names it."""
    short = short_name(paper)
    if not short:
        return None
    names = {fold(n) for n in question_names}
    families = {fold(variant_base(n)) for n in question_names}
    short = fold(short)
    return next((level for level, hit in enumerate((
        short in names, short.rstrip("+") in names,
        short in families or short.rstrip("+") in families)) if hit), None)


def names_paper(text: str, paper: Paper, *, by_title: bool = False) -> bool:
    """True when `text` already names the paper, by title or by short name (`by_title`:
    by title only)."""
    folded = fold(text)
    short = None if by_title else short_name(paper)
    return fold(" ".join(paper.title.split())) in folded or bool(
        short and re.search(r"(?<!\w)" + re.escape(fold(short)) + r"(?!\w)", folded))
